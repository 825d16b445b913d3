"""Text token data: vocabulary, splits, encode/decode round trip, clear errors."""

import pytest
import torch

from genlab.config import DataConfig
from genlab.data import load_dataset
from genlab.data.text import Tokenizer
from genlab.errors import DataError

SMILES = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "O=C=O", "CC(C)O", "C1CCCCC1", "CCCC", "N#N", "CO", "CCCl", "OCCO"]


def test_text_dataset_splits_vocab_and_padding(tmp_path):
    path = tmp_path / "smiles.txt"
    path.write_text("\n".join(SMILES) + "\n\n")
    train, tf = load_dataset(DataConfig(name="text", root=str(path)), "train")
    test, _ = load_dataset(DataConfig(name="text", root=str(path)), "test")
    assert len(train) == 11 and len(test) == 1  # every 10th line is a test line
    spec = tf.spec
    assert spec.encoding == "tokens" and spec.shape == (9,) and spec.vocab[0] == "<eos>"
    assert set(spec.vocab[1:]) == set("".join(SMILES))
    batch = tf(train.x[:3])
    assert batch.dtype == torch.long
    tok = Tokenizer.from_spec(spec)
    assert tok.decode(train.x) == [s for i, s in enumerate(SMILES) if i % 10 != 9]
    assert (train.x[:, -1] == 0).all()  # room for <eos> after the longest line


def test_tokenizer_errors(tmp_path):
    tok = Tokenizer.from_texts(["abc"])
    assert tok.decode(tok.encode(["cab", ""], 4)) == ["cab", ""]
    with pytest.raises(DataError, match="not in the vocabulary"):
        tok.encode(["abz"], 5)
    with pytest.raises(DataError, match="at most 3"):
        tok.encode(["abca"], 4)
    with pytest.raises(DataError, match="needs data.root"):
        load_dataset(DataConfig(name="text"), "train")
    with pytest.raises(DataError, match="no such text file"):
        load_dataset(DataConfig(name="text", root=str(tmp_path / "missing.txt")), "train")
    (tmp_path / "few.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match="at least 10"):
        load_dataset(DataConfig(name="text", root=str(tmp_path / "few.txt")), "train")

"""Character-level token sequences from a text file, one sequence per line (e.g. SMILES strings).

Token 0 is the end token "<eos>"; the others are the file's characters in sorted order. Each line becomes its
characters' ids, then <eos>, padded with <eos> to the longest line + 1. Every 10th line is the test split.
The vocabulary travels in the DataSpec (and so in every checkpoint), so a checkpoint and a tokenizer that
disagree fail with a clear error instead of producing nonsense.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from genlab.config import DataConfig
from genlab.data.base import ArrayDataset
from genlab.errors import DataError
from genlab.registry import register_dataset
from genlab.spec import DataSpec

EOS = "<eos>"


class Tokenizer:
    """Characters <-> ids over a fixed vocabulary whose id 0 is <eos>.

    >>> tok = Tokenizer.from_texts(["CCO", "c1ccccc1"])
    >>> tok.decode(tok.encode(["CCO"], length=5))
    ['CCO']
    """

    def __init__(self, vocab: Sequence[str]):
        vocab = tuple(vocab)
        if not vocab or vocab[0] != EOS:
            raise DataError(f"a vocabulary starts with the end token {EOS!r}, got {vocab[:3]!r}")
        if len(set(vocab)) != len(vocab):
            raise DataError("the vocabulary holds a token twice")
        self.vocab = vocab
        self.index = {t: i for i, t in enumerate(vocab)}

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> Tokenizer:
        return cls((EOS, *sorted({ch for t in texts for ch in t})))

    @classmethod
    def from_spec(cls, spec: DataSpec) -> Tokenizer:
        if spec.encoding != "tokens":
            raise DataError(f"the data are {spec.encoding}, not token sequences: there is no vocabulary")
        return cls(spec.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, texts: Sequence[str], length: int) -> torch.Tensor:
        """(N, length) ids: each text, then <eos> padding; a DataError for a character outside the vocabulary
        or a text that leaves no room for <eos>."""
        out = torch.zeros(len(texts), length, dtype=torch.long)
        for n, text in enumerate(texts):
            if len(text) >= length:
                raise DataError(f"text {n} has {len(text)} characters; sequences of length {length} hold at most {length - 1} and <eos>")
            try:
                out[n, : len(text)] = torch.tensor([self.index[ch] for ch in text], dtype=torch.long)
            except KeyError as e:
                raise DataError(
                    f"text {n} ({text!r}) holds the character {e.args[0]!r}, which is not in the vocabulary of {len(self)} tokens "
                    f"({''.join(self.vocab[1:])!r}); the text uses another alphabet, or the tokenizer belongs to other data"
                ) from None
        return out

    def decode(self, ids: torch.Tensor) -> list[str]:
        """(N, L) ids -> N strings, each cut at its first <eos>."""
        out = []
        for row in ids.tolist():
            chars = []
            for i in row:
                if i == 0:
                    break
                chars.append(self.vocab[i] if 0 < i < len(self.vocab) else "?")
            out.append("".join(chars))
        return out


def read_lines(path: str | Path) -> list[str]:
    """The non-empty lines of a UTF-8 text file, stripped of surrounding white space."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data.root={str(path)!r}: no such text file; point it at a file with one sequence per line")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    lines = [ln for ln in lines if ln]
    if len(lines) < 10:
        raise DataError(f"{path}: found {len(lines)} non-empty lines; a text dataset needs at least 10 (every 10th is a test line)")
    return lines


@register_dataset("text")
def text_dataset(cfg: DataConfig, split: str) -> ArrayDataset:
    """data.name = "text", data.root = a text file with one sequence per line (SMILES, words, ...)."""
    if cfg.root is None:
        raise DataError("data.name='text' needs data.root: a text file with one sequence per line (e.g. SMILES strings)")
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: expected 'train' or 'test'")
    lines = read_lines(cfg.root)
    tok = Tokenizer.from_texts(lines)
    length = max(map(len, lines)) + 1
    keep = [ln for i, ln in enumerate(lines) if (i % 10 == 9) == (split == "test")]
    spec = DataSpec((length,), encoding="tokens", vocab=tok.vocab)
    return ArrayDataset(tok.encode(keep, length), None, spec, f"text:{Path(cfg.root).name}")

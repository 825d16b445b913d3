"""Molecule data: the atom-level SMILES tokenizer, SELFIES, SMILES files, the MOSES files (found, subsampled,
downloaded) and the token datasets built from them."""

import gzip
import zlib

import numpy as np
import pytest
import torch

from genlab.config import DataConfig
from genlab.data import load_dataset
from genlab.data import molecules as M
from genlab.errors import DataError

pytest.importorskip("rdkit")
pytest.importorskip("selfies")

SMILES = [
    "CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "CN1CCC[C@H]1c1cccnc1", "Clc1ccc(Br)cc1", "C1CC2CCC1C2", "O=C(N)c1ccncc1",
    "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "COc1ccc2[nH]ccc2c1", "CCN(CC)CC", "FC(F)(F)c1ccccc1", "C#N", "CC[C@@H](C)O", "OCC(O)CO",
    "c1ccc2ccccc2c1", "CC(C)(C)OC(=O)N", "N#Cc1ccccc1", "CSC", "C1CCOC1", "O=S(=O)(N)c1ccccc1", "CC1=CC(=O)CC1",
    "Nc1ncnc2[nH]cnc12", "CCCCCCCC", "OC(=O)CCC(=O)O", "C1=CCCC=C1", "CNC(=O)c1ccccc1", "c1ccsc1", "c1ccoc1", "CC(N)C(=O)O",
    "O=C1CCCN1", "CCOC(=O)C", "Oc1ccccc1", "CC#CC", "C=CC=C", "ClCCl", "BrCCBr", "CCS", "NCCN", "OCCO", "c1cnccn1",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    M._TRAIN.clear()


def test_tokenizer_splits_bracket_atoms_two_letter_atoms_and_ring_bonds():
    assert M.tokenize_smiles("C[C@@H](Cl)c1ccccc1Br") == ["C", "[C@@H]", "(", "Cl", ")", "c", "1", "c", "c", "c", "c", "c", "1", "Br"]
    assert M.tokenize_smiles("C%12CC%12[nH+]") == ["C", "%12", "C", "C", "%12", "[nH+]"]
    assert M.tokenize_smiles("BrB") == ["Br", "B"]  # bromine, then boron
    with pytest.raises(DataError, match="outside the SMILES alphabet"):
        M.tokenize_smiles("CCä")


def test_smiles_and_selfies_round_trip():
    from rdkit import Chem

    tok = M.MoleculeTokenizer.from_smiles(SMILES, "smiles")
    x, kept, skipped = tok.encode(SMILES, 40)
    assert tok.encoding == "smiles" and x.dtype == torch.uint8 and len(kept) == len(SMILES) and sum(skipped.values()) == 0
    assert tok.decode(x) == SMILES
    sf = M.MoleculeTokenizer.from_smiles(SMILES, "selfies")
    assert sf.encoding == "selfies" and all(t.startswith("[") for t in sf.vocab[1:])
    y, _, _ = sf.encode(SMILES, 40)
    canon = lambda s: Chem.MolToSmiles(Chem.MolFromSmiles(s))  # noqa: E731
    assert [canon(s) for s in sf.decode(y)] == [canon(s) for s in SMILES]


def test_encode_skips_and_counts_what_the_vocabulary_cannot_write():
    tok = M.MoleculeTokenizer.from_smiles(["CCO", "CCN"], "smiles")
    x, kept, skipped = tok.encode(["CCO", "CCS", "CCCCCCCCCC", "OCC"], 6)
    assert kept.tolist() == [0, 3] and skipped == {"unencodable": 0, "unknown_token": 1, "too_long": 1}
    assert x.tolist() == [[1, 1, 3, 0, 0, 0], [3, 1, 1, 0, 0, 0]]  # vocab: <eos> C N O


def test_vocab_encoding_and_bad_vocabularies():
    assert M.vocab_encoding(("<eos>", "[C]", "[=O]", "[Ring1]")) == "selfies"
    assert M.vocab_encoding(("<eos>", "C", "[nH]", "1")) == "smiles"
    with pytest.raises(DataError, match="starts with the end token"):
        M.MoleculeTokenizer(("C", "<eos>"))


def test_read_smiles_from_csv_smi_and_gz(tmp_path):
    (tmp_path / "a.csv").write_text('id,SMILES,name\n1,CCO,"ethanol, dry"\n2,c1ccccc1,benzene\n')
    (tmp_path / "b.smi").write_text("CCO ethanol\n\nc1ccccc1 benzene\n")
    (tmp_path / "c.csv.gz").write_bytes(gzip.compress(b"smiles\nCCO\nCCN\n"))
    assert M.read_smiles(tmp_path / "a.csv") == ["CCO", "c1ccccc1"]
    assert M.read_smiles(tmp_path / "b.smi") == ["CCO", "c1ccccc1"]
    assert M.read_smiles(tmp_path / "c.csv.gz") == ["CCO", "CCN"]
    (tmp_path / "d.csv").write_text("id,name\n1,x\n")
    with pytest.raises(DataError, match="'smiles'"):
        M.read_smiles(tmp_path / "d.csv")


def test_subsample_is_random_seeded_and_not_a_prefix():
    items = [str(i) for i in range(1000)]
    a, b = M.subsample(items, 100, 0), M.subsample(items, 100, 0)
    assert a == b and len(set(a)) == 100 and a != items[:100] and max(map(int, a)) > 500
    assert M.subsample(items, 100, 1) != a and M.subsample(items, None, 0) == items


def test_smiles_file_dataset_split_vocabulary_and_bad_lines(tmp_path):
    path = tmp_path / "mols.smi"
    path.write_text("\n".join([*SMILES, "C1CC", "not_a_smiles"]) + "\n")
    cfg = DataConfig(name="smiles_file", root=str(path))
    with pytest.warns(UserWarning, match="skipped 2 training SMILES that RDKit cannot parse"):
        train, _ = load_dataset(cfg, "train")
    test, _ = load_dataset(cfg, "test")
    tok = M.MoleculeTokenizer.from_spec(train.spec)
    held_out = {s for s in SMILES if zlib.crc32(s.encode()) % 10 == 0}
    assert set(tok.decode(test.x)) == held_out and held_out
    assert set(tok.decode(train.x)) == set(SMILES) - held_out
    assert train.spec.modality == "molecules" and train.spec.shape == (max(len(M.tokenize_smiles(s)) for s in tok.decode(train.x)) + 1,)
    with pytest.raises(DataError, match="unknown split"):
        load_dataset(cfg, "test_scaffolds")
    with pytest.raises(DataError, match="needs data.root"):
        load_dataset(DataConfig(name="smiles_file"), "train")


def _moses_folder(folder, splits):
    folder.mkdir()
    for split, smiles in splits.items():
        (folder / f"{split}.csv.gz").write_bytes(gzip.compress(("SMILES\n" + "\n".join(smiles) + "\n").encode()))
    return folder


@pytest.mark.filterwarnings("ignore:moses. skipped")
def test_moses_dataset_from_a_folder_subsamples_at_random(tmp_path):
    folder = _moses_folder(tmp_path / "moses", {"train": SMILES, "test": SMILES[:10], "test_scaffolds": SMILES[10:20]})
    cfg = DataConfig(name="moses", root=str(folder), n_train=20, seed=3)
    train, _ = load_dataset(cfg, "train")
    tok = M.MoleculeTokenizer.from_spec(train.spec)
    assert len(train) == 20 and tok.decode(train.x) == M.subsample(SMILES, 20, 3) != SMILES[:20]
    scaf, _ = load_dataset(cfg, "test_scaffolds")
    assert set(tok.decode(scaf.x)) <= set(SMILES[10:20])
    sf, _ = load_dataset(DataConfig(name="moses_selfies", root=str(folder)), "test")
    assert M.vocab_encoding(sf.spec.vocab) == "selfies" and len(sf) == 10
    with pytest.raises(DataError, match="does not hold"):
        load_dataset(DataConfig(name="moses", root=str(tmp_path)), "train")


def test_moses_download_checks_hashes_and_leaves_nothing_half(tmp_path, monkeypatch):
    server = _moses_folder(tmp_path / "server", {"train": SMILES, "test": SMILES[:5], "test_scaffolds": SMILES[5:10]})
    url = server.as_uri() + "/"
    dest = tmp_path / "cache" / "moses"
    with pytest.raises(DataError, match="does not match"):
        M.download_moses(dest, url)
    assert not dest.exists()
    import hashlib

    digests = {f"{s}.csv.gz": hashlib.sha256((server / f"{s}.csv.gz").read_bytes()).hexdigest() for s in M.MOSES_SPLITS}
    monkeypatch.setattr(M, "MOSES_SHA256", digests)
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(M, "molsets_folder", lambda: None)
    assert M.moses_folder(base_url=url) == dest
    assert M.read_smiles(dest / "test.csv.gz") == SMILES[:5]


@pytest.mark.filterwarnings("ignore:moses. skipped")
def test_the_molsets_wheel_files():
    folder = M.molsets_folder()
    if folder is None:
        pytest.skip("molsets is not installed (scripts/get_molecules.sh)")
    test = M.smiles_of(folder / "test.csv.gz")
    assert len(test) == 176074 and len(M.smiles_of(folder / "test_scaffolds.csv.gz")) == 176225
    cfg = DataConfig(name="moses", n_train=300, n_test=50, seed=0)
    train, _ = load_dataset(cfg, "train")
    ds, _ = load_dataset(cfg, "test")
    decoded = M.MoleculeTokenizer.from_spec(ds.spec).decode(ds.x)
    assert len(train) == 300 and set(decoded) <= set(test) and decoded != list(test[: len(decoded)])
    assert np.all(train.x.numpy()[:, -1] == 0)

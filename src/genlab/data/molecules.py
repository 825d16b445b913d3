"""Molecules as token sequences: the MOSES benchmark splits (Polykovskiy et al. 2020) and any SMILES file, tokenized
atom by atom (the SMILES regular expression of Schwaller et al. 2019) or written as SELFIES (Krenn et al. 2020).

Datasets: `moses` / `moses_selfies` (splits train, test, test_scaffolds) and `smiles_file` / `smiles_file_selfies`
(data.root = a CSV with a `smiles` column, or one SMILES per line; a molecule is a test molecule when the CRC-32 of
its string is 0 mod 10). Token 0 is <eos>; the vocabulary is built from the training split and travels in the DataSpec.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import re
import tempfile
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from genlab.config import DataConfig
from genlab.data.base import ArrayDataset
from genlab.data.idx import download_idx
from genlab.errors import DataError
from genlab.registry import register_dataset
from genlab.spec import DataSpec

EOS = "<eos>"
MODALITY = "molecules"

# Bracket atoms, the two-letter organic atoms Br and Cl before B and C, aromatic atoms, bonds, branches, ring-closure
# digits and two-digit %nn ring closures (Schwaller et al. 2019, "Molecular Transformer").
SMILES_REGEX = re.compile(r"(\[[^\]]+\]|Br|Cl|N|O|S|P|F|I|B|C|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|/|:|~|@|\?|>|\*|\$|%[0-9]{2}|[0-9])")
SELFIES_SYMBOL = re.compile(r"\[[^\]]*\]")

MOSES_SPLITS = ("train", "test", "test_scaffolds")
# The official repository's copies of the files that PyPI's molsets 0.3.1 wheel ships (same bytes, same SHA-256).
MOSES_URL = "https://raw.githubusercontent.com/molecularsets/moses/master/moses/dataset/data/"
MOSES_SHA256 = {
    "train.csv.gz": "786f0313aa6b9ba5514df685f885742a70ea8d86f1a4fa48115f7f80a634265c",
    "test.csv.gz": "f896fbf3764f88d94670b9959e5872c600c12152a18233823e820761b7a791b2",
    "test_scaffolds.csv.gz": "adffb2192c1bfe31ab0e13154d4af19a37dc18bdbf3cd7b4491e04405128adde",
    "test_stats.npz": "ded25073225a895d4ed17bf1d4223d27560e87ff4cb85786346ca1cc8efa03d3",
    "test_scaffolds_stats.npz": "7b7aba6c1474634a019bebf16f389d554cb9dd1021dfc8c1d1e54430a9f0e7f8",
}


# ------------------------------------------------------------------------------------------------ tokenizers
def tokenize_smiles(smiles: str) -> list[str]:
    """Atom-level SMILES tokens; a DataError for characters no token covers.

    >>> tokenize_smiles("C[C@@H](Cl)c1ccccc1Br")
    ['C', '[C@@H]', '(', 'Cl', ')', 'c', '1', 'c', 'c', 'c', 'c', 'c', '1', 'Br']
    """
    tokens = SMILES_REGEX.findall(smiles)
    if "".join(tokens) != smiles:
        raise DataError(f"SMILES {smiles!r} holds characters outside the SMILES alphabet (tokens found: {''.join(tokens)!r})")
    return tokens


def tokenize_selfies(selfies: str) -> list[str]:
    """The bracketed symbols of a SELFIES string ("[C][=O]" -> ["[C]", "[=O]"])."""
    tokens = SELFIES_SYMBOL.findall(selfies)
    if "".join(tokens) != selfies:
        raise DataError(f"{selfies!r} is not a SELFIES string (every symbol is bracketed)")
    return tokens


def smiles_to_selfies(smiles: str) -> str | None:
    """The SELFIES string of a SMILES, or None when the `selfies` package cannot encode it."""
    import selfies as sf

    try:
        return sf.encoder(smiles)
    except sf.EncoderError:
        return None


def selfies_to_smiles(selfies: str) -> str:
    """The SMILES a SELFIES string decodes to ("" when it decodes to nothing)."""
    import selfies as sf

    try:
        return sf.decoder(selfies) or ""
    except sf.DecoderError:
        return ""


def vocab_encoding(vocab: Sequence[str]) -> str:
    """ "selfies" when every token after <eos> is a bracketed SELFIES symbol, else "smiles". A SMILES vocabulary always
    holds unbracketed tokens (ring digits, organic atoms) unless every molecule is one bracket atom, which both
    encodings write the same way."""
    return "selfies" if len(vocab) > 1 and all(t.startswith("[") and t.endswith("]") for t in vocab[1:]) else "smiles"


class MoleculeTokenizer:
    """SMILES <-> token ids over a vocabulary whose id 0 is <eos>, in the SMILES or the SELFIES encoding.

    >>> tok = MoleculeTokenizer.from_smiles(["CCO", "c1ccccc1Cl"], "smiles")
    >>> tok.decode(tok.encode(["CCO"], 6)[0])
    ['CCO']
    """

    def __init__(self, vocab: Sequence[str]):
        vocab = tuple(vocab)
        if not vocab or vocab[0] != EOS:
            raise DataError(f"a molecule vocabulary starts with the end token {EOS!r}, got {vocab[:3]!r}")
        if len(set(vocab)) != len(vocab):
            raise DataError("the vocabulary holds a token twice")
        self.vocab = vocab
        self.encoding = vocab_encoding(vocab)
        self.index = {t: i for i, t in enumerate(vocab)}

    @classmethod
    def from_spec(cls, spec: DataSpec) -> MoleculeTokenizer:
        if spec.encoding != "tokens" or not spec.vocab:
            raise DataError(f"the data are {spec.encoding} without a vocabulary, not molecules as tokens")
        return cls(spec.vocab)

    @classmethod
    def from_tokens(cls, token_lists: Sequence[Sequence[str] | None]) -> MoleculeTokenizer:
        """The vocabulary of tokenized molecules (None entries are skipped): <eos>, then the tokens in sorted order."""
        return cls((EOS, *sorted({t for toks in token_lists if toks is not None for t in toks})))

    @classmethod
    def from_smiles(cls, smiles: Sequence[str], encoding: str) -> MoleculeTokenizer:
        """The vocabulary of `smiles` in `encoding` ("smiles" or "selfies")."""
        return cls.from_tokens([molecule_tokens(s, encoding) for s in smiles])

    def __len__(self) -> int:
        return len(self.vocab)

    def tokens(self, smiles: str) -> list[str] | None:
        """The tokens of one SMILES in this vocabulary's encoding (None when SELFIES cannot encode it)."""
        return molecule_tokens(smiles, self.encoding)

    def encode(self, smiles: Sequence[str], length: int) -> tuple[torch.Tensor, np.ndarray, dict[str, int]]:
        """(ids (N', length) as uint8 or int16 with <eos> padding, indices of the N' encoded molecules, counts of the
        skipped ones by reason: "unencodable", "unknown_token", "too_long")."""
        return self.encode_tokens([writable_tokens(s, self.encoding) for s in smiles], length)

    def encode_tokens(self, token_lists: Sequence[Sequence[str] | None], length: int) -> tuple[torch.Tensor, np.ndarray, dict[str, int]]:
        """`encode` for molecules already split into tokens (None: the molecule could not be encoded)."""
        dtype = np.uint8 if len(self.vocab) <= 256 else np.int16
        out = np.zeros((len(token_lists), length), dtype=dtype)
        kept, skipped = [], {"unencodable": 0, "unknown_token": 0, "too_long": 0}
        for n, toks in enumerate(token_lists):
            if toks is None:
                skipped["unencodable"] += 1
                continue
            if len(toks) >= length:
                skipped["too_long"] += 1
                continue
            try:
                ids = [self.index[t] for t in toks]
            except KeyError:
                skipped["unknown_token"] += 1
                continue
            out[len(kept), : len(ids)] = ids
            kept.append(n)
        return torch.from_numpy(out[: len(kept)]), np.asarray(kept, dtype=np.int64), skipped

    def decode(self, ids: torch.Tensor) -> list[str]:
        """(N, L) ids -> N SMILES strings, each cut at its first <eos> (SELFIES are decoded to SMILES)."""
        texts = self.decode_tokens(ids)
        return [selfies_to_smiles(t) for t in texts] if self.encoding == "selfies" else texts

    def decode_tokens(self, ids: torch.Tensor) -> list[str]:
        """(N, L) ids -> N strings in the vocabulary's own encoding (SELFIES stay SELFIES); ids outside it read "?"."""
        out = []
        for row in ids.tolist():
            toks = []
            for i in row:
                if i == 0:
                    break
                toks.append(self.vocab[i] if 0 < i < len(self.vocab) else "?")
            out.append("".join(toks))
        return out


def molecule_tokens(smiles: str, encoding: str) -> list[str] | None:
    """The tokens of a SMILES string as SMILES or as SELFIES (None when SELFIES cannot encode it)."""
    if encoding == "smiles":
        return tokenize_smiles(smiles)
    if encoding == "selfies":
        s = smiles_to_selfies(smiles)
        return None if s is None else tokenize_selfies(s)
    raise DataError(f"unknown molecule encoding {encoding!r}: expected 'smiles' or 'selfies'")


def writable_tokens(smiles: str, encoding: str) -> list[str] | None:
    """`molecule_tokens`, or None (counted as "unencodable") for a string with characters no SMILES token covers,
    such as RDKit's %(nnn) ring closures."""
    if encoding not in ("smiles", "selfies"):
        return molecule_tokens(smiles, encoding)  # raises, naming the encodings
    try:
        return molecule_tokens(smiles, encoding)
    except DataError:
        return None


# ------------------------------------------------------------------------------------------------ files
def read_smiles(path: str | os.PathLike) -> list[str]:
    """The SMILES of a file: a CSV (optionally .gz) with a `smiles` / `SMILES` column, or one SMILES per line
    (the first white-space separated field, as .smi files carry a name after it). Empty lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data.root={str(path)!r}: no such file; point it at a CSV with a 'smiles' column or a file of one SMILES per line")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read it as (gzipped) UTF-8 text: {e}") from None
    lines = text.splitlines()
    if not lines:
        return []
    header = next(csv.reader([lines[0]]))
    column = next((i for i, h in enumerate(header) if h.strip().lower() == "smiles"), None)
    if column is not None:
        rows = csv.reader(io.StringIO("\n".join(lines[1:])))
        out = [row[column].strip() for row in rows if len(row) > column]
    else:
        if len(header) > 1 and ".csv" in path.name:
            raise DataError(f"{path}: a CSV file needs a 'smiles' (or 'SMILES') column; found columns {header}")
        out = [ln.split()[0] for ln in lines if ln.strip()]
    return [s for s in out if s]


def molsets_folder() -> Path | None:
    """moses/dataset/data inside the installed `molsets` wheel (found through its metadata, never imported)."""
    import importlib.metadata

    try:
        folder = Path(importlib.metadata.distribution("molsets").locate_file("moses/dataset/data"))
    except importlib.metadata.PackageNotFoundError:
        return None
    return folder if folder.is_dir() else None


def download_moses(dest: str | os.PathLike, base_url: str = MOSES_URL) -> Path:
    """Download the MOSES split files that `dest` lacks from `base_url` (the official repository), each checked
    against its SHA-256 before it is renamed into place."""
    return download_idx(dest, base_url, MOSES_SHA256)


def moses_folder(root: str | os.PathLike | None = None, *, base_url: str = MOSES_URL) -> Path:
    """The folder holding the MOSES files: `root` alone when given; else $GENLAB_DATA/moses, the installed molsets
    wheel, the cache (~/.cache/genlab/moses), else downloaded into the cache."""
    wanted = [f"{s}.csv.gz" for s in MOSES_SPLITS]

    def complete(folder: Path) -> bool:
        return all((folder / f).is_file() for f in wanted)

    if root is not None:
        if not complete(Path(root)):
            raise DataError(f"moses: data.root={str(root)!r} does not hold the files {', '.join(wanted)}")
        return Path(root)
    data_env = os.environ.get("GENLAB_DATA")
    cache = Path(data_env) / "moses" if data_env else Path.home() / ".cache" / "genlab" / "moses"
    candidates = [c for c in (cache, molsets_folder()) if c is not None]
    found = next((c for c in candidates if complete(c)), None)
    if found is not None:
        return found
    try:
        return download_moses(cache, base_url)
    except (OSError, DataError) as e:
        raise DataError(
            f"moses: the MOSES files were not found in {', '.join(map(str, candidates))} and the download from {base_url} "
            f"failed ({e}). Install them with `pip install --no-deps molsets==0.3.1` (scripts/get_molecules.sh), "
            "or pass data.root=<folder with train.csv.gz, test.csv.gz, test_scaffolds.csv.gz>"
        ) from None


@lru_cache(maxsize=8)
def _read_cached(path: str, size: int, mtime: int) -> tuple[str, ...]:
    return tuple(read_smiles(path))


def smiles_of(path: str | os.PathLike) -> tuple[str, ...]:
    """read_smiles, remembered per (path, size, modification time)."""
    st = Path(path).stat()
    return _read_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


# ------------------------------------------------------------------------------------------------ sources
@dataclass
class MoleculeSource:
    """The SMILES of one molecule dataset: its splits (SMILES lists) and, per test split, a file of precomputed
    reference statistics (MOSES's test_stats.npz) when there is one."""

    name: str
    encoding: str
    splits: dict[str, tuple[str, ...]]
    stats: dict[str, Path] = field(default_factory=dict)
    curated: bool = False  # valid RDKit-canonical SMILES as shipped (MOSES): not re-parsed; a user's file is checked
    identity: str = ""


_SOURCES: dict[str, tuple[str, str]] = {}  # dataset name -> (kind, encoding)


def molecule_source(cfg: DataConfig) -> MoleculeSource:
    """The SMILES splits of a molecule dataset named by `cfg` (a DataError for any other dataset)."""
    if cfg.name not in _SOURCES:
        raise DataError(f"data.name={cfg.name!r} is not a molecule dataset (molecule datasets: {', '.join(sorted(_SOURCES))})")
    kind, encoding = _SOURCES[cfg.name]
    if kind == "moses":
        folder = moses_folder(cfg.root)
        splits = {s: smiles_of(folder / f"{s}.csv.gz") for s in MOSES_SPLITS}
        stats = {s: folder / f"{s}_stats.npz" for s in ("test", "test_scaffolds") if (folder / f"{s}_stats.npz").is_file()}
        return MoleculeSource(cfg.name, encoding, splits, stats, curated=True, identity=str(folder.resolve()))
    if cfg.root is None:
        raise DataError(f"data.name={cfg.name!r} needs data.root: a CSV with a 'smiles' column or a file of one SMILES per line")
    smiles = smiles_of(cfg.root)
    test = [zlib.crc32(s.encode()) % 10 == 0 for s in smiles]
    splits = {
        "train": tuple(s for s, t in zip(smiles, test) if not t),
        "test": tuple(s for s, t in zip(smiles, test) if t),
    }
    if not splits["train"] or not splits["test"]:
        raise DataError(
            f"{cfg.root}: {len(smiles)} SMILES give {len(splits['train'])} training and {len(splits['test'])} test molecules; "
            "a molecule file needs both (about one molecule in ten is held out)"
        )
    st = Path(cfg.root).stat()
    return MoleculeSource(cfg.name, encoding, splits, curated=False, identity=f"{Path(cfg.root).resolve()}:{st.st_size}:{st.st_mtime_ns}")


def subsample(items: Sequence[str], n: int | None, seed: int) -> list[str]:
    """A random subset of n items (all of them when n is None or >= len), drawn with `seed`: the MOSES files are
    ordered, so a prefix is not a sample."""
    if n is None or n >= len(items):
        return list(items)
    idx = np.random.default_rng(seed).choice(len(items), size=n, replace=False)
    return [items[i] for i in idx]


def parseable(smiles: Sequence[str]) -> tuple[list[str], int]:
    """The SMILES RDKit parses, and how many it could not."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    good = [s for s in smiles if Chem.MolFromSmiles(s) is not None]
    return good, len(smiles) - len(good)


# ------------------------------------------------------------------------------------------------ datasets
@dataclass
class _Encoded:
    x: torch.Tensor
    vocab: tuple[str, ...]
    length: int


def cache_dir() -> Path:
    """Where encoded molecule sets and their properties are cached: $GENLAB_CACHE/molecules, else ~/.cache/genlab/molecules."""
    root = os.environ.get("GENLAB_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "genlab") / "molecules"


_TRAIN: dict[str, _Encoded] = {}


def _train_encoding(src: MoleculeSource, cfg: DataConfig) -> _Encoded:
    """The training split encoded, with its vocabulary and sequence length; kept in memory and in the disk cache
    (encoding 1.6M MOSES molecules as SELFIES takes minutes)."""
    key = hashlib.sha256(f"v1|{src.identity}|{src.name}|{src.encoding}|{cfg.n_train}|{cfg.seed}".encode()).hexdigest()[:16]
    if key in _TRAIN:
        return _TRAIN[key]
    path = cache_dir() / f"{src.name}_train_{key}.npz"
    if path.is_file():
        with np.load(path) as z:
            enc = _Encoded(torch.from_numpy(z["x"]), tuple(str(t) for t in z["vocab"]), int(z["length"]))
    else:
        smiles = subsample(src.splits["train"], cfg.n_train, cfg.seed)
        if not src.curated:
            smiles, bad = parseable(smiles)
            if bad:
                warnings.warn(f"{src.name}: skipped {bad} training SMILES that RDKit cannot parse")
        token_lists = [writable_tokens(s, src.encoding) for s in smiles]
        lengths = [len(t) for t in token_lists if t is not None]
        if not lengths:
            raise DataError(f"{src.name}: no training molecule could be encoded as {src.encoding}")
        length = max(lengths) + 1
        tok = MoleculeTokenizer.from_tokens(token_lists)
        x, _, skipped = tok.encode_tokens(token_lists, length)
        if sum(skipped.values()):
            warnings.warn(f"{src.name}: skipped training molecules that cannot be written as {src.encoding}: {skipped}")
        enc = _Encoded(x, tok.vocab, length)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
        os.close(fd)
        try:
            np.savez(tmp, x=x.numpy(), vocab=np.array(tok.vocab), length=length)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    _TRAIN[key] = enc
    return enc


def build_molecules(cfg: DataConfig, split: str) -> ArrayDataset:
    """A molecule dataset's split as token ids (N, L) over the training split's vocabulary; test molecules the
    vocabulary cannot write (a token never seen in training, or longer than the longest training molecule) are
    skipped with a warning that counts them."""
    src = molecule_source(cfg)
    if split not in src.splits:
        raise DataError(f"{cfg.name}: unknown split {split!r}; expected one of {', '.join(src.splits)}")
    train = _train_encoding(src, cfg)
    spec = DataSpec((train.length,), encoding="tokens", vocab=train.vocab, modality=MODALITY)
    if split == "train":
        return ArrayDataset(train.x, None, spec, f"{cfg.name}:train")
    smiles = subsample(src.splits[split], cfg.n_test, cfg.seed)
    x, _, skipped = MoleculeTokenizer(train.vocab).encode(smiles, train.length)
    if sum(skipped.values()):
        warnings.warn(f"{cfg.name}: skipped {split} molecules the training vocabulary cannot write: {skipped}")
    if len(x) == 0:
        raise DataError(f"{cfg.name}: none of the {len(smiles)} {split} molecules can be written in the training vocabulary")
    return ArrayDataset(x, None, spec, f"{cfg.name}:{split}")


def register_molecule_dataset(
    name: str, kind: str, encoding: str, doc: str, builder: Callable[[DataConfig, str], ArrayDataset] = build_molecules
) -> None:
    """Register dataset `name` over a molecule source of `kind` ("moses" or "file") in `encoding`, built by `builder`."""
    _SOURCES[name] = (kind, encoding)

    def build(cfg: DataConfig, split: str) -> ArrayDataset:
        return builder(cfg, split)

    build.__name__ = name
    build.__doc__ = doc
    register_dataset(name)(build)


register_molecule_dataset("moses", "moses", "smiles", "MOSES (Polykovskiy et al. 2020): 1.58M / 176k / 176k SMILES, atom-level tokens.")
register_molecule_dataset("moses_selfies", "moses", "selfies", "MOSES as SELFIES tokens (Krenn et al. 2020).")
register_molecule_dataset(
    "smiles_file", "file", "smiles", "data.root = a CSV with a 'smiles' column or one SMILES per line; atom-level tokens."
)
register_molecule_dataset("smiles_file_selfies", "file", "selfies", "data.root = a SMILES file, as SELFIES tokens.")

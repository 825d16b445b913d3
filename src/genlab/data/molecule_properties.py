"""Molecular properties as conditions: Crippen logP (Wildman and Crippen 1999), QED (Bickerton et al. 2012), the SA
score (Ertl and Schuffenhauer 2009, RDKit Contrib's sascorer) and molecular weight, computed with RDKit for every
training molecule once and cached on disk, and the `*_props` datasets whose labels y are these properties (N, 4).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from genlab.config import DataConfig
from genlab.data.base import ArrayDataset
from genlab.data.molecules import MoleculeTokenizer, build_molecules, cache_dir, register_molecule_dataset
from genlab.errors import ConfigError, DataError

PROPERTY_NAMES = ("logp", "qed", "sa", "mw")
# Mean and standard deviation over 5,000 random MOSES training molecules (seed 0): the affine map that puts a property
# on a unit scale before the model sees it, z = (v - mean) / std.
PROPERTY_MEAN = {"logp": 2.446, "qed": 0.807, "sa": 2.449, "mw": 307.6}
PROPERTY_STD = {"logp": 0.916, "qed": 0.0955, "sa": 0.461, "mw": 28.05}
# "Within tolerance" for the conditional metrics: about half a MOSES standard deviation, rounded.
PROPERTY_TOLERANCE = {"logp": 0.5, "qed": 0.05, "sa": 0.25, "mw": 15.0}
PROPERTY_HELP = "logp (Crippen), qed, sa (synthetic accessibility, 1 easy .. 10 hard), mw (molecular weight, Da)"


@lru_cache(maxsize=1)
def sascorer() -> Any:
    """RDKit Contrib's SA_Score/sascorer.py (shipped in the rdkit wheel), or None when this RDKit lacks it."""
    from rdkit.Chem import RDConfig

    folder = os.path.join(RDConfig.RDContribDir, "SA_Score")
    if not os.path.isfile(os.path.join(folder, "sascorer.py")):
        return None
    if folder not in sys.path:
        sys.path.append(folder)
    import sascorer as module

    return module


def mol_properties(mol: Any) -> tuple[float, float, float, float]:
    """(logP, QED, SA, MW) of one sanitized RDKit molecule; SA is NaN when RDKit ships no sascorer."""
    from rdkit.Chem import QED, Crippen, Descriptors

    sa = sascorer()
    return (
        float(Crippen.MolLogP(mol)),
        float(QED.qed(mol)),
        float(sa.calculateScore(mol)) if sa is not None else math.nan,
        float(Descriptors.MolWt(mol)),
    )


def _rows(smiles: Sequence[str]) -> np.ndarray:
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    out = np.full((len(smiles), len(PROPERTY_NAMES)), np.nan, dtype=np.float32)
    for i, s in enumerate(smiles):
        mol = Chem.MolFromSmiles(s) if s else None
        if mol is not None:
            out[i] = mol_properties(mol)
    return out


def smiles_properties(smiles: Sequence[str], n_jobs: int = 1) -> np.ndarray:
    """(N, 4) float32 properties (PROPERTY_NAMES order) of SMILES strings; a row of NaN for a string RDKit cannot
    parse. `n_jobs` forked processes share the work (about 4 ms per molecule on one core, QED and SA most of it)."""
    smiles = list(smiles)
    if n_jobs <= 1 or len(smiles) < 2000:
        return _rows(smiles)
    import multiprocessing as mp

    chunks = [smiles[i : i + 2000] for i in range(0, len(smiles), 2000)]
    with mp.get_context("fork").Pool(n_jobs) as pool:
        return np.concatenate(pool.map(_rows, chunks))


def normalize(values: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
    """z = (v - mean) / std per property column, (N, K) in `names` order."""
    mean = values.new_tensor([PROPERTY_MEAN[k] for k in names])
    std = values.new_tensor([PROPERTY_STD[k] for k in names])
    return (values - mean) / std


def check_property_names(names: Sequence[str], key: str) -> tuple[str, ...]:
    """The names as a tuple; a ConfigError naming `key` for an unknown or repeated one."""
    for k in names:
        if k not in PROPERTY_NAMES:
            raise ConfigError(f"{key}: unknown property {k!r}; expected any of {', '.join(PROPERTY_NAMES)} ({PROPERTY_HELP})")
    if len(set(names)) != len(names):
        raise ConfigError(f"{key}: a property is named twice in {list(names)}")
    return tuple(names)


_TARGET = re.compile(r"^\s*([A-Za-z_]+)\s*[=:]\s*([-+0-9.eE]+)\s*$")


def parse_targets(spec: str | Mapping[str, float] | torch.Tensor | np.ndarray | Sequence[float], names: Sequence[str], n: int) -> dict:
    """Requested property values -> {name: (n,) float tensor} for the names given. `spec` is "qed=0.9,logp=2.5", a
    mapping {"qed": 0.9}, or values in `names` order: one vector (K,) for every sample or one row per sample (n, K).

    >>> parse_targets("qed=0.9", ("logp", "qed"), 2)
    {'qed': tensor([0.9000, 0.9000])}
    """
    if isinstance(spec, str):
        pairs = {}
        for item in filter(None, (s.strip() for s in spec.split(","))):
            m = _TARGET.match(item)
            if m is None:
                raise ConfigError(f"properties: cannot read {item!r}; write NAME=VALUE pairs such as 'qed=0.9,logp=2.5'")
            pairs[m.group(1).lower()] = float(m.group(2))
        spec = pairs
    if isinstance(spec, Mapping):
        out = {}
        for k, v in spec.items():
            if k not in names:
                raise ConfigError(f"properties: this model is conditioned on {', '.join(names)}; it cannot take {k!r}")
            t = torch.as_tensor(v, dtype=torch.float32).flatten()
            if len(t) not in (1, n):
                raise ConfigError(f"properties: {k} needs 1 or {n} values, got {len(t)}")
            out[k] = t.expand(n).clone()
        if not out:
            raise ConfigError("properties: no value requested; write NAME=VALUE pairs such as 'qed=0.9'")
    else:
        t = torch.as_tensor(np.asarray(spec, dtype=np.float32) if not torch.is_tensor(spec) else spec, dtype=torch.float32)
        if t.dim() == 1:
            t = t[None].expand(n, -1)
        if t.shape != (n, len(names)):
            want = f"({len(names)},) or ({n}, {len(names)}) for {', '.join(names)}"
            raise ConfigError(f"properties: expected values of shape {want}, got {tuple(t.shape)}")
        out = {k: t[:, i].clone() for i, k in enumerate(names)}
    for k, v in out.items():
        if not torch.isfinite(v).all():
            raise ConfigError(f"properties: the requested {k} holds a value that is not finite")
    return out


# ------------------------------------------------------------------------------------------------ datasets
def cached_properties(x: torch.Tensor, vocab: Sequence[str], label: str) -> np.ndarray:
    """The properties (N, 4) of the molecules written by token ids `x`, computed once per set of ids and kept in the
    disk cache (GENLAB_CACHE, else ~/.cache/genlab/molecules)."""
    digest = hashlib.sha256(x.numpy().tobytes() + "\x00".join(vocab).encode()).hexdigest()[:16]
    path = cache_dir() / f"properties_{digest}.npy"
    if path.is_file():
        props = np.load(path)
        if props.shape == (len(x), len(PROPERTY_NAMES)):
            return props
    smiles = MoleculeTokenizer(vocab).decode(x)
    if len(smiles) > 20000:
        print(f"{label}: computing the properties of {len(smiles)} molecules once (cached in {path.parent})", file=sys.stderr)
    props = smiles_properties(smiles, n_jobs=torch.get_num_threads())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npy", dir=path.parent)
    os.close(fd)
    try:
        np.save(tmp, props)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return props


def build_molecules_with_properties(cfg: DataConfig, split: str) -> ArrayDataset:
    """A molecule split whose labels y are the properties (N, 4) of its molecules, float32 in PROPERTY_NAMES order;
    molecules RDKit cannot score are dropped, with a warning counting them."""
    ds = build_molecules(cfg, split)
    if cfg.n_train is None and split == "train" and len(ds) > 200_000:
        minutes = len(ds) * 0.004 / 60
        warnings.warn(f"{cfg.name}: the properties of all {len(ds)} training molecules take ~{minutes:.0f} CPU-min once; set data.n_train")
    props = cached_properties(ds.x, ds.spec.vocab, f"{cfg.name}:{split}")
    keep = np.isfinite(props[:, [0, 1, 3]]).all(1)
    if not keep.all():
        warnings.warn(f"{cfg.name}: skipped {int((~keep).sum())} {split} molecules whose properties RDKit cannot compute")
    if not keep.any():
        raise DataError(f"{cfg.name}: RDKit computed the properties of none of the {len(ds)} {split} molecules")
    idx = torch.from_numpy(np.flatnonzero(keep))
    return ArrayDataset(ds.x[idx], torch.from_numpy(props[keep]), ds.spec, ds.name)


def _register(name: str, kind: str, encoding: str, doc: str) -> None:
    register_molecule_dataset(name, kind, encoding, doc, build_molecules_with_properties)


_register("moses_props", "moses", "smiles", "MOSES with labels y = (logP, QED, SA, MW) per molecule, for property-conditional models.")
_register("moses_selfies_props", "moses", "selfies", "MOSES as SELFIES with labels y = (logP, QED, SA, MW).")
_register("smiles_file_props", "file", "smiles", "data.root = a SMILES file; labels y = (logP, QED, SA, MW).")
_register("smiles_file_selfies_props", "file", "selfies", "data.root = a SMILES file as SELFIES; labels y = (logP, QED, SA, MW).")

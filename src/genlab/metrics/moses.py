"""The MOSES distribution-learning metrics (Polykovskiy et al. 2020, "Molecular Sets (MOSES)"), our implementation on
RDKit and on the ChemNet of PyPI's `fcd` package: validity, unique@k, novelty, FCD, SNN, Frag, Scaf, IntDiv1/2,
Filters and the Wasserstein-1 distances of logP, SA, QED and molecular weight.

Definitions follow the MOSES code (where it and the paper differ, the code, which made the published tables):
  - valid: share of samples RDKit parses and sanitizes (an empty string is invalid);
  - unique@k: |set of canonical SMILES among the first k valid samples| / k;
  - novelty: share of the distinct valid canonical samples that are not training SMILES (the file's strings as given);
  - FCD: Fréchet distance between Gaussians fitted to ChemNet's penultimate activations (Preuer et al. 2018);
  - SNN: mean over valid samples of the largest Tanimoto similarity T(m_G, m_R) to a reference molecule, on Morgan
    fingerprints (radius 2, 1024 bits); T(a, b) = |a & b| / (|a| + |b| - |a & b|), 1 for two empty fingerprints;
  - Frag / Scaf: cosine similarity of the count vectors of BRICS fragments / Bemis-Murcko scaffolds (with >= 2 rings);
  - IntDiv_p = 1 - mean_i (mean_j T(m_i, m_j)^p)^(1/p) over all valid sample pairs, self-pairs included (the paper
    writes 1 - (mean_ij T^p)^(1/p); the code, used here, takes the p-th root per molecule);
  - Filters: share of valid samples with no atom outside {C, N, S, O, F, Cl, Br, H}, no charge, no ring of >= 8 atoms,
    and no match of the MCF or PAINS substructure filters;
  - logP, SA, QED, weight: Wasserstein-1 distance between the property's values over the valid samples and over the
    reference set.
Every metric except valid and unique is computed over the valid samples, duplicates included.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.data.molecule_properties import sascorer
from genlab.errors import DataError
from genlab.metrics.fid import frechet_distance

FP_BITS = 1024
FP_RADIUS = 2
ALLOWED_ATOMS = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})
PROPERTIES = ("logP", "SA", "QED", "weight")
DEFAULT_K = (1000, 10000)

# The medicinal-chemistry filters (MCF) of the MOSES paper's dataset curation, as SMARTS (MOSES repository,
# moses/metrics/mcf.csv, MIT licence). They are matched against the molecule with explicit hydrogens.
MCF_SMARTS = (
    "[#6]=&!@[#6]-[#6]#[#7]",
    "[#6]=&!@[#6]-[#16](=[#8])=[#8]",
    "[#6]=&!@[#6&!H0]-&!@[#6](=[#8])-&!@[#7]",
    "[H]C([H])([#6])[F,Cl,Br,I]",
    "[#6]1-[#8]-[#6]-1",
    "[#6]-[#7]=[#6]=[#8]",
    "[#6&!H0]=[#8]",
    "[#6](=&!@[#7&!H0])-&!@[#6,#7,#8,#16]",
    "[#6]1-[#7]-[#6]-1",
    "[#6]~&!@[#7]~&!@[#7]~&!@[#6]",
    "[#7]=&!@[#7]",
    "[H][#6]-1=[#6]([H])-[#6]=[#6](-*)-[#8]-1",
    "[H][#6]-1=[#6]([H])-[#6]=[#6](-*)-[#16]-1",
    "[#17,#35,#53]-c(:*):[!#1!#6]:*",
    "[H][#7]([H])-[#6]-1=[#6]-[#6]=[#6]-[#6]=[#6]-1",
    "[#16]~[#16]",
    "[#7]~&!@[#7]~&!@[#7]",
    "[#7]-&!@[#6&!H0&!H1]-&!@[#7]",
    "[#6&!H0](-&!@[#8])-&!@[#8]",
    "[#35].[#35].[#35]",
    "[#17].[#17].[#17].[#17]",
    "[#9].[#9].[#9].[#9].[#9].[#9].[#9]",
)


def _rdkit() -> Any:
    try:
        from rdkit import Chem, RDLogger
    except ImportError:
        raise DataError("the molecule metrics need RDKit: run scripts/get_molecules.sh (or pip install rdkit)") from None
    RDLogger.DisableLog("rdApp.*")
    return Chem


# ------------------------------------------------------------------------------------------------ molecules
def get_mol(smiles: str) -> Any:
    """The sanitized RDKit molecule of a SMILES string, or None (empty, unparsable or unsanitizable)."""
    Chem = _rdkit()
    if not smiles:
        return None
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    try:
        Chem.SanitizeMol(mol)
    except ValueError:
        return None
    return mol


def canonical(smiles: str) -> str | None:
    """RDKit's canonical SMILES, or None for an invalid string."""
    mol = get_mol(smiles)
    return None if mol is None else _rdkit().MolToSmiles(mol)


def fraction_valid(smiles: Sequence[str]) -> float:
    """Share of strings that are valid molecules."""
    if not smiles:
        raise DataError("validity of an empty sample: draw at least one molecule")
    return sum(get_mol(s) is not None for s in smiles) / len(smiles)


def fraction_unique(canonical_valid: Sequence[str], k: int | None = None) -> float:
    """|distinct| / n over the first k valid canonical SMILES (all of them when k is None or larger)."""
    head = list(canonical_valid[:k] if k is not None else canonical_valid)
    if not head:
        raise DataError("uniqueness of an empty set of valid molecules")
    return len(set(head)) / len(head)


def novelty(canonical_valid: Sequence[str], train: Collection[str]) -> float:
    """Share of the distinct valid samples that are not in the training set."""
    distinct = set(canonical_valid)
    if not distinct:
        raise DataError("novelty of an empty set of valid molecules")
    train = train if isinstance(train, (set, frozenset)) else set(train)
    return len(distinct - train) / len(distinct)


# ------------------------------------------------------------------------------------------------ fingerprints
@lru_cache(maxsize=1)
def _morgan() -> Any:
    from rdkit.Chem import rdFingerprintGenerator

    return rdFingerprintGenerator.GetMorganGenerator(radius=FP_RADIUS, fpSize=FP_BITS)


def fingerprints(mols: Sequence[Any]) -> np.ndarray:
    """Morgan fingerprints (radius 2, 1024 bits) as a (N, 1024) uint8 0/1 array."""
    gen = _morgan()
    out = np.zeros((len(mols), FP_BITS), dtype=np.uint8)
    for i, m in enumerate(mols):
        out[i] = gen.GetFingerprintAsNumPy(m)
    return out


def tanimoto_aggregate(
    ref: np.ndarray, gen: np.ndarray, agg: str = "max", p: float | Sequence[float] = 1.0, chunk: int = 8192
) -> np.ndarray:
    """For each generated fingerprint g: max_r T(g, r) (agg="max"), or (mean_r T(g, r)^p)^(1/p) (agg="mean"; with
    several powers p, one row per power), (N_gen,) or (len(p), N_gen). T of two empty fingerprints is 1. Computed
    in chunks of the reference as float32 matrix products (exact for 0/1 bits)."""
    if agg not in ("max", "mean"):
        raise ValueError(f"agg must be 'max' or 'mean', got {agg!r}")
    powers = torch.tensor(np.atleast_1d(np.asarray(p, dtype=np.float64)))
    g = torch.from_numpy(gen).float()
    g_bits = g.sum(1)
    acc = torch.full((len(powers), len(gen)), -1.0 if agg == "max" else 0.0, dtype=torch.float64)
    for start in range(0, len(ref), chunk):
        r = torch.from_numpy(ref[start : start + chunk]).float()
        both = g @ r.T  # (N_gen, chunk) counts of shared bits
        union = g_bits[:, None] + r.sum(1)[None, :] - both
        t = torch.where(union > 0, both / union.clamp_min(1), torch.ones_like(both)).double()
        if agg == "max":
            acc = torch.maximum(acc, t.max(1).values[None])
        else:
            for i, q in enumerate(powers.tolist()):
                acc[i] += (t if q == 1 else t**q).sum(1)
    if agg == "mean":
        acc = (acc / len(ref)) ** (1.0 / powers[:, None])
    out = acc.numpy()
    return out[0] if np.ndim(p) == 0 or agg == "max" else out


def snn(gen_fps: np.ndarray, ref_fps: np.ndarray) -> float:
    """Similarity to a nearest neighbour: mean over samples of the largest Tanimoto similarity to the reference."""
    return float(tanimoto_aggregate(ref_fps, gen_fps, "max").mean())


def internal_diversity(fps: np.ndarray, p: float | Sequence[float] = 1.0) -> float | np.ndarray:
    """IntDiv_p = 1 - mean_i (mean_j T(m_i, m_j)^p)^(1/p) over the set itself (MOSES's code); one value per p."""
    div = 1.0 - tanimoto_aggregate(fps, fps, "mean", p).mean(-1)
    return float(div) if np.ndim(div) == 0 else div


# ------------------------------------------------------------------------------------------------ fragments
def fragments(mols: Sequence[Any]) -> Counter:
    """Counts of BRICS fragments (RDKit's FragmentOnBRICSBonds, canonical SMILES with dummy-atom labels)."""
    from rdkit.Chem import AllChem

    Chem = _rdkit()
    counts: Counter = Counter()
    for m in mols:
        counts.update(Chem.MolToSmiles(AllChem.FragmentOnBRICSBonds(m)).split("."))
    return counts


def scaffold(mol: Any, min_rings: int = 2) -> str | None:
    """The canonical SMILES of the Bemis-Murcko scaffold, or None when it has fewer than `min_rings` rings."""
    from rdkit.Chem.Scaffolds import MurckoScaffold

    try:
        scaf = MurckoScaffold.GetScaffoldForMol(mol)
    except (ValueError, RuntimeError):
        return None
    smiles = _rdkit().MolToSmiles(scaf)
    if not smiles or scaf.GetRingInfo().NumRings() < min_rings:
        return None
    return smiles


def scaffolds(mols: Sequence[Any]) -> Counter:
    """Counts of Bemis-Murcko scaffolds with at least two rings."""
    return Counter(s for s in map(scaffold, mols) if s is not None)


def cosine_similarity(a: Counter, b: Counter) -> float:
    """cos(angle) between two count vectors over the union of their keys; NaN when either is empty."""
    if not a or not b:
        return float("nan")
    keys = set(a) | set(b)
    va = np.array([a.get(k, 0) for k in keys], dtype=np.float64)
    vb = np.array([b.get(k, 0) for k in keys], dtype=np.float64)
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))


# ------------------------------------------------------------------------------------------------ filters
@lru_cache(maxsize=1)
def _filters() -> tuple[list[Any], Any]:
    from rdkit.Chem import FilterCatalog

    Chem = _rdkit()
    params = FilterCatalog.FilterCatalogParams()
    params.AddCatalog(FilterCatalog.FilterCatalogParams.FilterCatalogs.PAINS)
    return [Chem.MolFromSmarts(s) for s in MCF_SMARTS], FilterCatalog.FilterCatalog(params)


def passes_filters(mol: Any) -> bool:
    """MOSES's dataset filters: allowed atoms only, no formal charge, no ring of 8 or more atoms, no MCF match (on the
    molecule with explicit hydrogens) and no PAINS match (RDKit's FilterCatalog PAINS A/B/C, 480 patterns)."""
    Chem = _rdkit()
    if any(len(ring) >= 8 for ring in mol.GetRingInfo().AtomRings()):
        return False
    if any(a.GetFormalCharge() != 0 or a.GetSymbol() not in ALLOWED_ATOMS for a in mol.GetAtoms()):
        return False
    mcf, pains = _filters()
    with_h = Chem.AddHs(mol)
    if any(with_h.HasSubstructMatch(p) for p in mcf) or pains.HasMatch(mol):
        return False
    return Chem.MolFromSmiles(Chem.MolToSmiles(mol, isomericSmiles=False)) is not None


# ------------------------------------------------------------------------------------------------ properties
def properties(mols: Sequence[Any]) -> dict[str, np.ndarray]:
    """logP (Crippen), SA (Ertl and Schuffenhauer 2009; RDKit Contrib, absent when not shipped), QED (Bickerton et al.
    2012) and molecular weight of each molecule."""
    from rdkit.Chem import QED, Crippen, Descriptors

    out = {
        "logP": np.array([Crippen.MolLogP(m) for m in mols]),
        "QED": np.array([QED.qed(m) for m in mols]),
        "weight": np.array([Descriptors.MolWt(m) for m in mols]),
    }
    sa = sascorer()
    if sa is not None:
        out["SA"] = np.array([sa.calculateScore(m) for m in mols])
    return out


def wasserstein1(a: np.ndarray, b: np.ndarray) -> float:
    """W1 between two empirical distributions on the line (scipy.stats.wasserstein_distance)."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(a, b))


# ------------------------------------------------------------------------------------------------ per molecule
@dataclass
class SetDescription:
    """The per-molecule quantities of a set, summed or listed: filter passes, properties, fragment and scaffold counts."""

    passes: np.ndarray
    props: dict[str, np.ndarray]
    frag: Counter
    scaf: Counter


def _describe(smiles: Sequence[str]) -> SetDescription:
    mols = [get_mol(s) for s in smiles]
    if any(m is None for m in mols):
        raise DataError("describe() takes valid SMILES only")
    return SetDescription(np.array([passes_filters(m) for m in mols], dtype=bool), properties(mols), fragments(mols), scaffolds(mols))


def describe(smiles: Sequence[str], n_jobs: int = 1) -> SetDescription:
    """Filters, properties, BRICS fragments and scaffolds of valid SMILES, over `n_jobs` forked processes (RDKit's
    per-molecule work, PAINS and QED above all, is most of the metrics' time)."""
    smiles = list(smiles)
    if n_jobs <= 1 or len(smiles) < 200:
        return _describe(smiles)
    import multiprocessing as mp

    chunks = [smiles[i : i + 500] for i in range(0, len(smiles), 500)]
    with mp.get_context("fork").Pool(n_jobs) as pool:
        parts = pool.map(_describe, chunks)
    frag, scaf = Counter(), Counter()
    for part in parts:
        frag.update(part.frag)
        scaf.update(part.scaf)
    props = {k: np.concatenate([part.props[k] for part in parts]) for k in parts[0].props}
    return SetDescription(np.concatenate([part.passes for part in parts]), props, frag, scaf)


# ------------------------------------------------------------------------------------------------ FCD
@lru_cache(maxsize=1)
def chemnet() -> Any:
    """ChemNet (Preuer et al. 2018) as shipped in PyPI's `fcd` package."""
    try:
        import fcd
    except ImportError:
        raise DataError("FCD needs the `fcd` package (ChemNet): run scripts/get_molecules.sh (pip install --no-deps fcd)") from None
    return fcd.load_ref_model()


def chemnet_activations(smiles: Sequence[str], batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """ChemNet's penultimate activations (N, 512) of SMILES strings, one-hot encoded and padded to 350 characters by
    `fcd.get_predictions` (the padding FCD values are published with)."""
    import fcd

    with warnings.catch_warnings():  # fcd 1.2.2 calls numpy's deprecated row_stack
        warnings.simplefilter("ignore", DeprecationWarning)
        return fcd.get_predictions(chemnet(), list(smiles), batch_size=batch_size, n_jobs=0, device=device)


def fcd_stats(smiles: Sequence[str], device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(mu, Sigma) of the ChemNet activations of a set of SMILES."""
    if len(smiles) < 2:
        raise DataError(f"FCD needs at least 2 valid molecules to estimate a covariance, got {len(smiles)}")
    act = chemnet_activations(smiles, device=device).astype(np.float64)
    return act.mean(0), np.cov(act, rowvar=False)


def fcd_distance(gen: Sequence[str], ref: Sequence[str], device: str = "cpu") -> float:
    """FCD between two sets of SMILES."""
    return frechet_distance(*fcd_stats(gen, device), *fcd_stats(ref, device))


# ------------------------------------------------------------------------------------------------ references
@dataclass
class Reference:
    """What the metrics need of a reference set (MOSES's test or scaffold test): ChemNet statistics, fingerprints,
    fragment and scaffold counts, property values."""

    mu: np.ndarray
    sigma: np.ndarray
    fps: np.ndarray
    frag: Counter
    scaf: Counter
    props: dict[str, np.ndarray]
    n: int

    @classmethod
    def from_smiles(cls, smiles: Sequence[str], device: str = "cpu") -> Reference:
        """Statistics of a set of SMILES (invalid ones are dropped, the rest canonicalized)."""
        mols = [m for m in map(get_mol, smiles) if m is not None]
        if len(mols) < 2:
            raise DataError(f"a reference set needs at least 2 valid molecules, got {len(mols)} of {len(smiles)}")
        canon = [_rdkit().MolToSmiles(m) for m in mols]
        mu, sigma = fcd_stats(canon, device)
        return cls(mu, sigma, fingerprints(mols), fragments(mols), scaffolds(mols), properties(mols), len(mols))

    @classmethod
    def from_moses_stats(cls, path: str | os.PathLike) -> Reference:
        """MOSES's precomputed statistics (test_stats.npz / test_scaffolds_stats.npz of the molsets wheel: a pickled
        dict, so only load files from the wheel or the official repository)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=True) as z:
                s = z["stats"].item()
            return cls(
                np.asarray(s["FCD"]["mu"], dtype=np.float64),
                np.asarray(s["FCD"]["sigma"], dtype=np.float64),
                np.asarray(s["SNN"]["fps"], dtype=np.uint8),
                Counter(s["Frag"]["frag"]),
                Counter(s["Scaf"]["scaf"]),
                {p: np.asarray(s[p]["values"], dtype=np.float64) for p in PROPERTIES if p in s},
                len(s["SNN"]["fps"]),
            )
        except (OSError, KeyError, ValueError, AttributeError) as e:
            raise DataError(f"{path}: not a MOSES statistics file (expected test_stats.npz of the molsets wheel): {e}") from None


def moses_metrics(
    gen: Sequence[str],
    references: dict[str, Reference],
    train: Collection[str] | None = None,
    *,
    k: Sequence[int] = DEFAULT_K,
    device: str = "cpu",
    n_jobs: int = 1,
) -> dict[str, float | None]:
    """The MOSES table of generated SMILES `gen` against named reference sets (e.g. {"Test": ..., "TestSF": ...}):
    valid, unique@k, FCD/SNN/Frag/Scaf per reference, IntDiv, IntDiv2, Filters, the property distances against the
    first reference, and Novelty when `train` is given. Values that need more valid molecules than there are are None.
    `device` runs ChemNet, `n_jobs` processes share RDKit's per-molecule work.

    >>> moses_metrics(samples, {"Test": Reference.from_moses_stats(path)}, train=train_smiles)   # doctest: +SKIP
    """
    out: dict[str, float | None] = {"valid": fraction_valid(gen)}
    mols = [m for m in map(get_mol, gen) if m is not None]
    canon = [_rdkit().MolToSmiles(m) for m in mols]
    if len(canon) < max(k, default=0):
        warnings.warn(f"only {len(canon)} valid molecules: unique@{max(k)} is computed over all of them")
    for kk in k:
        out[f"unique@{kk}"] = fraction_unique(canon, kk) if canon else None
    if len(mols) < 2:
        warnings.warn(f"{len(mols)} valid molecules of {len(gen)}: the set metrics need at least 2")
        for name in references:
            out.update({f"{m}/{name}": None for m in ("FCD", "SNN", "Frag", "Scaf")})
        out.update({"IntDiv": None, "IntDiv2": None, "Filters": None, **{p: None for p in PROPERTIES}})
        if train is not None:
            out["Novelty"] = novelty(canon, train) if canon else None
        return out
    mu, sigma = fcd_stats(canon, device) if references else (None, None)
    fps = fingerprints(mols)
    desc = describe(canon, n_jobs)
    for name, ref in references.items():
        out[f"FCD/{name}"] = frechet_distance(mu, sigma, ref.mu, ref.sigma)
        out[f"SNN/{name}"] = snn(fps, ref.fps)
        out[f"Frag/{name}"] = cosine_similarity(ref.frag, desc.frag)
        out[f"Scaf/{name}"] = cosine_similarity(ref.scaf, desc.scaf)
    out["IntDiv"], out["IntDiv2"] = (float(v) for v in internal_diversity(fps, (1, 2)))
    out["Filters"] = float(desc.passes.mean())
    first = next(iter(references.values()), None)
    for p in PROPERTIES:
        out[p] = wasserstein1(desc.props[p], first.props[p]) if first is not None and p in desc.props and p in first.props else None
    if train is not None:
        out["Novelty"] = novelty(canon, train)
    return {key: (None if isinstance(v, float) and math.isnan(v) else v) for key, v in out.items()}

"""Scoring functions for goal-directed molecule design: QED (Bickerton et al. 2012), penalised logP (the normalised
logP - SA - ring penalty of the JT-VAE and GCPN papers, Jin et al. 2018, You et al. 2018), Tanimoto similarity to a
target on Morgan fingerprints (radius 2, 2048 bits), and any Python callable `module:function`, SMILES -> float."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genlab.data.molecule_properties import sascorer
from genlab.errors import ConfigError, DataError

# Penalised logP's normalisation: means and standard deviations over ZINC250k (the JT-VAE and GCPN code).
PLOGP_LOGP = (2.4570953396190123, 1.434324401111988)
PLOGP_SA = (3.0525811293166134, 0.8335207024513095)
PLOGP_CYCLE = (0.0485696876403053, 0.2860212110245455)
SIM_RADIUS, SIM_BITS = 2, 2048
# What the literature reports for the built-in objectives (top-1 scores), printed beside ours.
PUBLISHED = {
    "qed": "0.948, the highest QED in ZINC (the ceiling JT-VAE, GCPN and later work reach)",
    "plogp": "top-1 5.30 JT-VAE (Jin et al. 2018), 7.98 GCPN (You et al. 2018)",
}


def _mol(smiles: str) -> Any:
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    return Chem.MolFromSmiles(smiles) if smiles else None


def qed(mol: Any) -> float:
    """Quantitative estimate of drug-likeness in [0, 1] (RDKit's QED.qed, the weighted desirability means)."""
    from rdkit.Chem import QED

    return float(QED.qed(mol))


def penalized_logp(mol: Any) -> float:
    """(logP - 2.457) / 1.434 - (SA - 3.053) / 0.835 - (cycle - 0.049) / 0.286, cycle = max(0, largest ring - 6):
    Crippen logP minus the synthetic-accessibility score minus a penalty for rings of more than six atoms, each term
    standardised over ZINC250k, as the JT-VAE and GCPN code computes it."""
    from rdkit.Chem import Crippen

    sa = sascorer()
    if sa is None:
        raise DataError("penalised logP needs RDKit's Contrib sascorer, which this RDKit does not ship")
    rings = [len(r) for r in mol.GetRingInfo().AtomRings()]
    cycle = max(0, max(rings, default=0) - 6)
    return (
        (Crippen.MolLogP(mol) - PLOGP_LOGP[0]) / PLOGP_LOGP[1]
        - (sa.calculateScore(mol) - PLOGP_SA[0]) / PLOGP_SA[1]
        - (cycle - PLOGP_CYCLE[0]) / PLOGP_CYCLE[1]
    )


def morgan_fingerprint(mol: Any) -> Any:
    """Morgan fingerprint, radius 2, 2048 bits (an RDKit ExplicitBitVect)."""
    from rdkit.Chem import rdFingerprintGenerator

    return rdFingerprintGenerator.GetMorganGenerator(radius=SIM_RADIUS, fpSize=SIM_BITS).GetFingerprint(mol)


def similarity_to(target: str) -> Callable[[Any], float]:
    """T(m, target) = |a & b| / |a | b| on Morgan fingerprints (radius 2, 2048 bits) of a molecule and the target."""
    from rdkit import DataStructs

    mol = _mol(target)
    if mol is None:
        raise ConfigError(f"objective similarity:{target}: RDKit cannot parse the target SMILES {target!r}")
    ref = morgan_fingerprint(mol)
    return lambda m: float(DataStructs.TanimotoSimilarity(morgan_fingerprint(m), ref))


@dataclass
class Objective:
    """A named scoring function. `on_mol`: it takes an RDKit molecule (the built-ins), else a SMILES string (a user's
    callable). `reward(score)` maps a score to the REINVENT reward, about [0, 1]."""

    name: str
    fn: Callable[[Any], Any]
    on_mol: bool = False
    reward_scale: tuple[float, float] | None = None  # (centre, width): reward = sigmoid((s - centre) / width)

    def score(self, smiles: str, mol: Any) -> float:
        """The objective's value of one valid molecule; a DataError naming the objective and the SMILES when it raises
        or returns something that is not a finite number."""
        try:
            value = self.fn(mol if self.on_mol else smiles)
        except Exception as e:
            raise DataError(f"objective {self.name!r} raised {type(e).__name__}: {e} on SMILES {smiles!r}") from e
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise DataError(f"objective {self.name!r} returned {value!r} (not a number) on SMILES {smiles!r}") from None
        if not math.isfinite(value):
            raise DataError(f"objective {self.name!r} returned {value} on SMILES {smiles!r}; it must return a finite number")
        return value

    def reward(self, score: float) -> float:
        if self.reward_scale is None:
            return score
        centre, width = self.reward_scale
        return 1.0 / (1.0 + math.exp(-(score - centre) / width))


def resolve_objective(objective: str | Callable[[str], float]) -> Objective:
    """`qed`, `plogp`, `similarity:SMILES`, `module:function` (a function SMILES -> float), or a callable."""
    if callable(objective):
        return Objective(getattr(objective, "__name__", repr(objective)), objective)
    if not isinstance(objective, str) or not objective:
        raise ConfigError(f"objective: expected qed, plogp, similarity:SMILES, module:function or a callable, got {objective!r}")
    if objective == "qed":
        return Objective("qed", qed, on_mol=True)
    if objective == "plogp":
        return Objective("plogp", penalized_logp, on_mol=True, reward_scale=(0.0, 2.0))
    if objective.startswith("similarity:"):
        return Objective(objective, similarity_to(objective.partition(":")[2]), on_mol=True)
    module, sep, name = objective.partition(":")
    if not sep or not module or not name:
        raise ConfigError(f"objective {objective!r}: expected qed, plogp, similarity:SMILES or module:function")
    try:
        fn = getattr(importlib.import_module(module), name)
    except ImportError as e:
        raise ConfigError(f"objective {objective!r}: cannot import module {module!r} ({e})") from None
    except AttributeError:
        raise ConfigError(f"objective {objective!r}: module {module!r} has no attribute {name!r}") from None
    if not callable(fn):
        raise ConfigError(f"objective {objective!r}: {module}.{name} is not callable")
    return Objective(objective, fn)

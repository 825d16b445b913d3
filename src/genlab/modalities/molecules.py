"""The molecules modality: token sequences decoded to SMILES with the data's vocabulary, scored with the MOSES metrics
(Polykovskiy et al. 2020), written as .smi/.txt (one SMILES per line) or .npz, previewed as a grid of RDKit drawings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from genlab.checkpoint import atomic_write, atomic_write_text
from genlab.config import RunConfig
from genlab.data.molecule_properties import PROPERTY_TOLERANCE
from genlab.data.molecules import MoleculeTokenizer, molecule_source
from genlab.errors import ConfigError
from genlab.metrics import moses
from genlab.metrics.molecule_conditions import smiles_condition_metrics
from genlab.metrics.moses_published import HIGHER_IS_BETTER, MOSES_COLUMNS, PUBLISHED_ROWS
from genlab.modalities.base import Modality, ReportTable
from genlab.models.sampling import timed_samples
from genlab.registry import register_modality
from genlab.spec import DataSpec

PREVIEW_MAX = 48
REFERENCE_NAMES = {"test": "Test", "test_scaffolds": "TestSF"}


def eval_targets(model: Any, test: Any, n: int, seed: int, properties: Any = None) -> torch.Tensor:
    """The property targets (n, K) a property-conditional model is evaluated on: the requested `properties` (others
    drawn from the training conditions), else the properties of n test molecules drawn at random with `seed`."""
    g = torch.Generator().manual_seed(seed + 1)
    if properties is not None or getattr(test, "y", None) is None or not test.y.is_floating_point():
        return model.condition_targets(properties, n, g).cpu()
    rows = torch.randint(len(test.y), (n,), generator=g)
    return model.dataset_conditions(test.y[rows], n).cpu()


def decode_smiles(x: torch.Tensor, spec: DataSpec) -> list[str]:
    """Token ids (N, L) -> N SMILES strings (SELFIES vocabularies are decoded to SMILES)."""
    return MoleculeTokenizer.from_spec(spec).decode(x)


def references(cfg: RunConfig, device: str = "cpu") -> tuple[dict[str, moses.Reference], dict[str, str]]:
    """The reference sets of a run's molecule dataset: MOSES's precomputed statistics of the whole test and scaffold
    test splits when the data ship them, else statistics of the held-out SMILES; and a description of each."""
    src = molecule_source(cfg.data)
    refs, described = {}, {}
    for split, name in REFERENCE_NAMES.items():
        if split in src.stats:
            refs[name] = moses.Reference.from_moses_stats(src.stats[split])
            described[name] = f"{src.name} {split} split, all {refs[name].n} molecules (precomputed {src.stats[split].name})"
        elif split in src.splits:
            refs[name] = moses.Reference.from_smiles(src.splits[split], device)
            described[name] = f"{src.name} {split} split, {refs[name].n} valid molecules"
    return refs, described


@register_modality("molecules")
class Molecules(Modality):
    """Molecules as token sequences over a SMILES or SELFIES vocabulary stored in the DataSpec."""

    suffixes: ClassVar[tuple[str, ...]] = (".smi", ".txt", ".npz", ".png")

    def preview_count(self, requested: int) -> int:
        return min(requested, PREVIEW_MAX)

    def sample_metrics(self, model: Any, cfg: RunConfig, test: Any, sample_kwargs: dict | None = None) -> tuple[dict, dict]:
        """The MOSES table of eval.n_samples molecules drawn with seed eval.seed, against the dataset's test and scaffold
        test sets, with novelty against its training split. A property-conditional model (`condition_names`) is asked
        for the properties of random test molecules (or for the `properties` requested) and scored on how close it lands
        (genlab.metrics.molecule_conditions)."""
        n = cfg.eval.n_samples
        kwargs = dict(sample_kwargs or {})
        names = tuple(getattr(model, "condition_names", ()))
        if names:
            targets = eval_targets(model, test, n, cfg.eval.seed, kwargs.get("properties"))
            kwargs["properties"] = targets
        x, _, sec = timed_samples(model, n, cfg.eval.seed, **kwargs)
        smiles = decode_smiles(x, model.spec)
        device = str(model.device) if model.device.type == "cuda" else "cpu"
        refs, described = references(cfg, device)
        src = molecule_source(cfg.data)
        # MOSES's training SMILES are RDKit-canonical as shipped (MOSES compares against them as written); a user's
        # file need not be, so its molecules are canonicalized first.
        train = frozenset(src.splits["train"] if src.curated else filter(None, map(moses.canonical, src.splits["train"])))
        numbers = moses.moses_metrics(smiles, refs, train, device=device, n_jobs=torch.get_num_threads())
        numbers["sample_seconds_per_molecule"] = sec
        if names:
            numbers.update(smiles_condition_metrics(smiles, targets.cpu().numpy(), names, n_jobs=torch.get_num_threads()))
        conventions = {
            "n_samples": n,
            "metrics": "MOSES (Polykovskiy et al. 2020), genlab.metrics.moses; unique@k over the first k valid samples; "
            "the other set metrics over all valid samples, duplicates included",
            "references": described,
            "novelty": f"against the {len(train)} distinct training SMILES of {cfg.data.name}"
            + (" as written in the file (RDKit-canonical)" if src.curated else ", canonicalized"),
            "fcd": "ChemNet of the fcd package, SMILES padded to 350; Fréchet distance of Gaussians",
            "fingerprints": "Morgan radius 2, 1024 bits (SNN, IntDiv)",
            "filters": "allowed atoms C N S O F Cl Br H, no charge, no ring >= 8 atoms, MOSES's 22 MCF SMARTS, RDKit PAINS A/B/C",
            "properties": "Wasserstein-1 distance to the Test reference: logP (Crippen), SA, QED, molecular weight",
        }
        if names:
            conventions["conditions"] = (
                f"targets {', '.join(names)}: "
                + (
                    "as requested"
                    if sample_kwargs and sample_kwargs.get("properties") is not None
                    else "the properties of random test molecules"
                )
                + "; cond_mae / cond_within (tolerance "
                + ", ".join(f"{k} {PROPERTY_TOLERANCE[k]:g}" for k in names)
                + ") over valid samples; cond_mae_*_shuffled: the MAE against randomly re-paired targets (no conditioning)"
            )
        return numbers, conventions

    def report_tables(self, runs: list[tuple[str, dict[str, Any]]], fmt: Any = lambda key, v: f"{v:.4g}") -> list[ReportTable]:
        """The MOSES table: every evaluated run (its N from eval.json) above MOSES's published rows (3 runs of 30,000
        samples each). Runs never evaluated on the MOSES metrics are left out; no table when none is."""
        scored = [(name, result) for name, result in runs if isinstance(result.get("valid"), (int, float))]
        if not scored:
            return []
        cell = lambda row, c: fmt(c, row[c]) if isinstance(row.get(c), (int, float)) else "—"
        rows = []
        for name, result in scored:
            samples = (result.get("conventions") or {}).get("samples") or {}  # as `genlab eval` writes eval.json
            n = samples.get("n_samples")
            options = ", ".join(f"{k} {v}" for k, v in (samples.get("sampler") or {}).items())
            label = ", ".join(filter(None, [f"N = {n:,}" if isinstance(n, int) else "", options]))
            rows.append([name + (f" ({label})" if label else ""), *(cell(result, c) for c in MOSES_COLUMNS)])
        rows += [[f"MOSES {model} (published)", *(cell(row, c) for c in MOSES_COLUMNS)] for model, row in PUBLISHED_ROWS.items()]
        arrows = {True: " ↑", False: " ↓"}
        note = (
            "genlab rows: each run's eval.json (`genlab eval RUN`: the whole Test and TestSF splits; compare rows of the "
            "same N, FCD falls as N grows). Published: Polykovskiy et al. 2020 (molecularsets/moses README), the mean "
            "of 3 runs of 30,000 samples after full training. — not measured."
        )
        return [ReportTable("MOSES benchmark", ["row", *(c + arrows[HIGHER_IS_BETTER[c]] for c in MOSES_COLUMNS)], rows, note)]

    def arrays(self, x: torch.Tensor, spec: DataSpec) -> dict[str, np.ndarray]:
        return {"tokens": x.numpy().astype(np.int64), "smiles": np.array(decode_smiles(x, spec), dtype=str), "vocab": np.array(spec.vocab)}

    def write(self, x: torch.Tensor, labels: torch.Tensor | None, path: str | os.PathLike, spec: DataSpec) -> Path:
        """.smi / .txt: one SMILES per line (invalid ones as they were decoded; an empty line for an empty sequence);
        .npz: token ids, SMILES and vocabulary; .png: the preview grid."""
        path = Path(path)
        if path.suffix in (".smi", ".txt"):
            atomic_write_text(path, "".join(s + "\n" for s in decode_smiles(x, spec)))
            return path
        return super().write(x, labels, path, spec)

    def preview(
        self, x: torch.Tensor, path: str | os.PathLike, *, spec: DataSpec, labels: torch.Tensor | None = None, reference: Any = None
    ) -> Path:
        """A PNG grid of RDKit drawings of the first PREVIEW_MAX valid molecules under a title with the validity of
        all of them."""
        path = Path(path)
        if path.suffix != ".png":
            raise ConfigError(f"{path}: a molecule preview is a .png grid")
        from PIL import Image, ImageDraw, ImageFont
        from rdkit.Chem import Draw

        smiles = decode_smiles(x, spec)
        valid = [(m, s) for m, s in ((moses.get_mol(s), s) for s in smiles) if m is not None]
        shown = valid[:PREVIEW_MAX]
        title = f"{len(smiles)} samples, {len(valid) / max(len(smiles), 1):.1%} valid; the first {len(shown)} valid ones"
        per_row, cell, header = 8, 200, 36
        if shown:
            legends = [s if len(s) <= 30 else s[:27] + "..." for _, s in shown]
            grid = Draw.MolsToGridImage([m for m, _ in shown], molsPerRow=per_row, subImgSize=(cell, cell), legends=legends)
        else:
            grid = Image.new("RGB", (per_row * cell, cell), "white")
        canvas = Image.new("RGB", (grid.width, grid.height + header), "white")
        canvas.paste(grid, (0, header))
        ImageDraw.Draw(canvas).text((10, 8), title, fill="black", font=ImageFont.load_default(size=20))
        atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))
        return path

"""Goal-directed molecule design by REINVENT (Olivecrona et al. 2017, "Molecular de-novo design through deep
reinforcement learning"): an agent, a copy of a trained autoregressive prior over SMILES/SELFIES, is fine-tuned so that
log P_agent(s) approaches log P_prior(s) + sigma * reward(s) on its own samples; `genlab optimize`."""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab import checkpoint as ckpt
from genlab.data.molecules import MoleculeTokenizer
from genlab.errors import ConfigError
from genlab.metrics import moses
from genlab.metrics.molecule_objectives import PUBLISHED, Objective, resolve_objective
from genlab.models.base import GenerativeModel
from genlab.models.loading import as_model
from genlab.models.sampling import sample_seeded

TOP_K = (1, 10, 100)


@dataclass
class OptimizeResult:
    """What `optimize` made: the report (numbers), the optimised set (SMILES, score or None when invalid), the agent,
    the per-step history, and the output folder (None when nothing was written)."""

    report: dict[str, Any]
    smiles: list[str]
    scores: list[float | None]
    agent: GenerativeModel
    history: list[dict[str, float]] = field(default_factory=list)
    out: Path | None = None


def check_prior(model: GenerativeModel) -> None:
    """A ConfigError unless the model is an unconditional autoregressive molecule model with an exact likelihood."""
    if model.likelihood != "exact" or model.family != "autoregressive" or not model.spec.vocab or model.spec.modality != "molecules":
        raise ConfigError(
            f"optimize needs an autoregressive model of molecules with an exact likelihood (charrnn, transformer), got a "
            f"{model.family!r} {type(model).__name__} on {model.spec.modality!r} data"
        )
    if model.conditional or getattr(model, "condition_names", ()):
        raise ConfigError("optimize needs an unconditional prior (model.conditional=false, model.condition_on=[])")


def score_smiles(objective: Objective, smiles: list[str]) -> tuple[list[float | None], list[Any]]:
    """The objective's value of each SMILES (None when RDKit cannot parse it) and the molecules."""
    mols = [moses.get_mol(s) for s in smiles]
    return [None if m is None else objective.score(s, m) for s, m in zip(smiles, mols)], mols


def set_report(smiles: list[str], scores: list[float | None], mols: list[Any]) -> dict[str, Any]:
    """top-k mean score over the distinct valid molecules, validity, uniqueness and IntDiv (MOSES: Morgan radius 2,
    1024 bits) of a set of generated molecules."""
    best: dict[str, tuple[float, Any]] = {}
    for m, sc in zip(mols, scores):
        if m is not None:
            best.setdefault(_canon(m), (sc, m))
    ranked = sorted((sc for sc, _ in best.values()), reverse=True)
    n_valid = sum(m is not None for m in mols)
    out: dict[str, Any] = {f"top{k}": (float(np.mean(ranked[:k])) if len(ranked) >= k else None) for k in TOP_K}
    out.update(
        {
            "n": len(smiles),
            "valid": n_valid / len(smiles) if smiles else None,
            "unique": len(best) / n_valid if n_valid else None,
            "mean_score": float(np.mean([s for s in scores if s is not None])) if n_valid else None,
            "IntDiv": float(moses.internal_diversity(moses.fingerprints([m for _, m in best.values()]))) if len(best) > 1 else None,
        }
    )
    return out


def _canon(mol: Any) -> str:
    from rdkit import Chem

    return Chem.MolToSmiles(mol)


def optimize(
    run: str | os.PathLike | GenerativeModel,
    objective: str | Callable[[str], float] = "qed",
    *,
    steps: int = 200,
    batch_size: int = 128,
    sigma: float = 60.0,
    lr: float = 5e-4,
    replay: int = 0,
    n: int = 1000,
    out: str | os.PathLike | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> OptimizeResult:
    """REINVENT: for `steps` steps, draw `batch_size` sequences s from the agent, keep the distinct ones, and minimise
        L(theta) = mean_s (log P_prior(s) + sigma * r(s) - log P_agent(s; theta))^2
    with Adam (`lr`); r(s) is the objective's reward (0 for an invalid string; qed and similarity are rewards as they
    are, plogp is squashed by a sigmoid, a callable's value is used as it is: scale it to about [0, 1]). With
    `replay` > 0 that many of the best sequences seen so far join every batch (experience replay). Then `n` molecules
    are drawn from the agent and reported: top-1/10/100 mean score over the distinct valid ones, validity,
    uniqueness, internal diversity, beside the prior's. With `out`, a new folder receives optimized.csv (the set,
    best first), optimize.json (the report), history.jsonl and the agent as a run directory (config.toml,
    model.safetensors) that `genlab sample` reads; it is written in full or not at all.

    >>> res = optimize("runs/charrnn_moses", "qed", steps=100, out="runs/charrnn_qed")   # doctest: +SKIP
    >>> res.report["top1"], res.report["valid"]                                          # doctest: +SKIP
    """
    for name, value, low in (("steps", steps, 1), ("batch_size", batch_size, 2), ("n", n, 1), ("replay", replay, 0)):
        if not isinstance(value, int) or value < low:
            raise ConfigError(f"{name}: expected an integer >= {low}, got {value!r}")
    if not (sigma > 0 and lr > 0):
        raise ConfigError(f"sigma and lr must be > 0, got sigma={sigma}, lr={lr}")
    out = None if out is None else Path(out)
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out}: exists and is not an empty folder; name a new one (nothing is overwritten)")
    obj = resolve_objective(objective)
    prior = as_model(run, device)
    check_prior(prior)
    if out is not None and prior.run.config is None:
        raise ConfigError("writing the agent as a run needs the prior's run config: pass a run directory or a model from genlab.load")
    prior.eval().requires_grad_(False)
    agent = copy.deepcopy(prior).requires_grad_(True)
    tok = MoleculeTokenizer.from_spec(prior.spec)
    opt = torch.optim.Adam(agent.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    memory: dict[bytes, tuple[float, torch.Tensor]] = {}
    seen: dict[str, float] = {}
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(range(steps), desc=f"REINVENT {obj.name}", disable=not progress, leave=False)
    for step in bar:
        x = torch.unique(agent.sample(batch_size, generator=g), dim=0)
        smiles = tok.decode(x.cpu())
        scores, mols = score_smiles(obj, smiles)
        rewards = torch.tensor([0.0 if s is None else obj.reward(s) for s in scores], device=x.device)
        for row, sc, m, r in zip(x, scores, mols, rewards.tolist()):
            if m is not None:
                seen.setdefault(_canon(m), sc)
                if replay:
                    memory[row.cpu().numpy().tobytes()] = (r, row)
        if replay:
            # Experience replay: the best sequences seen so far (at most max(100, replay) kept) join the batch.
            best = sorted(memory.values(), key=lambda e: -e[0])[: max(100, replay)]
            memory = {row.cpu().numpy().tobytes(): (r, row) for r, row in best}
            pick = torch.randperm(len(best), generator=g)[:replay].tolist()
            x = torch.cat([x, torch.stack([best[i][1] for i in pick])])
            rewards = torch.cat([rewards, rewards.new_tensor([best[i][0] for i in pick])])
        # Augmented likelihood: the prior's log-probability raised by sigma times the reward.
        with torch.no_grad():
            target = prior.log_prob(x) + sigma * rewards
        loss = (target - agent.log_prob(x)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        valid = [s for s in scores if s is not None]
        row = {
            "step": step + 1,
            "loss": loss.item(),
            "valid": len(valid) / len(scores),
            "mean_score": float(np.mean(valid)) if valid else math.nan,
        }
        history.append(row)
        bar.set_postfix(score=f"{row['mean_score']:.3f}", valid=f"{row['valid']:.2f}")
    bar.close()
    seconds = time.perf_counter() - t0

    agent.eval().requires_grad_(False)
    final_x, _ = sample_seeded(agent, n, seed=seed + 1)
    final = tok.decode(final_x)
    final_scores, final_mols = score_smiles(obj, final)
    prior_x, _ = sample_seeded(prior, n, seed=seed + 1)
    prior_smiles = tok.decode(prior_x)
    prior_scores, prior_mols = score_smiles(obj, prior_smiles)
    ranked = sorted(seen.values(), reverse=True)
    report: dict[str, Any] = {
        "objective": obj.name,
        **set_report(final, final_scores, final_mols),
        "prior": set_report(prior_smiles, prior_scores, prior_mols),
        **{f"seen_top{k}": float(np.mean(ranked[:k])) if len(ranked) >= k else None for k in TOP_K},
        "steps": steps,
        "batch_size": batch_size,
        "sigma": sigma,
        "lr": lr,
        "replay": replay,
        "seed": seed,
        "seconds": round(seconds, 1),
        "published": PUBLISHED.get(obj.name),
        "conventions": "top-k: mean score of the k best distinct valid molecules of the n drawn from the agent at the end "
        "(seen_top-k: of every distinct valid molecule sampled while optimising); IntDiv: MOSES IntDiv1 of the distinct "
        "valid ones; valid and unique as MOSES",
    }
    result = OptimizeResult(report, final, final_scores, agent, history)
    if out is not None:
        result.out = write_outputs(out, prior, agent, result, steps)
    return result


def write_outputs(out: Path, prior: GenerativeModel, agent: GenerativeModel, result: OptimizeResult, steps: int) -> Path:
    """Write the optimised set, the report, the history and the agent's run directory into a temporary folder beside
    `out`, then rename it to `out`: a crash leaves no half-written result."""
    cfg = prior.run.config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        order = sorted(range(len(result.smiles)), key=lambda i: (result.scores[i] is None, -(result.scores[i] or 0.0)))
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["smiles", "score", "valid"])
        for i in order:
            sc = result.scores[i]
            w.writerow([result.smiles[i], "" if sc is None else f"{sc:.6g}", int(sc is not None)])
        (tmp / "optimized.csv").write_text(buf.getvalue())
        (tmp / "optimize.json").write_text(json.dumps(result.report, indent=2) + "\n")
        (tmp / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in result.history))
        (tmp / ckpt.CONFIG).write_text(cfg.to_toml())
        meta = ckpt.run_metadata(cfg, prior.spec, prior.run.steps + steps)
        ckpt.save_weights(tmp / ckpt.WEIGHTS, agent, {**meta, "reinvent": {"objective": result.report["objective"], "steps": steps}})
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def format_report(report: dict[str, Any]) -> str:
    """The report as a small table: the agent's set beside the prior's, and the published reference."""

    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.4f}"

    rows = [f"{'':<12}{'agent':>10}{'prior':>10}"]
    for key in (*(f"top{k}" for k in TOP_K), "mean_score", "valid", "unique", "IntDiv"):
        rows.append(f"{key:<12}{f(report.get(key)):>10}{f(report['prior'].get(key)):>10}")
    if report.get("published"):
        rows.append(f"published: {report['published']}")
    return "\n".join(rows)


def _cmd(a: argparse.Namespace) -> int:
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    res = optimize(
        a.run,
        a.objective,
        steps=a.steps,
        batch_size=a.batch_size,
        sigma=a.sigma,
        lr=a.lr,
        replay=a.replay,
        n=a.n,
        out=a.out,
        seed=a.seed,
        device=a.device,
    )
    print(f"objective {res.report['objective']}: {a.steps} REINVENT steps in {res.report['seconds']} s; {a.n} molecules from the agent")
    print(format_report(res.report))
    print(f"-> {res.out} (optimized.csv, optimize.json, the agent: genlab sample {res.out} --n 100 --out mols.smi)")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `genlab optimize RUN --objective qed --steps N --out DIR`."""
    p = subparsers.add_parser(
        "optimize",
        help="goal-directed molecule design: REINVENT fine-tuning of a trained CharRNN / Transformer prior",
        description="REINVENT (Olivecrona et al. 2017): the agent, a copy of the prior, learns log P_agent(s) -> "
        "log P_prior(s) + sigma * reward(s) on its own samples. Writes the optimised set (optimized.csv), the report "
        "(top-1/10/100 mean score, validity, uniqueness, IntDiv) and the agent as a run directory.",
        epilog="examples:\n  genlab optimize runs/charrnn_moses --objective qed --steps 200 --out runs/charrnn_qed\n"
        "  genlab optimize runs/charrnn_moses --objective 'similarity:CC(=O)Oc1ccccc1C(=O)O' --out runs/aspirin_like\n"
        "  genlab optimize runs/charrnn_moses --objective mypackage.scores:activity --out runs/active",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", help="run directory of an unconditional CharRNN or Transformer trained on molecules (the prior)")
    p.add_argument("--objective", default="qed", help="qed, plogp, similarity:SMILES, or module:function (SMILES -> float); default qed")
    p.add_argument("--steps", type=int, default=200, help="REINVENT steps (default 200)")
    p.add_argument("--out", required=True, help="new folder for the optimised set, the report and the agent's run")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=128, help="sequences sampled per step (default 128)")
    p.add_argument("--sigma", type=float, default=60.0, help="weight of the reward in the augmented likelihood (default 60)")
    p.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (default 5e-4)")
    p.add_argument("--replay", type=int, default=0, help="best sequences seen so far added to every batch (default 0: off)")
    p.add_argument("--n", type=int, default=1000, help="molecules drawn from the agent for the report (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's)")
    p.set_defaults(fn=_cmd)
    return p

"""One likelihood convention for every family: bits per dimension over 8-bit values with uniform dequantisation
(Theis et al. 2016, "A note on the evaluation of generative models"), nats per example otherwise."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import torch

from genlab.data import ArrayDataset, BatchTransform, iterate
from genlab.spec import DataSpec

# x = (x_int + u) / 128 - 1 maps the dequantised 8-bit scale [0, 256) onto [-1, 1) with Jacobian 1/128 per dimension.
_LOG_DEQUANT_SCALE = math.log(128.0)


def bits_per_dim(nll_nats: float | torch.Tensor, spec: DataSpec) -> float | torch.Tensor:
    """Per-example NLL in nats, as the model reports it on its own input scale -> bits per dimension.

    The one convention: bits/dim is -log2 of the probability (mass) of the 8-bit values, per subpixel.
      - "8bit", dequantized: the model's density p_x is over x = (x_int + u) / 128 - 1 in [-1, 1)^D with
        u ~ U[0, 1)^D. Over y = x_int + u in [0, 256)^D the density is p_y(y) = p_x(x) / 128^D, so
            bits/dim = (nll + D log 128) / (D ln 2).
        Why this is comparable with a discrete model: the unit bins around the integers tile [0, 256)^D,
        so P(x_int) = integral_{[0,1)^D} p_y(x_int + u) du is a proper discrete distribution and, by Jensen,
            E_u[-log p_y(x_int + u)] >= -log P(x_int).
        The dequantised NLL is an upper bound on the NLL of the discrete model the continuous one
        defines (Theis et al. 2016), in the same units, so it is never flattering.
      - "8bit", not dequantized: the model gives P(x_int) directly (discretised logistic or Gaussian,
        256-way softmax): bits/dim = nll / (D ln 2).
      - "binary": a discrete model over {-1, 1}^D: bits/dim = nll / (D ln 2); the headline is nats.
      - "tokens": a discrete model over sequences: nats per sequence is the headline.
      - "continuous": nll / (D ln 2) is a differential quantity (it depends on the data's scale and can
        be negative); the headline is nats per example.
    A uniform density on [-1, 1)^D (nll = D ln 2) and a uniform distribution over 256 levels
    (nll = D ln 256) both give exactly 8 bits/dim.
    """
    d = spec.dim
    if spec.encoding == "8bit" and spec.dequantized:
        nll_nats = nll_nats + d * _LOG_DEQUANT_SCALE
    return nll_nats / (d * math.log(2.0))


def convention(spec: DataSpec) -> str:
    """The human-readable statement of how `bits_per_dim` reads a model's NLL for this data."""
    d = spec.dim
    if spec.encoding == "8bit" and spec.dequantized:
        return (
            f"bits/dim over 8-bit values, uniform dequantisation: (nll + {d}*ln 128) / ({d}*ln 2), "
            "the density on [0, 256)^D from the model's density on [-1, 1)^D; an upper bound on the discrete bits/dim"
        )
    if spec.encoding == "8bit":
        return f"bits/dim over 8-bit values: -log2 P(x_int) / {d} from the model's discrete probability"
    if spec.encoding == "binary":
        return f"nats per example of the binarised data (headline); bits/dim = nats / ({d}*ln 2)"
    if spec.encoding == "tokens":
        return f"nats per sequence, end token included (headline); bits/dim = nats / ({d}*ln 2) per position of the padded length"
    return f"nats per example under the model's density on its input scale (headline); bits/dim = nats / ({d}*ln 2) is differential"


def likelihood_report(nll_nats_per_example: torch.Tensor, spec: DataSpec, *, exact: bool, bound_name: str = "") -> dict[str, Any]:
    """Summarise per-example NLLs (nats, the model's own scale) under the one convention.

    Returns {"nll" (exact) or "nll_bound": mean nats, "bits_per_dim", "nll_sem": standard error of the
    mean nats, "likelihood": "exact" | "bound", for a bound "bound": `bound_name` (e.g. "elbo", "iwae-64", "vlb"),
    "convention": how bits/dim was computed, "n": number of examples}.

    >>> spec = DataSpec(shape=(1, 2, 2), encoding="8bit", dequantized=True)
    >>> likelihood_report(torch.full((10,), 4 * math.log(2.0), dtype=torch.float64), spec, exact=True)["bits_per_dim"]
    8.0
    """
    nll = torch.as_tensor(nll_nats_per_example).detach().double().flatten().cpu()
    if nll.numel() == 0:
        raise ValueError("likelihood_report needs at least one per-example NLL")
    if torch.isnan(nll).any():
        raise ValueError(f"{int(torch.isnan(nll).sum())} of {nll.numel()} per-example NLLs are NaN")
    mean = nll.mean().item()
    sem = (nll.std() / math.sqrt(nll.numel())).item() if nll.numel() > 1 else float("nan")
    out = {
        "nll" if exact else "nll_bound": mean,
        "bits_per_dim": bits_per_dim(mean, spec),
        "nll_sem": sem,
        "likelihood": "exact" if exact else "bound",
        "bound": bound_name,
        "convention": convention(spec),
        "n": nll.numel(),
    }
    if exact:
        del out["bound"]  # an exact likelihood is no bound
    return out


@torch.no_grad()
def per_example_nll(
    model: Any,
    ds: ArrayDataset,
    transform: BatchTransform,
    *,
    k: int,
    batch_size: int,
    limit: int | None,
    seed: int = 0,
    progress: bool = True,
    desc: str | None = None,
) -> torch.Tensor:
    """NLL (nats) of each of the first `limit` examples of `ds`: exact, or the bound with `k` importance samples.

    The RNG is forked and seeded, so evaluating never moves a training run's random stream."""
    from tqdm.auto import tqdm

    n = len(ds) if limit is None else min(limit, len(ds))
    out = []
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
        torch.manual_seed(seed)
        bar = tqdm(total=n, unit="ex", disable=not progress, desc=desc or f"nll k={k}", leave=False)
        start = time.perf_counter()
        for batch in iterate(ds, transform, batch_size, seed=seed, limit=n):
            x = batch["x"].to(model.device)
            y = batch["y"].to(model.device) if model.conditional or getattr(model, "condition_names", ()) else None
            out.append(model.nll(x, y, k=k).double().cpu())
            bar.update(len(x))
            if progress and len(out) == 1 and n > len(x):
                total = (time.perf_counter() - start) * n / len(x)
                if total > 60:
                    bar.write(f"genlab: {desc or f'nll k={k}'} of {n:,} examples will take about {total / 60:.0f} min", file=sys.stderr)
        bar.close()
    return torch.cat(out)

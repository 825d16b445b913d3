"""Flow matching / rectified flow (Lipman et al. 2023; Liu et al. 2023): straight paths x_t = (1 - t) x_0 + t eps, a network
regressing the velocity v = eps - x_0, logit-normal times (Esser et al. 2024), minibatch OT coupling (Tong et al. 2023),
reflow on (noise, sample) pairs, and log p(x) by the instantaneous change of variables (Chen et al. 2018; Grathwohl et al. 2019).

Every sampler of genlab.samplers runs on it through EDM's sigma form: dividing x_t by 1 - t gives
    x_t / (1 - t) = x_0 + (t / (1 - t)) eps = x_sigma,   sigma = t / (1 - t),   t = sigma / (1 + sigma),
and since x_0 = x_t - t (eps - x_0), the denoiser is D(x_sigma; sigma) = E[x_0 | x_t] = x_t - t v(x_t, t).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from genlab import registry
from genlab.config import param
from genlab.errors import ConfigError, DataError
from genlab.models.base import Batch, GenerativeModel, SampleOption
from genlab.models.diffusion import DiffusionModel
from genlab.models.diffusion.network import NetworkConfig, build_network, run_network
from genlab.models.diffusion.schedules import karras_sigmas
from genlab.models.distributions import randn, standard_normal_log_prob, sum_except_batch
from genlab.models.fast._common import TeacherSlot, bc, drop_labels, guided, init_once
from genlab.registry import register_model
from genlab.spec import DataSpec

T_SCALE = 1000.0  # c_noise = 1000 t: the network sees times on the range of a diffusion model's timesteps


@dataclass
class FlowMatchingConfig(NetworkConfig):
    """Flow matching: time distribution, coupling, sampling defaults, the likelihood's ODE solve and reflow's inputs."""

    name: str = param("flow_matching", help="model name")
    time_sampling: Literal["logit_normal", "uniform"] = param(
        "logit_normal", help="training times: logit_normal t = sigmoid(m + s n), n ~ N(0, 1) (Esser et al. 2024), or uniform"
    )
    logit_mean: float = param(0.0, help="logit_normal: m")
    logit_std: float = param(1.0, gt=0, help="logit_normal: s")
    coupling: Literal["independent", "ot"] = param(
        "independent", help="pairs of data and noise in a batch: independent, or ot = exact minibatch OT (Tong et al. 2023)"
    )
    sigma_min: float = param(0.002, gt=0, help="smallest sigma = t / (1 - t) of the karras grid")
    sigma_max: float = param(80.0, gt=0, help="top of every sampling grid: t_max = sigma_max / (1 + sigma_max), where x_t = noise")
    rho: float = param(7.0, gt=0, help="exponent of EDM's rho-schedule (karras grid)")
    sampler: str = param("ddim", help="default sampler: ddim (eta = 0: Euler in t on a uniform t grid), euler, heun, dpmpp_2m, ddpm")
    steps: int = param(20, ge=1, help="default function evaluations of sample()")
    guidance: float = param(1.0, ge=0, help="default classifier-free guidance scale w: v = v_u + w (v_c - v_u); 1 = none")
    likelihood_steps: int = param(16, ge=1, help="log_prob: RK4 steps of the ODE from t = 0 to 1 (4 evaluations each)")
    trace: Literal["auto", "exact", "hutchinson"] = param(
        "auto", help="log_prob: divergence exactly (a batch D times larger) or by Hutchinson's estimator; auto = exact up to 16 dimensions"
    )
    hutchinson_samples: int = param(1, ge=1, help="log_prob: Rademacher probes of Hutchinson's estimator, fixed along the solve")
    pairs: str = param("", help="reflow: a .npz of (noise, x[, y]) pairs to train on instead of the data (genlab reflow writes it)")
    init_from: str = param("", help="a run directory whose network weights start this model (reflow fine-tunes the flow it straightens)")

    def validate(self) -> None:
        if self.sigma_min >= self.sigma_max:
            raise ConfigError(f"model.sigma_min ({self.sigma_min}) must be below model.sigma_max ({self.sigma_max})")
        if self.pairs and self.coupling == "ot":
            raise ConfigError("model.pairs (reflow) fixes the coupling already; set model.coupling='independent'")


def ot_pairs(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The noise of a batch reordered so that (x0_i, eps_i) is the exact optimal transport plan of the batch under the squared
    Euclidean cost: the permutation minimising sum_i ||x0_i - eps_pi(i)||^2 (Hungarian algorithm; Tong et al. 2023).

    >>> x0 = torch.tensor([[0.0], [10.0]]); ot_pairs(x0, torch.tensor([[9.0], [1.0]])).flatten().tolist()
    [1.0, 9.0]
    """
    from scipy.optimize import linear_sum_assignment

    cost = torch.cdist(x0.flatten(1).double(), eps.flatten(1).double()).pow(2).cpu().numpy()
    _, col = linear_sum_assignment(cost)
    return eps[torch.as_tensor(col, device=eps.device)]


class FlowDenoiser:
    """A flow-matching model bound to labels and guidance, as the samplers' `Denoiser`: D(x; sigma) = x_t - t v(x_t, t)."""

    def __init__(self, model: FlowMatchingModel, y: torch.Tensor | None, guidance: float):
        self.model, self.y, self.guidance = model, y, guidance

    def __call__(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0]).contiguous()
        d = self.model.denoise(x, s, self.y, self.guidance)
        return d.clamp(-1, 1) if self.model.spec.is_image else d  # E[x_0 | x] lies in [-1, 1] for images

    def sigmas(self, kind: str, n: int) -> torch.Tensor:
        return self.model.sigma_grid(kind, n)

    def prior_std(self, sigma: float) -> float:
        """x_t = eps at the top of the grid is x_sigma = (1 + sigma) eps."""
        return 1.0 + sigma


@register_model("flow_matching", FlowMatchingConfig)
class FlowMatchingModel(GenerativeModel):
    """Flow matching with every diffusion sampler, guidance, reflow and the ODE likelihood.

    Example:
        >>> model = FlowMatchingModel(FlowMatchingConfig(), DataSpec((1, 28, 28)))
        >>> model.loss({"x": x})["loss"].backward()
        >>> imgs = model.sample(16, steps=4, generator=torch.Generator().manual_seed(0))   # Euler in t, 4 evaluations
    """

    family = "fast"
    likelihood = "exact"

    def __init__(self, config: FlowMatchingConfig, spec: DataSpec):
        super().__init__(config, spec)
        registry.sampler(config.sampler)  # a clear error naming the closest sampler
        self.net = build_network(config, spec)
        self.null_label = spec.num_classes
        self.register_buffer("initialized", torch.zeros((), dtype=torch.uint8))
        self._source = TeacherSlot(config.init_from, "init_from") if config.init_from else None
        self._pairs: dict[str, torch.Tensor] | None = None

    @classmethod
    def sample_options(cls) -> tuple[SampleOption, ...]:
        """The diffusion model's options (sampler, steps, guidance, progress, every sampler's own) less low-res conditioning."""
        return tuple(o for o in DiffusionModel.sample_options() if o.name != "lowres")

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        tiny = {"channels": [8, 8], "attn_resolutions": [4], "heads": 2, "steps": 3, "likelihood_steps": 2}
        return [
            (tiny, DataSpec((1, 8, 8), encoding="8bit", dequantized=True)),
            ({**tiny, "conditional": True, "guidance": 2.0, "sampler": "heun", "coupling": "ot"}, DataSpec((3, 8, 8), num_classes=3)),
            (
                {"width": 16, "depth": 1, "time_sampling": "uniform", "sampler": "dpmpp_2m", "steps": 4},
                DataSpec((2,), encoding="continuous"),
            ),
            ({"width": 16, "depth": 1, "sampler": "ddpm", "steps": 4, "trace": "hutchinson"}, DataSpec((2,), encoding="continuous")),
        ]

    # ------------------------------------------------------------------ the flow
    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """v(x_t, t) ~ E[eps - x_0 | x_t]: the network at c_noise = 1000 t; x_t (B, *shape), t (B,)."""
        return run_network(self.net, self.spec, x_t, T_SCALE * t, y)

    def guided_velocity(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None, guidance: float) -> torch.Tensor:
        """v_u + w (v_c - v_u); v is linear in E[x_0 | x_t], so this is guidance on the denoiser as well."""
        return guided(self.velocity, x_t, t, y, guidance, self.null_label)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, y: torch.Tensor | None = None, guidance: float = 1.0) -> torch.Tensor:
        """D(x; sigma) = x_t - t v(x_t, t) with t = sigma / (1 + sigma) and x_t = x / (1 + sigma): x (B, *shape) in sigma form,
        sigma (B,) -> the x_0 estimate. In EDM's terms c_in = c_skip = 1 / (1 + sigma), c_out = -sigma / (1 + sigma)."""
        t = sigma / (1 + sigma)
        x_t = x / bc(1 + sigma, x)
        return x_t - bc(t, x) * self.guided_velocity(x_t, t, y, guidance)

    def denoiser(self, labels: torch.Tensor | None = None, guidance: float | None = None) -> FlowDenoiser:
        """The model as a sampler's `Denoiser`, bound to class labels and guidance scale w."""
        self.check_sample_labels(labels)
        w = self.config.guidance if guidance is None else float(guidance)
        return FlowDenoiser(self, None if labels is None else labels.to(self.device), w)

    @property
    def t_max(self) -> float:
        return self.config.sigma_max / (1 + self.config.sigma_max)

    def sigma_grid(self, kind: str, n: int) -> torch.Tensor:
        """(n + 1,) float64 sigmas from sigma_max down to 0: "karras" is EDM's rho-schedule; "uniform" and "discrete" are n
        equal steps in t from t_max to 0 (the usual flow-matching grid: ddim with eta = 0 on it is Euler in t, since
        x_{t'} = x_t + (t' - t) v = (1 - t') D + t' (x_t - (1 - t) D) / t is DDIM's update in sigma form)."""
        if kind == "karras":
            return karras_sigmas(n, self.config.sigma_min, self.config.sigma_max, self.config.rho)
        t = torch.linspace(self.t_max, 0.0, n + 1, dtype=torch.float64)
        return t / (1 - t)

    # ------------------------------------------------------------------ training
    def training_times(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """t ~ sigmoid(N(m, s^2)) (logit-normal) or U(0, 1), shape (n,)."""
        if self.config.time_sampling == "uniform":
            return torch.rand(n, device=like.device, dtype=like.dtype)
        c = self.config
        return torch.sigmoid(c.logit_mean + c.logit_std * torch.randn(n, device=like.device, dtype=like.dtype))

    def load_pairs(self) -> dict[str, torch.Tensor]:
        """The reflow pairs of `model.pairs`: noise and x (N, *shape) float, y (N,) when the model is conditional."""
        if self._pairs is None:
            path = Path(self.config.pairs)
            if not path.is_file():
                raise DataError(f"model.pairs: {path} does not exist (genlab reflow RUN writes the pairs file)")
            with np.load(path) as f:
                missing = [k for k in ("noise", "x") + (("y",) if self.conditional else ()) if k not in f]
                if missing:
                    raise DataError(f"model.pairs: {path} lacks the array {missing[0]!r} (expected noise, x and, conditional, y)")
                pairs = {k: torch.from_numpy(f[k]) for k in ("noise", "x", "y") if k in f}
            if tuple(pairs["x"].shape[1:]) != tuple(self.spec.shape) or pairs["noise"].shape != pairs["x"].shape:
                raise DataError(
                    f"model.pairs: {path} holds x of shape {tuple(pairs['x'].shape)} and noise of shape "
                    f"{tuple(pairs['noise'].shape)}; this model's data have shape {self.spec.shape}"
                )
            self._pairs = pairs
        return self._pairs

    def _pair_batch(self, n: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        p = self.load_pairs()
        idx = torch.randint(len(p["x"]), (n,))
        y = p["y"][idx].long().to(like.device) if self.conditional else None
        return p["x"][idx].to(like), p["noise"][idx].to(like), y

    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, torch.Tensor]:
        """E_t E ||v(x_t, t) - (eps - x_0)||^2 per dimension with x_t = (1 - t) x_0 + t eps (conditional flow matching; the
        minimiser is v(x, t) = E[eps - x_0 | x_t = x]). Reflow draws (x_0, eps) from the pairs file instead."""
        x0 = batch["x"]
        B = x0.shape[0]
        if self._source is not None and self.training and not self.initialized:  # a resumed run needs no source
            init_once(self, self._source.get(x0.device), self.initialized, "init_from")
        if self.config.pairs:
            x0, eps, y = self._pair_batch(B, x0)
        else:
            y = self.class_labels(batch.get("y"), B)
            eps = torch.randn_like(x0)
            if self.config.coupling == "ot":
                eps = ot_pairs(x0, eps)
        y = drop_labels(y, self.config.p_uncond, self.null_label, self.training)
        t = self.training_times(B, x0)
        x_t = (1 - bc(t, x0)) * x0 + bc(t, x0) * eps
        mse = (self.velocity(x_t, t, y) - (eps - x0)).pow(2).flatten(1).mean(1)
        return {"loss": mse.mean()}

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, n: int, *, labels: torch.Tensor | None = None, generator: torch.Generator | None = None, **kwargs) -> torch.Tensor:
        """n samples in data space with a sampler (`sampler`, `steps` function evaluations, `guidance`, `progress`, the
        sampler's own options); defaults from the config. steps=1 is one network evaluation: x_0 = eps - v(eps, t_max) t_max.

        >>> model.sample(16, sampler="heun", steps=7, generator=torch.Generator().manual_seed(0))  # doctest: +SKIP
        """
        self.check_sample_kwargs(kwargs)
        noise = randn((n, *self.spec.shape), next(self.parameters()), generator)
        return self.decode(noise, labels=labels, generator=generator, **kwargs)

    @torch.no_grad()
    def decode(
        self, noise: torch.Tensor, *, labels: torch.Tensor | None = None, generator: torch.Generator | None = None, **kwargs
    ) -> torch.Tensor:
        """The samples the sampler makes from standard normal `noise` (x_t at t_max): the map reflow learns to straighten."""
        from genlab.samplers.diffusion import run

        self.check_sample_kwargs(kwargs)
        name = kwargs.pop("sampler", None) or self.config.sampler
        steps = int(kwargs.pop("steps", None) or self.config.steps)
        den = self.denoiser(labels, kwargs.pop("guidance", None))
        progress = bool(kwargs.pop("progress", False))
        opts = {k: v for k, v in kwargs.items() if v is not None}
        x = run(name, den, noise.to(self.device), steps, generator=generator, progress=progress, **opts)
        return x.clamp(-1, 1) if self.spec.is_image else x

    @torch.no_grad()
    def trajectory(
        self, noise: torch.Tensor, steps: int, *, labels: torch.Tensor | None = None, guidance: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Euler in t from x_1 = noise to t = 0 on the uniform grid, unclipped: (path (steps + 1, B, *shape), times (steps + 1,))."""
        self.check_sample_labels(labels)
        w = self.config.guidance if guidance is None else float(guidance)
        y = None if labels is None else labels.to(self.device)
        ts = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
        x = noise.to(self.device)
        path = [x]
        for t, t_next in zip(ts[:-1].tolist(), ts[1:].tolist()):
            tt = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
            x = x + (t_next - t) * self.guided_velocity(x, tt, y, w)  # Euler step.
            path.append(x)
        return torch.stack(path), ts

    # ---------------------------------------------------------------- likelihood
    def _divergence(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None, probes: torch.Tensor, exact: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(v(x, t), div_x v (B,)) from probes z_k (K, B, *shape): sum_k z_k^T (dv/dx) z_k over the D basis vectors is the exact
        trace, mean_k over Rademacher probes Hutchinson's unbiased estimate. The K copies of the batch go through the network
        and back as one batch of K B examples (the network treats examples independently)."""
        K, B = probes.shape[0], x.shape[0]
        with torch.enable_grad():
            xr = x.detach().repeat(K, *([1] * (x.dim() - 1))).requires_grad_(True)
            v = self.velocity(xr, t.repeat(K), None if y is None else y.repeat(K))
            z = probes.flatten(0, 1)
            (g,) = torch.autograd.grad((v * z).sum(), xr)
        per = sum_except_batch(g * z).view(K, B)
        return v[:B].detach(), (per.sum(0) if exact else per.mean(0)).detach()

    def log_prob(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        trace: str | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """log p(x) per example (nats) by the instantaneous change of variables (Chen et al. 2018):
            log p_0(x_0) = log N(x_1; 0, I) + int_0^1 div v(x_t, t) dt,   dx_t / dt = v(x_t, t),
        solved jointly with RK4 in `likelihood_steps` steps from the data (t = 0) to the noise (t = 1). The divergence is
        exact or Hutchinson's estimate (FFJORD, Grathwohl et al. 2019) with Rademacher probes drawn once from `generator`
        (a fixed seed 0 when None, so the estimate is reproducible)."""
        c = self.config
        trace = trace or c.trace
        if trace == "auto":
            trace = "exact" if self.spec.dim <= 16 else "hutchinson"
        y = self.class_labels(y, x.shape[0])
        exact = trace == "exact"
        if exact:
            d = self.spec.dim
            probes = torch.eye(d, dtype=x.dtype, device=x.device).view(d, 1, *x.shape[1:]).expand(d, *x.shape)
        else:
            g = generator if generator is not None else torch.Generator().manual_seed(0)
            probes = (torch.randint(0, 2, (c.hutchinson_samples, *x.shape), generator=g, device=g.device) * 2 - 1).to(x)
        n = steps or c.likelihood_steps
        h = 1.0 / n
        acc = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)

        def f(xs: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
            return self._divergence(xs, torch.full((xs.shape[0],), t, dtype=xs.dtype, device=xs.device), y, probes, exact)

        for i in range(n):
            t = i * h
            k1, d1 = f(x, t)
            k2, d2 = f(x + 0.5 * h * k1, t + 0.5 * h)
            k3, d3 = f(x + 0.5 * h * k2, t + 0.5 * h)
            k4, d4 = f(x + h * k3, t + h)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)  # RK4 step of the flow and of its log-density.
            acc = acc + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
        return sum_except_batch(standard_normal_log_prob(x)) + acc


__all__ = ["FlowDenoiser", "FlowMatchingConfig", "FlowMatchingModel", "T_SCALE", "ot_pairs"]

"""Gaussian diffusion, one model for the design space: DDPM (Ho et al. 2020) with linear / cosine (Nichol & Dhariwal 2021) /
sigmoid schedules, eps / x0 / v prediction (Salimans & Ho 2022), min-SNR-gamma weighting (Hang et al. 2023), and EDM's sigma
formulation with its preconditioning and log-normal noise levels (Karras et al. 2022); classifier-free guidance (Ho & Salimans
2022) and SR3-style low-resolution conditioning (Saharia et al. 2022).

Every model is exposed to the samplers as a denoiser D(x; sigma) ~ E[x_0 | x_0 + sigma eps = x] (EDM eq. 7):
    D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma)),
and a VP model's x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps is x_sigma scaled by sqrt(alpha_bar_t), with
sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t), c_in = 1 / sqrt(1 + sigma^2) = sqrt(alpha_bar_t) and c_noise = t.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab import registry
from genlab.config import param
from genlab.errors import ConfigError
from genlab.models.base import Batch, GenerativeModel, SampleOption
from genlab.models.diffusion import schedules
from genlab.models.diffusion.network import NetworkConfig, build_network, run_network
from genlab.models.diffusion.vlb import variational_bound
from genlab.noise import randn
from genlab.registry import register_model
from genlab.samplers.diffusion import run
from genlab.spec import DataSpec


@dataclass
class DiffusionConfig(NetworkConfig):
    """A Gaussian diffusion model: formulation, schedule, prediction target, loss weighting, network and sampling defaults."""

    name: str = param("diffusion", help="model name")
    formulation: Literal["vp", "edm"] = param(
        "vp", help="vp: discrete-time variance-preserving (DDPM) with a beta schedule; edm: EDM's sigma formulation"
    )
    schedule: Literal["linear", "cosine", "sigmoid"] = param("linear", help="vp: beta schedule")
    timesteps: int = param(1000, ge=2, help="vp: number of diffusion steps T; edm: grid of the bound and of ddpm sampling")
    prediction: Literal["auto", "eps", "x0", "v"] = param(
        "auto", help="what the network predicts: auto = eps for vp, v (EDM's F, up to sign) for edm"
    )
    weighting: Literal["auto", "uniform", "min_snr", "edm"] = param(
        "auto", help="loss weight over noise levels: uniform (MSE of the prediction), min_snr, edm; auto = uniform (vp) / edm (edm)"
    )
    snr_gamma: float = param(5.0, gt=0, help="min_snr: the weight in x0-space is min(SNR, gamma)")
    sigma_data: float = param(0.5, gt=0, help="edm: standard deviation of the data in c_skip, c_out, c_in and the edm weight")
    p_mean: float = param(-1.2, help="edm: ln sigma ~ N(p_mean, p_std^2) in training")
    p_std: float = param(1.2, gt=0, help="edm: ln sigma ~ N(p_mean, p_std^2) in training")
    sigma_min: float = param(0.002, gt=0, help="edm: smallest noise level of the sampling grid")
    sigma_max: float = param(80.0, gt=0, help="largest noise level of the rho-schedule (edm: of every grid; vp: at most the schedule's)")
    rho: float = param(7.0, gt=0, help="exponent of EDM's rho-schedule of sampling noise levels")
    lowres: int = param(0, ge=0, help="super-resolution: condition on x average-pooled by this factor (0 = off), e.g. 2: 14 -> 28")
    sampler: str = param("dpmpp_2m", help="default sampler of sample(): ddpm, ddim, euler, heun, dpmpp_2m")
    steps: int = param(20, ge=1, help="default function evaluations of sample() (ddpm: all T steps unless given)")
    guidance: float = param(1.0, ge=0, help="default classifier-free guidance scale w: D = D_u + w (D_c - D_u); 1 = none")
    vlb_terms: int = param(50, ge=0, help="nll_bound: transition terms drawn per example (unbiased estimate); 0 = all")

    def validate(self) -> None:
        if self.formulation == "edm" and self.sigma_min >= self.sigma_max:
            raise ConfigError(f"model.sigma_min ({self.sigma_min}) must be below model.sigma_max ({self.sigma_max})")


class _Denoiser:
    """A model bound to labels, guidance and low-res conditioning: the `Denoiser` the samplers walk."""

    def __init__(self, model: DiffusionModel, y: torch.Tensor | None, guidance: float, cond: torch.Tensor | None):
        self.model, self.y, self.guidance, self.cond = model, y, guidance, cond

    def __call__(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        m = self.model
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0]).contiguous()
        if self.y is None or self.guidance == 1.0:
            d = m.denoise(x, s, self.y, self.cond)
        elif self.guidance == 0.0:
            d = m.denoise(x, s, torch.full_like(self.y, m.null_label), self.cond)
        else:
            # One batched pass for the conditional and the unconditional denoiser: D = D_u + w (D_c - D_u).
            null = torch.full_like(self.y, m.null_label)
            cond = None if self.cond is None else torch.cat([self.cond, self.cond])
            d_c, d_u = m.denoise(torch.cat([x, x]), torch.cat([s, s]), torch.cat([self.y, null]), cond).chunk(2)
            d = d_u + self.guidance * (d_c - d_u)
        # Images live in [-1, 1], and so does E[x0 | x]: clipping the estimate (Ho et al. 2020's sampler) only removes error,
        # which an eps-predicting network amplifies by sigma at high noise.
        return d.clamp(-1, 1) if m.bounded_samples else d

    def sigmas(self, kind: str, n: int) -> torch.Tensor:
        return self.model.sigma_grid(kind, n)

    def prior_std(self, sigma: float) -> float:
        return self.model.prior_std(sigma)


@register_model("diffusion", DiffusionConfig)
class DiffusionModel(GenerativeModel):
    """Gaussian diffusion with every sampler, guidance and the variational bound in bits/dim.

    Example:
        >>> model = DiffusionModel(DiffusionConfig(), DataSpec((1, 28, 28)))
        >>> model.loss({"x": x})["loss"].backward()
        >>> imgs = model.sample(16, sampler="heun", steps=35, generator=torch.Generator().manual_seed(0))
    """

    family = "diffusion"
    likelihood = "bound"
    bound_name = "VLB"

    @classmethod
    def sample_options(cls) -> tuple[SampleOption, ...]:
        """The sampler, its steps and guidance, and every option a registered sampler declares (`options=`)."""
        names = ", ".join(registry.list_samplers())
        own = (
            SampleOption("sampler", str, f"diffusion sampler: {names}"),
            SampleOption("steps", int, "number of function evaluations of the sampler"),
            SampleOption("guidance", float, "classifier-free guidance scale (conditional models)"),
            SampleOption("lowres", torch.Tensor, "low-resolution images to condition on (super-resolution)"),
            SampleOption("progress", bool, "show a progress bar"),
        )
        takes: dict[str, list[str]] = {}
        for name in registry.list_samplers():
            for o in registry.sampler(name).options:
                takes.setdefault(o, []).append(name)
        return own + tuple(SampleOption(o, float, f"option of the {', '.join(who)} sampler") for o, who in sorted(takes.items()))

    def __init__(self, config: DiffusionConfig, spec: DataSpec):
        super().__init__(config, spec)
        cfg = config
        self.edm = cfg.formulation == "edm"
        self.prediction = cfg.prediction if cfg.prediction != "auto" else ("v" if self.edm else "eps")
        self.weighting = cfg.weighting if cfg.weighting != "auto" else ("edm" if self.edm else "uniform")
        # sigma_data of the preconditioning: the VP network sees x_t = x_sigma / sqrt(1 + sigma^2), i.e. sigma_data = 1.
        self.sd = cfg.sigma_data if self.edm else 1.0
        if cfg.lowres and not spec.is_image:
            raise ConfigError("model.lowres (super-resolution) needs images; set model.lowres=0 for vector data")
        if cfg.lowres and any(s % cfg.lowres for s in spec.shape[1:]):
            raise ConfigError(f"model.lowres={cfg.lowres} must divide the image size {spec.shape[1:]}")
        registry.sampler(cfg.sampler)  # a clear error naming the closest sampler
        K = spec.num_classes if cfg.conditional else 0
        self.null_label = K
        self.net = self.build_net(cfg, spec)
        if not self.edm:
            betas = schedules.betas_for(cfg.schedule, cfg.timesteps)
            sig = schedules.vp_sigmas(schedules.alpha_bar(betas))
            self.register_buffer("vp_sigma_table", sig.float(), persistent=False)
            self._log_sig64 = sig.log()  # float64, for c_noise interpolation and grids

    def build_net(self, cfg: DiffusionConfig, spec: DataSpec) -> nn.Module:
        """The denoiser network F: genlab's UNet / MLP (models/diffusion/network.py), with the low-res image's channels
        when super-resolving. A model over other data (video) builds its own."""
        return build_network(cfg, spec, cond_channels=spec.shape[0] if cfg.lowres else 0)

    @property
    def bounded_samples(self) -> bool:
        """Whether samples live in [-1, 1] (and are clamped to it): images."""
        return self.spec.is_image

    # ----------------------------------------------------------------- the denoiser
    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        tiny = {"channels": [8, 8], "attn_resolutions": [4], "heads": 2, "timesteps": 20, "steps": 4}
        return [
            (tiny, DataSpec((1, 8, 8), encoding="8bit")),
            (
                {**tiny, "formulation": "edm", "conditional": True, "sampler": "heun", "guidance": 2.0},
                DataSpec((3, 8, 8), num_classes=3),
            ),
            (
                {**tiny, "schedule": "cosine", "prediction": "x0", "weighting": "min_snr", "lowres": 2, "sampler": "ddpm"},
                DataSpec((1, 8, 8)),
            ),
            (
                {"width": 16, "depth": 1, "prediction": "v", "schedule": "sigmoid", "timesteps": 20, "steps": 4},
                DataSpec((2,), encoding="continuous"),
            ),
            ({**tiny, "sampler": "ddim"}, DataSpec((1, 8, 8), encoding="binary")),
            (
                {"wave_channels": 8, "wave_layers": 2, "dilation_cycle": 2, "wave_patch": 2, "timesteps": 20, "steps": 4}
                | {"conditional": True},
                DataSpec((1, 16), num_classes=3, encoding="continuous", modality="waveform"),
            ),
        ]

    def _bc(self, v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return v.view(-1, *([1] * (like.dim() - 1)))

    def preconditioning(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_skip, c_out, c_in) at noise levels sigma (B,), for this model's prediction target:
        eps: D = x - sigma F; x0: D = F; v: c_skip = sd^2 / (sigma^2 + sd^2), c_out = -sigma sd / sqrt(sigma^2 + sd^2)
        (EDM's c_out with the sign of v = alpha eps - sigma_vp x0); c_in = 1 / sqrt(sigma^2 + sd^2)."""
        sd2 = self.sd**2
        c_in = 1 / (sigma**2 + sd2).sqrt()
        if self.prediction == "eps":
            return torch.ones_like(sigma), -sigma, c_in
        if self.prediction == "x0":
            return torch.zeros_like(sigma), torch.ones_like(sigma), c_in
        return sd2 / (sigma**2 + sd2), -sigma * self.sd * c_in, c_in

    def c_noise(self, sigma: torch.Tensor) -> torch.Tensor:
        """The network's noise input: vp: the (fractional) timestep t with sigma_t = sigma, by interpolating log sigma over
        the schedule; edm: 250 ln sigma (EDM's ln(sigma) / 4, scaled to the range of timesteps)."""
        if self.edm:
            return 250.0 * sigma.log()
        log_tab = self._log_sig64.to(sigma.device)
        ls = sigma.double().log().clamp(log_tab[0], log_tab[-1])
        i = torch.searchsorted(log_tab, ls).clamp(1, len(log_tab) - 1)
        lo, hi = log_tab[i - 1], log_tab[i]
        return ((i - 1) + (ls - lo) / (hi - lo)).to(sigma.dtype)

    def lowres_condition(self, lowres: torch.Tensor) -> torch.Tensor:
        """Low-resolution images (B, C, H/f, W/f) -> the network's conditioning input: bicubic upsampling to (B, C, H, W)."""
        return F.interpolate(lowres, size=self.spec.shape[1:], mode="bicubic", align_corners=False).clamp(-1, 1)

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> the low-resolution image the super-resolution model conditions on: f x f average pooling."""
        return F.avg_pool2d(x, self.config.lowres)

    def denoise(
        self, x: torch.Tensor, sigma: torch.Tensor, y: torch.Tensor | None = None, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """D(x; sigma) = c_skip x + c_out F(c_in x, c_noise): x (B, *shape) at noise levels sigma (B,) -> x0 estimate."""
        c_skip, c_out, c_in = (self._bc(c, x) for c in self.preconditioning(sigma))
        out = self._net(c_in * x, self.c_noise(sigma), y, cond)
        return c_skip * x + c_out * out.to(x.dtype)

    def _net(self, x: torch.Tensor, c_noise: torch.Tensor, y: torch.Tensor | None, cond: torch.Tensor | None) -> torch.Tensor:
        if self.config.lowres and cond is None:
            cond = torch.zeros_like(x)  # the dropped condition
        return run_network(self.net, self.spec, x, c_noise, y, cond)

    def denoiser(self, labels: torch.Tensor | None = None, guidance: float | None = None, lowres: torch.Tensor | None = None) -> _Denoiser:
        """The model as a sampler's `Denoiser`, bound to class labels (with guidance scale w) and low-res images."""
        self.check_sample_labels(labels)
        cond = None
        if self.config.lowres:
            # Without low-res images a super-resolution model samples unconditionally (the condition it drops in training).
            cond = None if lowres is None else self.lowres_condition(lowres.to(self.device))
        elif lowres is not None:
            raise ValueError("lowres= was given, but this model is not a super-resolution model (model.lowres=0)")
        w = self.config.guidance if guidance is None else float(guidance)
        return _Denoiser(self, None if labels is None else labels.to(self.device), w, cond)

    # ------------------------------------------------------------------- schedule
    @property
    def sigma_range(self) -> tuple[float, float]:
        if self.edm:
            return self.config.sigma_min, self.config.sigma_max
        return float(self._log_sig64[0].exp()), float(self._log_sig64[-1].exp())

    def sigma_grid(self, kind: str, n: int) -> torch.Tensor:
        """(n + 1,) float64 noise levels from the top down to 0 for a sampler: "discrete" / "uniform" (vp: n evenly spaced of
        the T timesteps, as DDIM; edm: geometric), "karras" (EDM eq. 5 with rho)."""
        lo, hi = self.sigma_range
        if kind == "karras":
            # A VP schedule's top noise level can be far above what matters (cosine: 2e4): the rho-grid stops at sigma_max.
            return schedules.karras_sigmas(n, lo, hi if self.edm else min(hi, self.config.sigma_max), self.config.rho)
        if self.edm:
            s = (
                torch.logspace(torch.log10(torch.tensor(hi)), torch.log10(torch.tensor(lo)), n, dtype=torch.float64)
                if n > 1
                else torch.tensor([hi])
            )
        else:
            T = len(self._log_sig64)
            t = torch.linspace(T - 1, 0, min(n, T), dtype=torch.float64).round().long()
            s = self._log_sig64[t].exp()
        return torch.cat([s.double(), torch.zeros(1, dtype=torch.float64)])

    def prior_std(self, sigma: float) -> float:
        """Std of x_sigma under the prior: vp x_T ~ N(0, I) is x_sigma = x_T sqrt(1 + sigma^2); edm uses N(0, sigma^2 I)."""
        return sigma if self.edm else (1 + sigma**2) ** 0.5

    def training_sigmas(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """Noise levels of a training batch: vp: sigma_t, t ~ U{0..T-1}; edm: ln sigma ~ N(p_mean, p_std^2)."""
        if self.edm:
            return (self.config.p_mean + self.config.p_std * torch.randn(n, device=like.device, dtype=like.dtype)).exp()
        t = torch.randint(0, len(self.vp_sigma_table), (n,), device=like.device)
        return self.vp_sigma_table[t].to(like.dtype)

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """lambda(sigma) of E ||D(x0 + sigma eps; sigma) - x0||^2: uniform = 1 / c_out^2 (plain MSE of the network's target),
        min_snr = min(1 / sigma^2, gamma), edm = (sigma^2 + sd^2) / (sigma sd)^2."""
        if self.weighting == "uniform":
            return 1 / self.preconditioning(sigma)[1] ** 2
        if self.weighting == "min_snr":
            return (1 / sigma**2).clamp(max=self.config.snr_gamma)
        sd = self.config.sigma_data
        return (sigma**2 + sd**2) / (sigma * sd) ** 2

    # ------------------------------------------------------------------- training
    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, torch.Tensor]:
        """lambda(sigma) c_out^2 ||F(c_in x, c_noise) - (x0 - c_skip x) / c_out||^2 per dimension, x = x0 + sigma eps
        (EDM eq. 8): the weighted x0-error computed in the network's own output space."""
        x0, y = batch["x"], batch.get("y")
        B = x0.shape[0]
        y = self._train_labels(y, B, x0)
        cond = self.training_condition(x0)
        sigma = self.training_sigmas(B, x0)
        x = x0 + self._bc(sigma, x0) * torch.randn_like(x0)
        c_skip, c_out, c_in = (self._bc(c, x0) for c in self.preconditioning(sigma))
        target = (x0 - c_skip * x) / c_out
        out = self._net(c_in * x, self.c_noise(sigma), y, cond).to(x0.dtype)
        mse = (out - target).pow(2).flatten(1).mean(1)
        w = self.loss_weight(sigma) * self.preconditioning(sigma)[1] ** 2
        return {"loss": (w * mse).mean(), "mse": mse.mean().detach()}

    def training_condition(self, x0: torch.Tensor) -> torch.Tensor | None:
        """The network's conditioning input for a training batch: the upsampled low-res image of x0 when super-resolving
        (dropped with probability p_uncond, for guidance), else none."""
        if not self.config.lowres:
            return None
        cond = self.lowres_condition(self.downsample(x0))
        if self.training and self.config.p_uncond > 0:
            keep = torch.rand(x0.shape[0], device=x0.device) >= self.config.p_uncond
            cond = cond * self._bc(keep.to(x0.dtype), x0)
        return cond

    def _train_labels(self, y: torch.Tensor | None, n: int, like: torch.Tensor) -> torch.Tensor | None:
        """Labels with label dropout: each replaced by the null label with probability p_uncond."""
        y = self.class_labels(y, n)
        if y is None:
            return None
        if self.training and self.config.p_uncond > 0:
            drop = torch.rand(n, device=like.device) < self.config.p_uncond
            y = torch.where(drop, torch.full_like(y, self.null_label), y)
        return y

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, n: int, *, labels: torch.Tensor | None = None, generator: torch.Generator | None = None, **kwargs) -> torch.Tensor:
        """n samples in data space with a sampler (`sampler`, `steps` function evaluations, `guidance`, `eta` for ddim,
        `s_churn`/`s_noise` for heun, `lowres` images for super-resolution, `progress` bar); defaults from the config.

        >>> model.sample(16, sampler="dpmpp_2m", steps=10, generator=torch.Generator().manual_seed(0))  # doctest: +SKIP
        """
        self.check_sample_kwargs(kwargs)
        name = kwargs.pop("sampler", None) or self.config.sampler
        steps = kwargs.pop("steps", None) or (self.num_timesteps if name == "ddpm" else self.config.steps)
        den = self.sampling_denoiser(labels, kwargs)
        progress = bool(kwargs.pop("progress", False))
        opts = {k: v for k, v in kwargs.items() if v is not None}
        noise = randn((n, *self.spec.shape), next(self.parameters()), generator)
        x = run(name, den, noise, int(steps), generator=generator, progress=progress, **opts)
        return x.clamp(-1, 1) if self.bounded_samples else x

    def sampling_denoiser(self, labels: torch.Tensor | None, kwargs: dict) -> _Denoiser:
        """The denoiser `sample` runs: bound to the labels, and to the guidance and conditioning options it pops from
        `kwargs` (here `guidance` and `lowres`)."""
        return self.denoiser(labels, kwargs.pop("guidance", None), kwargs.pop("lowres", None))

    @property
    def num_timesteps(self) -> int:
        return self.config.timesteps

    # ---------------------------------------------------------------- likelihood
    def bound_sigmas(self) -> torch.Tensor:
        """Ascending noise levels of the bound: vp: the T steps of the schedule; edm: EDM's rho-grid of `timesteps` levels."""
        if self.edm:
            return self.sigma_grid("karras", self.config.timesteps)[:-1].flip(0)
        return self._log_sig64.exp()

    @torch.no_grad()
    def nll_bound(
        self, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The variational bound on -log p(x) per example (nats), see `variational_bound`: a discretised Gaussian decoder on
        8-bit (non-dequantised) or binary data, a density otherwise; `vlb_terms` transition terms per example (0 = all).
        `k` (importance samples) has no meaning here and is ignored."""
        den = self.denoiser(y if self.conditional else None, 1.0, self.downsample(x) if self.config.lowres else None)
        if self.spec.encoding == "8bit" and not self.spec.dequantized:
            bins = 256
        elif self.spec.encoding == "binary":
            bins = 2
        else:
            bins = None
        sig = self.bound_sigmas()
        base = den.y

        def denoise(xs: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            reps = xs.shape[0] // x.shape[0]
            yy = None if base is None else base.repeat(reps)
            cond = None if den.cond is None else den.cond.repeat(reps, 1, 1, 1)
            return self.denoise(xs, s, yy, cond)

        out = variational_bound(
            denoise, x, sig, self.prior_std(float(sig[-1])), bins=bins, terms=self.config.vlb_terms, generator=generator
        )
        return out["nll_bound"]

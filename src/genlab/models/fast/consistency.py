"""Consistency models (Song et al. 2023): f(x_sigma, sigma) ~ x_0 along every probability-flow ODE trajectory, trained from
scratch by improved consistency training (Song & Dhariwal 2023: pseudo-Huber loss, lognormal noise levels, the N(k) curriculum,
no EMA target), tuned from a trained flow-matching or diffusion run by easy consistency tuning (Geng et al. 2024: continuous
level pairs whose gap shrinks from the whole level to nothing), or distilled from a trained diffusion / flow-matching run whose
ODE step gives the target; 1-step and multistep consistency sampling."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from genlab.config import param
from genlab.errors import ConfigError
from genlab.models.base import Batch, GenerativeModel, SampleOption
from genlab.models.diffusion.network import NetworkConfig, build_network, run_network
from genlab.models.diffusion.schedules import karras_sigmas
from genlab.models.distributions import randn
from genlab.models.fast._common import TeacherSlot, bc, drop_labels, guided, init_once
from genlab.models.fast.flow_matching import T_SCALE
from genlab.registry import register_model
from genlab.spec import DataSpec


@dataclass
class ConsistencyConfig(NetworkConfig):
    """A consistency model: its parametrisation, consistency training's schedule or the teacher it distils, and sampling."""

    name: str = param("consistency", help="model name")
    sigma_min: float = param(0.002, gt=0, help="epsilon of the boundary condition f(x, sigma_min) = x")
    sigma_max: float = param(80.0, gt=0, help="largest noise level; sampling starts from N(0, sigma_max^2 I)")
    sigma_data: float = param(0.5, gt=0, help="standard deviation of the data in c_skip, c_out, c_in")
    rho: float = param(7.0, gt=0, help="exponent of the Karras discretisation of [sigma_min, sigma_max]")
    p_mean: float = param(-1.1, help="training: noise levels drawn with p(sigma_i) ~ a lognormal N(p_mean, p_std^2) in ln sigma")
    p_std: float = param(2.0, gt=0, help="training: see p_mean")
    s0: int = param(10, ge=1, help="consistency training: initial discretisation steps of the curriculum N(k)")
    s1: int = param(1280, ge=1, help="consistency training: final discretisation steps of the curriculum N(k)")
    curriculum_steps: int = param(10000, ge=1, help="consistency training: K, the training steps over which N(k) doubles up to s1")
    huber_c: float = param(0.0, ge=0, help="pseudo-Huber c of sqrt(||a - b||^2 + c^2) - c; 0 = 0.00054 sqrt(D) (iCT)")
    teacher: str = param("", help="distillation: run directory of a trained diffusion or flow-matching model (empty: train from scratch)")
    teacher_solver: Literal["heun", "euler"] = param("heun", help="distillation: the teacher's ODE step from sigma_{n+1} to sigma_n")
    teacher_steps: int = param(18, ge=2, help="distillation: N, the levels of the fixed Karras discretisation")
    teacher_guidance: float = param(1.0, ge=0, help="distillation: the teacher's classifier-free guidance scale")
    init_from_teacher: bool = param(False, help="distillation: start from the teacher's network weights (same network keys needed)")
    init_from: str = param(
        "", help="a trained run (flow_matching with parametrisation flow, EDM diffusion with edm) whose network weights start f"
    )
    parametrisation: Literal["edm", "flow"] = param(
        "edm",
        help="f's form: edm c_skip x + c_out F(c_in x, 250 ln sigma); flow (1 + sigma_min) x_t - (t - t_min) F(x_t, 1000 t), "
        "t = sigma / (1 + sigma), x_t = x / (1 + sigma): a flow-matching velocity network, so f starts at that run's denoiser",
    )
    levels: Literal["grid", "ect"] = param(
        "grid",
        help="training level pairs: grid = neighbours on a Karras grid (iCT's curriculum N(k), or distillation's teacher_steps); "
        "ect = continuous sigma_t ~ lognormal, sigma_r = sigma_t (1 - n(sigma_t) / ect_q^a), n = 1 + 8 sigmoid(-sigma_t), "
        "stage a = ceil(ect_stages k / curriculum_steps) (easy consistency tuning, Geng et al. 2024)",
    )
    ect_q: float = param(2.0, gt=1, help="ect: the gap sigma_t - sigma_r shrinks by this factor each stage")
    ect_stages: int = param(8, ge=1, help="ect: stages over curriculum_steps training steps (stage 0 is the diffusion loss itself)")
    steps: int = param(1, ge=1, help="default network evaluations of sample(): 1, or multistep consistency sampling")
    sigma_last: float = param(0.8, gt=0, help="multistep sampling: the lowest of the rho-spaced levels sigma_max > ... > sigma_last")
    guidance: float = param(1.0, ge=0, help="default guidance scale w: f = f_u + w (f_c - f_u); 1 = none")

    def validate(self) -> None:
        check_sigma_last(self.sigma_last, self.sigma_min, self.sigma_max, "model.sigma_last")
        if self.s0 > self.s1:
            raise ConfigError(f"model.s0 ({self.s0}) must not exceed model.s1 ({self.s1})")
        if self.init_from_teacher and not self.teacher:
            raise ConfigError("model.init_from_teacher=true needs model.teacher (a run directory)")
        if self.init_from_teacher and self.init_from:
            raise ConfigError("model.init_from and model.init_from_teacher both pick the starting weights; set one")


def check_sigma_last(last: float, sigma_min: float, sigma_max: float, key: str) -> float:
    """`last` if sigma_min < last < sigma_max (the lowest level of multistep sampling), else a ConfigError naming `key` and the range:
    the config's at build time, a sample() option at sampling time."""
    if not sigma_min < last < sigma_max:
        raise ConfigError(f"{key}: expected sigma_min < sigma_last < sigma_max ({sigma_min}, {sigma_max}), got {last}")
    return last


def pseudo_huber(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
    """d(a, b) = sqrt(||a - b||^2 + c^2) - c per example (B,): ~ ||a - b||^2 / (2c) near 0, ~ ||a - b|| far away (iCT eq. 8)."""
    return ((a - b).pow(2).flatten(1).sum(1) + c * c).sqrt() - c


def curriculum(k: int, K: int, s0: int, s1: int) -> int:
    """N(k) = min(s0 2^floor(k / K'), s1) + 1 with K' = floor(K / (log2 floor(s1 / s0) + 1)) (iCT eq. 9).

    >>> [curriculum(k, 600, 10, 40) for k in (0, 199, 200, 400, 599)]
    [11, 11, 21, 41, 41]
    """
    k_prime = max(1, math.floor(K / (math.log2(math.floor(s1 / s0)) + 1)))
    return min(s0 * 2 ** (k // k_prime), s1) + 1


def karras_levels(n: int, sigma_min: float, sigma_max: float, rho: float) -> torch.Tensor:
    """Ascending sigma_1 = sigma_min < ... < sigma_n = sigma_max, evenly spaced in sigma^(1/rho) (float64, (n,))."""
    return karras_sigmas(n, sigma_min, sigma_max, rho)[:-1].flip(0)


def lognormal_index_weights(sig: torch.Tensor, p_mean: float, p_std: float) -> torch.Tensor:
    """p(i) ~ erf((ln sigma_{i+1} - P_mean) / (sqrt 2 P_std)) - erf((ln sigma_i - P_mean) / (sqrt 2 P_std)), i < N (iCT sec. 3.5):
    the lognormal's mass between consecutive levels."""
    cdf = torch.erf((sig.log() - p_mean) / (math.sqrt(2) * p_std))
    return (cdf[1:] - cdf[:-1]).clamp_min(0)


def ect_pairs(sigma_t: torch.Tensor, stage: int, q: float, sigma_min: float, k: float = 8.0, b: float = 1.0) -> torch.Tensor:
    """Easy consistency tuning's lower level (Geng et al. 2024): sigma_r = max(sigma_t (1 - n(sigma_t) / q^stage), sigma_min),
    n(sigma) = 1 + k sigmoid(-b sigma). Stage 0 gives sigma_r = sigma_min everywhere (the target is the data: the diffusion
    loss); each stage divides the gap by q, most at high noise, where n -> 1.

    >>> ect_pairs(torch.tensor([0.002, 1.0, 80.0]), 0, 2.0, 0.002).tolist()
    [0.002, 0.002, 0.002]
    """
    n = 1 + k * torch.sigmoid(-b * sigma_t)
    return (sigma_t * (1 - n / q**stage)).clamp_min(sigma_min)


def ode_step(denoiser, x: torch.Tensor, s_from: float | torch.Tensor, s_to: float | torch.Tensor, solver: str = "heun") -> torch.Tensor:
    """One step of the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma from s_from to s_to > 0 (floats, or (B,) per
    example): Euler, or Heun's 2nd-order correction with the slope at the Euler point (EDM Algorithm 1). Distillation's x_hat."""
    a, b = (bc(s.to(x.dtype), x) if torch.is_tensor(s) else s for s in (s_from, s_to))
    d = (x - denoiser(x, s_from)) / a
    x_next = x + (b - a) * d  # Euler step.
    if solver == "euler":
        return x_next
    d2 = (x_next - denoiser(x_next, s_to)) / b
    return x + (b - a) * 0.5 * (d + d2)  # 2nd order correction.


@register_model("consistency", ConsistencyConfig)
class ConsistencyModel(GenerativeModel):
    """A consistency function f_theta with iCT or distillation training and 1-step / multistep sampling.

    Example:
        >>> model = ConsistencyModel(ConsistencyConfig(), DataSpec((1, 28, 28)))
        >>> model.loss({"x": x})["loss"].backward()
        >>> imgs = model.sample(16, steps=1, generator=torch.Generator().manual_seed(0))   # one network evaluation
    """

    family = "fast"

    def __init__(self, config: ConsistencyConfig, spec: DataSpec):
        super().__init__(config, spec)
        self.net = build_network(config, spec)
        self.null_label = spec.num_classes
        self.register_buffer("train_step", torch.zeros((), dtype=torch.long))  # k of the curriculum: loss() calls in training
        self.register_buffer("initialized", torch.zeros((), dtype=torch.uint8))
        self._teacher = TeacherSlot(config.teacher, "teacher") if config.teacher else None
        self._source = TeacherSlot(config.init_from, "init_from") if config.init_from else None
        self.huber_c = config.huber_c or 0.00054 * math.sqrt(spec.dim)

    @classmethod
    def sample_options(cls) -> tuple[SampleOption, ...]:
        return (
            SampleOption("steps", int, "network evaluations: 1, or multistep consistency sampling on sigma_max > ... > sigma_last"),
            SampleOption("guidance", float, "classifier-free guidance scale (conditional models)"),
            SampleOption("sigma_last", float, "multistep consistency sampling: the lowest level (2 steps: the one re-noising level)"),
        )

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        tiny = {"channels": [8, 8], "attn_resolutions": [4], "heads": 2, "s0": 2, "s1": 8, "curriculum_steps": 4}
        return [
            (tiny, DataSpec((1, 8, 8), encoding="8bit")),
            ({**tiny, "conditional": True, "guidance": 2.0, "steps": 2}, DataSpec((3, 8, 8), num_classes=3)),
            ({"width": 16, "depth": 1, "steps": 3, "huber_c": 0.01}, DataSpec((2,), encoding="continuous")),
            ({**tiny, "parametrisation": "flow", "levels": "ect", "steps": 2}, DataSpec((1, 8, 8), encoding="8bit")),
        ]

    # ----------------------------------------------------------- the function
    def preconditioning(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_skip, c_out, c_in) at sigma (B,). edm: c_skip = sd^2 / ((sigma - sigma_min)^2 + sd^2), c_out = -(sigma - sigma_min)
        sd / sqrt(sigma^2 + sd^2) (the sign of genlab's EDM diffusion, so its weights start a student near its denoiser),
        c_in = 1 / sqrt(sigma^2 + sd^2). flow: c_in = 1 / (1 + sigma) (x_t of the straight path), c_skip = (1 + sigma_min) c_in,
        c_out = -(t - t_min), so f = (1 + sigma_min) x_t - (t - t_min) v: a flow-matching run's denoiser x_t - t v up to
        sigma_min (x_t + v). Either way c_skip = 1 and c_out = 0 exactly at sigma_min: f(x, sigma_min) = x."""
        smin = self.config.sigma_min
        if self.config.parametrisation == "flow":
            c_in = 1 / (1 + sigma)
            return (1 + smin) * c_in, -(sigma * c_in - smin / (1 + smin)), c_in
        sd = self.config.sigma_data
        c_in = 1 / (sigma**2 + sd**2).sqrt()
        return sd**2 / ((sigma - smin) ** 2 + sd**2), -(sigma - smin) * sd * c_in, c_in

    def consistency_fn(self, x: torch.Tensor, sigma: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """f(x, sigma) = c_skip x + c_out F(c_in x, c_noise): x (B, *shape) = x_0 + sigma eps, sigma (B,) -> x_0 estimate;
        c_noise = 250 ln sigma (edm) or 1000 t (flow, the flow-matching model's time input)."""
        c_skip, c_out, c_in = (bc(c, x) for c in self.preconditioning(sigma))
        c_noise = T_SCALE * sigma / (1 + sigma) if self.config.parametrisation == "flow" else 250.0 * sigma.log()
        return c_skip * x + c_out * run_network(self.net, self.spec, c_in * x, c_noise, y)

    def _f(self, x: torch.Tensor, sigma: float | torch.Tensor, y: torch.Tensor | None, guidance: float) -> torch.Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0]).contiguous()
        return guided(self.consistency_fn, x, s, y, guidance, self.null_label)

    # --------------------------------------------------------------- training
    def start_weights(self, source: GenerativeModel, key: str) -> None:
        """Copy `source`'s network into f once, when training starts (a resumed run keeps its own weights). The run's network
        must read its input the way this parametrisation feeds it: a velocity network (flow matching) for flow, an x0 network
        in EDM's sigma form for edm."""
        wants_velocity = self.config.parametrisation == "flow"
        if hasattr(source, "velocity") != wants_velocity:
            other = "edm" if wants_velocity else "flow"
            raise ConfigError(
                f"model.{key}: that run holds a {type(source).__name__}, whose network fits "
                f"model.parametrisation={other!r}, not {self.config.parametrisation!r}"
            )
        init_once(self, source, self.initialized, key)

    def stage(self) -> int:
        """ect: the stage a = ceil(ect_stages k / curriculum_steps) of training step k (0 before the first step)."""
        c = self.config
        return math.ceil(c.ect_stages * int(self.train_step) / c.curriculum_steps)

    def training_levels(self, n: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(sigma_lo, sigma_hi) per example (n,) and a number to log: the grid's N, or ect's mean relative gap."""
        c = self.config
        if c.levels == "ect":
            s_hi = (c.p_mean + c.p_std * torch.randn(n, device=like.device, dtype=torch.float64)).exp()
            s_hi = s_hi.clamp(c.sigma_min, c.sigma_max)
            s_lo = ect_pairs(s_hi, self.stage(), c.ect_q, c.sigma_min)
            return s_lo.to(like.dtype), s_hi.to(like.dtype), float(((s_hi - s_lo) / s_hi).mean())
        sig = self.discretisation().to(like.device)
        i = torch.multinomial(lognormal_index_weights(sig, c.p_mean, c.p_std), n, replacement=True)
        return sig[i].to(like.dtype), sig[i + 1].to(like.dtype), float(len(sig))

    def discretisation(self) -> torch.Tensor:
        """This step's ascending levels: iCT's N(k) from the curriculum, or distillation's fixed N = teacher_steps."""
        c = self.config
        n = c.teacher_steps if c.teacher else curriculum(int(self.train_step), c.curriculum_steps, c.s0, c.s1)
        return karras_levels(n, c.sigma_min, c.sigma_max, c.rho)

    def teacher_model(self, device: torch.device) -> GenerativeModel:
        teacher = self._teacher.get(device)
        if not hasattr(teacher, "denoiser") or teacher.spec.shape != self.spec.shape:
            raise ConfigError(
                f"model.teacher: {self.config.teacher} holds a {type(teacher).__name__} for data of shape {teacher.spec.shape}; "
                f"distillation needs a diffusion or flow-matching run on this model's data (shape {self.spec.shape})"
            )
        if teacher.conditional != self.conditional:
            want = str(teacher.conditional).lower()
            raise ConfigError(f"model.teacher: the teacher's class conditioning differs from this model's; set model.conditional={want}")
        if self.config.init_from_teacher and self.training:
            self.start_weights(teacher, "init_from_teacher")
        return teacher

    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, torch.Tensor]:
        """lambda(sigma_i) d(f(x_0 + sigma_{i+1} z, sigma_{i+1}), sg f(x_hat_i, sigma_i)) with the pseudo-Huber d, i drawn with
        the lognormal weights and lambda = 1 / (sigma_{i+1} - sigma_i) (iCT). Consistency training: x_hat_i = x_0 + sigma_i z with
        the same z; distillation: x_hat_i is the teacher's ODE step from x_{i+1} to sigma_i (Song et al. 2023, on iCT's levels,
        weighting and metric). The target uses the same weights under stop-gradient (iCT drops the EMA target). With
        levels = ect the pair is continuous (ect_pairs) and the same loss applies."""
        x0 = batch["x"]
        B = x0.shape[0]
        c = self.config
        y = self.class_labels(batch.get("y"), B)
        if self._source is not None and self.training and not self.initialized:  # a resumed run needs no source
            self.start_weights(self._source.get(x0.device), "init_from")
        s_lo, s_hi, level_info = self.training_levels(B, x0)
        if self.training:
            self.train_step += 1
        teacher = self.teacher_model(x0.device) if c.teacher else None
        z = torch.randn_like(x0)
        x_hi = x0 + bc(s_hi, x0) * z
        y_in = drop_labels(y, c.p_uncond, self.null_label, self.training)
        with torch.no_grad():
            x_lo = x0 + bc(s_lo, x0) * z if teacher is None else self.teacher_target(teacher, x_hi, s_hi, s_lo, y_in)
            target = self.consistency_fn(x_lo, s_lo, y_in)
        lam = 1 / (s_hi - s_lo).clamp_min(1e-12)  # ect: sigma_t = sigma_min gives f = x at both ends, d = 0
        d = pseudo_huber(self.consistency_fn(x_hi, s_hi, y_in), target, self.huber_c)
        return {"loss": (lam * d).mean(), "gap" if c.levels == "ect" else "N": torch.tensor(level_info)}

    def teacher_target(
        self, teacher: GenerativeModel, x: torch.Tensor, s_from: torch.Tensor, s_to: torch.Tensor, y: torch.Tensor | None
    ) -> torch.Tensor:
        """x_hat: the teacher's ODE step of each example from its s_from to its s_to (B,), guided on the labelled examples."""
        w = self.config.teacher_guidance
        den = teacher.denoiser(None, w) if y is None else _LabelledDenoiser(teacher, y, self.null_label, w)
        return ode_step(den, x, s_from, s_to, self.config.teacher_solver)

    # --------------------------------------------------------------- sampling
    def sampling_sigmas(self, steps: int, sigma_last: float | None = None) -> torch.Tensor:
        """Levels of multistep consistency sampling: sigma_max, then steps - 1 rho-spaced levels down to sigma_last (default:
        the config's)."""
        c = self.config
        last = c.sigma_last if sigma_last is None else check_sigma_last(float(sigma_last), c.sigma_min, c.sigma_max, "sigma_last")
        if steps == 1:
            return torch.tensor([c.sigma_max], dtype=torch.float64)
        return karras_sigmas(steps, last, c.sigma_max, c.rho)[:-1]

    @torch.no_grad()
    def sample(self, n: int, *, labels: torch.Tensor | None = None, generator: torch.Generator | None = None, **kwargs) -> torch.Tensor:
        """Song et al. 2023 Algorithm 1: x = f(sigma_max z, sigma_max); for each further level sigma,
        x = f(x + sqrt(sigma^2 - sigma_min^2) z', sigma). `steps` network evaluations.

        >>> model.sample(16, steps=2, generator=torch.Generator().manual_seed(0))  # doctest: +SKIP
        """
        self.check_sample_kwargs(kwargs)
        self.check_sample_labels(labels)
        steps = int(kwargs.get("steps") or self.config.steps)
        w = self.config.guidance if kwargs.get("guidance") is None else float(kwargs["guidance"])
        y = None if labels is None else labels.to(self.device)
        like = next(self.parameters())
        sig = self.sampling_sigmas(steps, kwargs.get("sigma_last")).tolist()
        x = self._f(sig[0] * randn((n, *self.spec.shape), like, generator), sig[0], y, w)
        for s in sig[1:]:
            noise = randn((n, *self.spec.shape), like, generator)
            x = self._f(x + math.sqrt(s**2 - self.config.sigma_min**2) * noise, s, y, w)
        return x.clamp(-1, 1) if self.spec.is_image else x


class _LabelledDenoiser:
    """A teacher's denoiser on a batch whose dropped labels are the null label: guidance w on the labelled examples,
    the unconditional denoiser (w = 0) on the others."""

    def __init__(self, teacher: GenerativeModel, y: torch.Tensor, null: int, guidance: float):
        self.teacher, self.y, self.null, self.guidance = teacher, y, null, guidance

    def __call__(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)
        for dropped in (False, True):
            m = (self.y == self.null) if dropped else (self.y != self.null)
            if m.any():
                den = self.teacher.denoiser(
                    None if dropped and not self.teacher.conditional else self.y[m], 0.0 if dropped else self.guidance
                )
                out[m] = den(x[m], sigma[m] if torch.is_tensor(sigma) and sigma.dim() else sigma)
        return out


__all__ = ["ConsistencyConfig", "ConsistencyModel", "curriculum", "ect_pairs", "ode_step", "pseudo_huber"]

"""Generative adversarial networks (Goodfellow et al. 2014): a generator G(z) against a critic D, with the minimax,
non-saturating, least-squares, WGAN-GP and hinge losses, spectral norm, R1, gradient penalty, DiffAugment, two
time-scale learning rates (Heusel et al. 2017), PacGAN packing (Lin et al. 2018), truncation at sampling, class
conditioning (cBN + projection) and discriminator rejection sampling (Azadi et al. 2019)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from genlab.config import ModelConfig, param
from genlab.errors import ConfigError, did_you_mean
from genlab.models.base import Batch, GenerativeModel, Phase, SampleOption
from genlab.models.gan.augment import AUGMENTS, diff_augment
from genlab.models.gan.drs import check_quantile as check_drs_quantile
from genlab.models.gan.drs import rejection_sample
from genlab.models.gan.losses import EQUILIBRIUM_D_LOSS, d_loss, g_loss, gradient_penalty, r1_penalty
from genlab.nn.audio import WaveGANDiscriminator, WaveGANGenerator
from genlab.nn.functional import slerp
from genlab.nn.gan_nets import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    ResNetDiscriminator,
    ResNetGenerator,
    apply_spectral_norm,
)
from genlab.noise import randn
from genlab.registry import register_model
from genlab.spec import DataSpec

Loss = Literal["minimax", "nonsaturating", "lsgan", "wgan-gp", "hinge"]
REGULARIZERS = ("spectral_norm", "r1", "gp")
MAX_D_RESOLUTION = 8  # the critic's last feature map may be at most this many pixels on a side
DIAGNOSE_AFTER = 500  # steps before divergence warnings start


@dataclass
class GANConfig(ModelConfig):
    """A GAN: G maps z ~ N(0, I) (and a label) to data, D scores data; the loss picks the game."""

    name: str = param("gan", help="model name")
    loss: Loss = param("hinge", help="the game: minimax, nonsaturating, lsgan, wgan-gp (adds the gradient penalty) or hinge")
    regularizers: tuple[str, ...] = param((), help="any of spectral_norm (in D), r1 (penalty on real data), gp (WGAN-GP's penalty)")
    augment: tuple[str, ...] = param((), help="DiffAugment policy for images: any of color, translation, cutout")
    net: Literal["auto", "mlp", "dcgan", "resnet", "wavegan"] = param(
        "auto", help="auto = dcgan for images (C, H, W), wavegan for waveforms (C, T), mlp for vectors"
    )
    latent_dim: int = param(128, ge=1, help="dimension of z")
    latent_components: int = param(
        0,
        ge=0,
        help="0: z ~ N(0, I); K > 0: z ~ a mixture of K Gaussians N(c_k, latent_std^2 I), centres c_k ~ N(0, I) fixed at init "
        "(DeLiGAN's latent for disconnected data: G can send each component to one mode, leaving no latent mass between modes)",
    )
    latent_std: float = param(0.1, gt=0, help="latent_components > 0: the standard deviation of each component")
    g_channels: tuple[int, ...] = param((64, 128), ge=1, help="dcgan/resnet G: widths per level, highest resolution first")
    d_channels: tuple[int, ...] = param((64, 128), ge=1, help="dcgan/resnet D: widths per level; each level halves the resolution")
    g_hidden: tuple[int, ...] = param((256, 256, 256), ge=1, help="mlp G: hidden widths")
    d_hidden: tuple[int, ...] = param((256, 256, 256), ge=1, help="mlp D: hidden widths")
    g_batch_norm: bool = param(False, help="mlp G: batch-norm after each hidden Linear (PacGAN's 2D generator); conv Gs always have it")
    wave_kernel: int = param(25, ge=1, help="wavegan: kernel width of every (transposed) convolution (WaveGAN: 25)")
    wave_stride: int = param(4, ge=2, help="wavegan: stride of every level (WaveGAN: 4); G's levels multiply the length by it")
    phase_shuffle: int = param(2, ge=0, help="wavegan D: phase shuffle radius n, shifts of -n..n samples after each conv but the last")
    n_critic: int = param(1, ge=1, help="critic (D) steps per generator step")
    d_lr_scale: float = param(1.0, gt=0, help="D's learning rate = train.lr x this (two time-scale update rule)")
    g_lr_scale: float = param(1.0, gt=0, help="G's learning rate = train.lr x this")
    adam_betas: tuple[float, float] = param((0.0, 0.9), ge=0, lt=1, help="AdamW betas of both players (GANs want a small beta1)")
    r1_gamma: float = param(10.0, ge=0, help="r1: weight gamma of (gamma / 2) E||grad D(x)||^2")
    gp_weight: float = param(10.0, ge=0, help="gp / wgan-gp: weight lambda of the gradient penalty")
    conditional: bool = param(False, help="class-conditional: conditional batch-norm (or an embedding) in G, projection in D")
    pack: int = param(
        1, ge=1, help="PacGAN: D scores packs of this many samples concatenated (all real or all fake); batch_size must be a multiple"
    )
    drs: bool = param(
        False,
        help="discriminator rejection sampling (Azadi et al. 2019): also train a per-sample critic R (D's architecture, "
        "unpacked, logistic loss, no penalties) whose logit estimates log p_data / p_G, and sample by rejection with it",
    )
    drs_start: float = param(0.5, ge=0, lt=1, help="drs: R trains from this fraction of the budget on (it has to know the late G)")
    drs_quantile: float = param(
        0.8, ge=0, lt=1, help="drs: gamma = this quantile of F over each batch of proposals (0 = exact rejection sampling)"
    )
    drs_fourier: int = param(
        128, ge=0, help="drs, mlp R: random Fourier features of the input (Tancik et al. 2020), so R resolves narrow modes; 0 = none"
    )
    drs_fourier_scale: float = param(1.0, gt=0, help="drs_fourier: the standard deviation of the frequencies, in cycles per data unit")

    def validate(self) -> None:
        for key, names, valid in (("regularizers", self.regularizers, REGULARIZERS), ("augment", self.augment, AUGMENTS)):
            for n in names:
                if n not in valid:
                    raise ConfigError(f"model.{key}: unknown name {n!r}.{did_you_mean(n, valid)}")
            if len(set(names)) != len(names):
                raise ConfigError(f"model.{key}: {list(names)} names one twice")
        if len(self.adam_betas) != 2:
            raise ConfigError(f"model.adam_betas: expected two numbers (beta1, beta2), got {list(self.adam_betas)}")
        if self.wave_kernel < self.wave_stride:
            raise ConfigError(f"model.wave_kernel={self.wave_kernel} must be at least model.wave_stride={self.wave_stride}")

    @property
    def penalties(self) -> set[str]:
        """The regularisers in force: wgan-gp always brings its gradient penalty."""
        return set(self.regularizers) | ({"gp"} if self.loss == "wgan-gp" else set())


def check_truncation(t: float) -> float:
    """Truncation psi must lie in (0, 1]: 1 samples z ~ N(0, I) as trained, smaller values trade diversity for quality."""
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not (0 < t <= 1):
        raise ConfigError(f"truncation: expected a value in (0, 1] (1 = no truncation), got {t!r}")
    return float(t)


def _check_levels(key: str, channels: tuple[int, ...], size: tuple[int, int], critic: bool) -> None:
    if not channels:
        raise ConfigError(f"model.{key}: a conv net needs at least one level, e.g. [64, 128]")
    h, w = size
    f = 2 ** len(channels)
    if h % f or w % f:
        raise ConfigError(f"model.{key}={list(channels)}: {h}x{w} images cannot be halved {len(channels)} times; use fewer levels")
    if critic and max(h, w) // f > MAX_D_RESOLUTION:
        need = next(k for k in range(len(channels), 12) if max(h, w) // 2**k <= MAX_D_RESOLUTION)
        raise ConfigError(
            f"model.{key}={list(channels)}: the discriminator is too small for {h}x{w} images: its {len(channels)} levels end at "
            f"{h // f}x{w // f}, but it must reduce them to at most {MAX_D_RESOLUTION}x{MAX_D_RESOLUTION}; give it {need} levels"
        )


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """No parameter of `module` requires grad inside: the graph built here skips its weight gradients."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(module.parameters(), flags):
            p.requires_grad_(f)


@register_model("gan", GANConfig)
class GAN(GenerativeModel):
    """Generator G: z (B, latent_dim) [, y] -> x; critic D: x [, y] -> logit (B,). Two phases, "d" then "g".

    Example:
        >>> gan = GAN(GANConfig(loss="hinge", regularizers=("spectral_norm",)), DataSpec((1, 28, 28)))
        >>> out = gan.loss({"x": x}, phase="d")    # {"loss", "adv", "d_real", "d_fake"}
        >>> imgs = gan.sample(64, generator=torch.Generator().manual_seed(0), truncation=0.8)
    """

    family = "gan"
    likelihood = "none"

    @classmethod
    def sample_options(cls) -> tuple[SampleOption, ...]:
        return (
            SampleOption("truncation", float, "truncation of the latent, in (0, 1]"),
            SampleOption("drs", bool, "discriminator rejection sampling on or off (models trained with model.drs)"),
            SampleOption("drs_quantile", float, "DRS: the acceptance quantile gamma"),
        )

    def __init__(self, config: GANConfig, spec: DataSpec):
        super().__init__(config, spec)
        if config.conditional and spec.num_classes == 0:
            raise ConfigError("model.conditional=true needs class labels, but this dataset has none; set model.conditional=false")
        if config.augment and not spec.is_image:
            raise ConfigError(f"model.augment={list(config.augment)}: DiffAugment works on images, not vectors; set model.augment=[]")
        wave = len(spec.shape) == 2
        net = config.net if config.net != "auto" else ("dcgan" if spec.is_image else "wavegan" if wave else "mlp")
        if net == "wavegan" and not wave:
            raise ConfigError(f"model.net='wavegan' needs waveforms (C, T), but the data have shape {spec.shape}; set model.net='auto'")
        if net in ("dcgan", "resnet") and not spec.is_image:
            raise ConfigError(f"model.net={net!r} needs images, but the data have shape {spec.shape}; set model.net='auto'")
        m = config.pack
        if m > 1 and config.conditional:
            raise ConfigError(
                f"model.pack={m} with model.conditional=true: a pack mixes classes, but the projection discriminator scores one label "
                "per input; set model.pack=1 for a conditional GAN"
            )
        if config.g_batch_norm and net != "mlp":
            raise ConfigError(f"model.g_batch_norm=true is for the mlp generator; the {net} generator always has batch-norm")
        self.net_kind = net
        K = spec.num_classes if config.conditional else 0
        Z = config.latent_dim
        if net == "mlp":
            self.G = MLPGenerator(Z, spec.dim, config.g_hidden, K, batch_norm=config.g_batch_norm)
        elif net == "wavegan":
            self.G = WaveGANGenerator(Z, spec.shape[0], spec.shape[1], config.g_channels, K, config.wave_kernel, config.wave_stride)
        else:
            C, size = spec.shape[0], spec.shape[1:]
            _check_levels("g_channels", config.g_channels, size, critic=False)
            _check_levels("d_channels", config.d_channels, size, critic=True)
            G = DCGANGenerator if net == "dcgan" else ResNetGenerator
            self.G = G(Z, C, size, config.g_channels, K)
        self.D = self._critic(K, pack=m)
        if "spectral_norm" in config.regularizers:
            apply_spectral_norm(self.D)
        if config.drs:
            # The rejection critic scores single samples: an unpacked copy of D's architecture, trained as a classifier.
            self.R = self._critic(K, pack=1, fourier=config.drs_fourier, fourier_scale=config.drs_fourier_scale)
        if config.latent_components:
            # The mixture latent's centres: drawn once (from the seeded global generator) and kept in the state dict.
            self.register_buffer("latent_centres", torch.randn(config.latent_components, Z))

    def _critic(self, num_classes: int, pack: int, fourier: int = 0, fourier_scale: float = 1.0) -> nn.Module:
        """A critic of model.net's kind on packs of `pack` samples (the mlp one optionally on Fourier features)."""
        c, spec = self.config, self.spec
        if self.net_kind == "mlp":
            return MLPDiscriminator(spec.dim * pack, c.d_hidden, num_classes, fourier, fourier_scale)
        if self.net_kind == "wavegan":
            C, T = spec.shape
            return WaveGANDiscriminator(C * pack, T, c.d_channels, num_classes, c.wave_kernel, c.wave_stride, c.phase_shuffle)
        C, size = spec.shape[0], spec.shape[1:]
        if self.net_kind == "dcgan":
            return DCGANDiscriminator(C * pack, size, c.d_channels, num_classes)
        return ResNetDiscriminator(C * pack, c.d_channels, num_classes)

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        """Each network kind, every loss, each regulariser and augmentation, conditional and not, with and without DRS."""
        return [
            (
                {"latent_dim": 4, "g_hidden": [16], "d_hidden": [16], "loss": "nonsaturating", "g_batch_norm": True,
                 "latent_components": 5, "drs": True, "drs_fourier": 8},
                DataSpec((2,), encoding="continuous"),
            ),
            ({"latent_dim": 4, "g_hidden": [16], "d_hidden": [16], "pack": 3, "regularizers": ["r1", "gp"]},
             DataSpec((2,), encoding="continuous")),
            (
                {"latent_dim": 4, "g_hidden": [16], "d_hidden": [16], "loss": "wgan-gp", "conditional": True, "n_critic": 2},
                DataSpec((2,), num_classes=3, encoding="continuous"),
            ),
            (
                {"latent_dim": 8, "g_channels": [8, 8], "d_channels": [8, 8], "regularizers": ["spectral_norm", "r1"],
                 "augment": ["color", "translation", "cutout"], "pack": 2, "drs": True},
                DataSpec((1, 8, 8)),
            ),
            (
                {"latent_dim": 8, "net": "dcgan", "g_channels": [8], "d_channels": [8], "loss": "lsgan", "conditional": True},
                DataSpec((3, 8, 8), num_classes=3),
            ),
            (
                {"latent_dim": 8, "net": "resnet", "g_channels": [8, 8], "d_channels": [8, 8], "loss": "minimax", "conditional": True,
                 "regularizers": ["spectral_norm", "gp"]},
                DataSpec((3, 8, 8), num_classes=2),
            ),
            (
                {"latent_dim": 8, "g_channels": [4, 8], "d_channels": [4, 8], "wave_kernel": 9, "loss": "wgan-gp", "conditional": True,
                 "regularizers": ["spectral_norm"]},
                DataSpec((1, 64), num_classes=3, encoding="continuous", modality="waveform"),
            ),
        ]  # fmt: skip

    def phases(self) -> list[Phase]:
        c = self.config
        phases = [
            Phase("d", self.D.parameters(), steps=c.n_critic, lr_scale=c.d_lr_scale, betas=tuple(c.adam_betas)),
            Phase("g", self.G.parameters(), lr_scale=c.g_lr_scale, betas=tuple(c.adam_betas)),
        ]
        if c.drs:
            phases.append(Phase("drs", self.R.parameters(), lr_scale=c.d_lr_scale, betas=(0.5, 0.999), start_fraction=c.drs_start))
        return phases

    # ---------------------------------------------------------------------------------------------- the game
    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """G(z[, y]) in data space, (B, *shape)."""
        x = self.G(z, y)
        if self.net_kind == "mlp" and self.spec.is_image:
            x = torch.tanh(x)
        return x.view(len(z), *self.spec.shape)

    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.config.augment)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """PacGAN's packing: samples (B, *shape) -> (B / m, m * shape[0], *shape[1:]), pack j = samples jm .. jm + m - 1
        concatenated (vectors end to end, images along channels). The identity when model.pack = 1."""
        m, n = self.config.pack, len(x)
        if m == 1:
            return x
        if n % m:
            raise ConfigError(
                f"model.pack={m}: a batch of {n} examples cannot be cut into packs of {m}; make train.batch_size "
                f"(per process and micro-batch) a multiple of {m}"
            )
        return x.reshape(n // m, m * x.shape[1], *x.shape[2:])

    def critic(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """D's logits on samples x (B, *shape): one per pack of model.pack consecutive samples, (B / pack,)."""
        return self.D(self.pack(x), y)

    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, torch.Tensor]:
        """Phase "d": the critic's loss plus penalties; phase "g": the generator's loss. Logs D's mean logits."""
        x = batch["x"]
        n = len(x)
        y = self.class_labels(batch.get("y"), n)
        z = self.latent(n, x)
        kind, pen = self.config.loss, self.config.penalties
        if phase == "d":
            with torch.no_grad():
                fake = self.generate(z, y)
            # Real and fake examples are augmented, then packed (pack = 1: as they are); the penalties act on D's
            # packed inputs, so R1 and GP see the gradient with respect to a whole pack.
            critic = lambda v: self.D(v, y)  # noqa: E731
            if "r1" in pen:
                real_in, fake_in = self.pack(self._aug(x)), self.pack(self._aug(fake))
                d_real, r1 = r1_penalty(critic, real_in)
                d_fake = critic(fake_in)
            else:
                both = self._aug(torch.cat([x, fake]))
                real_in, fake_in = self.pack(both[:n]), self.pack(both[n:])
                yy = None if y is None else torch.cat([y, y])
                d_real, d_fake = self.D(torch.cat([real_in, fake_in]), yy).split(len(real_in))
            adv = d_loss(kind, d_real, d_fake)
            out = {"adv": adv.detach(), "d_real": d_real.mean().detach(), "d_fake": d_fake.mean().detach()}
            loss = adv
            if "r1" in pen:
                loss = loss + 0.5 * self.config.r1_gamma * r1
                out["r1"] = r1.detach()
            if "gp" in pen:
                gp = gradient_penalty(critic, real_in, fake_in)
                loss = loss + self.config.gp_weight * gp
                out["gp"] = gp.detach()
            return {"loss": loss, **out}
        if phase == "g":
            with frozen(self.D):
                d_fake = self.critic(self._aug(self.generate(z, y)), y)
                loss = g_loss(kind, d_fake)
            return {"loss": loss, "d_fake": d_fake.mean().detach()}
        if phase == "drs" and self.config.drs:
            # R learns real against what the sampler draws (G in eval mode), with the logistic loss: its optimum is
            # log p_data(x) / p_G(x).
            with torch.no_grad():
                fake = self._eval_generate(z, y)
            r_real, r_fake = self.R(torch.cat([x, fake]), None if y is None else torch.cat([y, y])).split(n)
            loss = d_loss("minimax", r_real, r_fake)
            return {"loss": loss, "r_real": r_real.mean().detach(), "r_fake": r_fake.mean().detach()}
        raise ValueError(f"GAN.loss: phase must be 'd', 'g' (or 'drs' with model.drs=true), got {phase!r}")

    def diagnose(self, row: dict[str, float]) -> str | None:
        """A warning when the critic wins outright (its loss near 0 while G's grows): the game has diverged. Not in the
        first DIAGNOSE_AFTER steps, where the critic often wins briefly before the game settles (the conditional
        Fashion-MNIST preset: d/adv 0.03 at step 200, 0.5 by step 700)."""
        adv, g = row.get("d/adv"), row.get("g/loss")
        if adv is None or g is None or row.get("step", DIAGNOSE_AFTER) < DIAGNOSE_AFTER:
            return None
        kind = self.config.loss
        if kind in EQUILIBRIUM_D_LOSS:
            eq = EQUILIBRIUM_D_LOSS[kind]
            if adv < 0.03 * eq:
                return (
                    f"divergence: the discriminator wins outright (d/adv={adv:.3g}, {eq:.3g} at equilibrium; g/loss={g:.3g}), so the "
                    "generator learns nothing useful; try regularizers=['spectral_norm'] or ['r1'], DiffAugment or a lower d_lr_scale"
                )
            return None
        gap = row.get("d/d_real", 0.0) - row.get("d/d_fake", 0.0)
        if gap > 100:
            return f"divergence: the critic's estimate E[D(x)] - E[D(G(z))] = {gap:.3g} is exploding; raise gp_weight or lower the lr"
        return None

    # ---------------------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        truncation: float = 1.0,
        drs: bool | None = None,
        drs_quantile: float | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """n samples G(z[, y]), z = psi * N(0, I) (or psi-shrunk mixture components, see `latent`), psi = `truncation` in
        (0, 1] (the truncation trick towards the mean latent, Karras et al. 2019, with E[z] = 0). G runs in eval mode:
        batch-norm uses its running statistics.

        A model trained with model.drs = true filters its samples by discriminator rejection sampling (`drs=False`
        turns it off; `drs_quantile` overrides model.drs_quantile), see `genlab.models.gan.drs`."""
        self.check_sample_kwargs(kwargs)
        psi = check_truncation(truncation)
        self.check_sample_labels(labels)
        use_drs = self.config.drs if drs is None else bool(drs)
        like = next(self.G.parameters())
        if not use_drs:
            return self._eval_generate(self.latent(n, like, generator, psi), labels)
        if not self.config.drs:
            raise ConfigError("sample(drs=True): this GAN has no rejection critic; train it with model.drs=true")
        q = check_drs_quantile(self.config.drs_quantile if drs_quantile is None else drs_quantile)
        was = self.R.training
        self.R.eval()
        try:
            if labels is None:
                return self._drs(n, None, like, generator, psi, q)
            # Class-conditional: rejection sampling within each class keeps every sample's label.
            out = torch.empty(n, *self.spec.shape, dtype=like.dtype, device=like.device)
            for c in labels.unique().tolist():
                idx = (labels == c).nonzero().flatten()
                out[idx] = self._drs(len(idx), c, like, generator, psi, q)
            return out
        finally:
            self.R.train(was)

    def _drs(self, n: int, label: int | None, like: torch.Tensor, generator: torch.Generator | None, psi: float, q: float):
        def propose(k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
            y = None if label is None else torch.full((k,), label, dtype=torch.long, device=like.device)
            return self._eval_generate(self.latent(k, like, generator, psi), y), y

        def score(x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:  # in slices of 1,000 (image critics' memory)
            return torch.cat([self.R(x[i : i + 1000], None if y is None else y[i : i + 1000]) for i in range(0, len(x), 1000)])

        x, _, _ = rejection_sample(propose, score, n, quantile=q, chunk=max(2048, n), generator=generator)
        return x

    def latent(self, n: int, like: torch.Tensor, generator: torch.Generator | None = None, psi: float = 1.0) -> torch.Tensor:
        """n latents z (n, latent_dim) with `like`'s dtype and device: psi * N(0, I), or with model.latent_components = K a
        uniformly chosen centre c_k plus psi * latent_std * N(0, I) (truncation shrinks each component, not the mixture)."""
        Z, K = self.config.latent_dim, self.config.latent_components
        # Unseeded (training): drawn on like's device; seeded: on the generator's device, as `randn` does.
        eps = torch.randn(n, Z, device=like.device, dtype=like.dtype) if generator is None else randn((n, Z), like, generator)
        if not K:
            return psi * eps
        dev = like.device if generator is None else generator.device
        k = torch.randint(K, (n,), generator=generator, device=dev).to(like.device)
        return self.latent_centres[k].to(like.dtype) + (psi * self.config.latent_std) * eps

    def _eval_generate(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        was = self.G.training
        self.G.eval()
        try:
            x = self.generate(z, None if y is None else y.to(z.device).long())
        finally:
            self.G.train(was)
        return x.clamp(-1, 1) if self.spec.is_image else x

    @torch.no_grad()
    def interpolate(self, n: int = 8, steps: int = 10, generator: torch.Generator | None = None) -> torch.Tensor:
        """G along great circles between n pairs of latents (slerp), (n, steps, *shape); row i keeps label i mod K."""
        z0, z1 = (self.latent(n, next(self.G.parameters()), generator) for _ in range(2))
        t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device)
        z = slerp(z0, z1, t).flatten(0, 1)  # (n * steps, D)
        y = None
        if self.conditional:
            y = (torch.arange(n, device=z.device) % self.spec.num_classes).repeat_interleave(steps)
        return self._eval_generate(z, y).view(n, steps, *self.spec.shape)

    @torch.no_grad()
    def figures(self, batch: Batch) -> dict[str, tuple[torch.Tensor, int]]:
        """Latent interpolation grid: 8 rows of 10 images along slerp paths between random latents."""
        if not self.spec.is_image:
            return {}
        path = self.interpolate(8, 10, torch.Generator().manual_seed(0))
        return {"interpolations": (path.flatten(0, 1), 10)}

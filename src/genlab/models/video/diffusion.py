"""Space-time diffusion for video (Ho et al. 2022, "Video Diffusion Models"): the diffusion model of genlab with a
factorised space-time UNet over whole clips, class-conditional with guidance, and conditioned on given frames for
prediction (the given frames and their mask as extra input channels, dropped at random in training so that one model
both generates clips and continues them; Voleti et al. 2022, MCVD). Every registered sampler works unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from genlab.config import param
from genlab.errors import ConfigError
from genlab.models.base import SampleOption
from genlab.models.diffusion.diffusion import DiffusionConfig, DiffusionModel, _Denoiser
from genlab.models.video.predictor import context_clips
from genlab.nn.video import SpaceTimeUNet
from genlab.registry import register_model
from genlab.spec import DataSpec


@dataclass
class VideoDiffusionConfig(DiffusionConfig):
    """The diffusion model's keys, a space-time UNet (`channels`, `blocks`, `attn_resolutions` for per-frame spatial
    attention, `temporal` mixing) and the given-frames condition."""

    name: str = param("video_diffusion", help="model name")
    channels: tuple[int, ...] = param((32, 64), ge=1, help="space-time unet: widths per level; each level halves the frame size")
    attn_resolutions: tuple[int, ...] = param((), ge=1, help="space-time unet: frame sizes (smaller side) with per-frame self-attention")
    temporal: Literal["attention", "conv"] = param("attention", help="mixing along time in every block: self-attention or a 1-D conv")
    patch: int = param(1, ge=1, help="space-time unet: frames cut into patch x patch pixel blocks (space-to-depth) first")
    context_frames: int = param(0, ge=0, help="C, the given frames it can be conditioned on (prediction); 0 = generation only")
    p_context: float = param(0.5, ge=0, le=1, help="probability that a training clip's first C frames are given (else none are)")
    context_stack: bool = param(False, help="every frame also reads all C given frames as channels (MCVD's concatenation) besides its own")

    def validate(self) -> None:
        super().validate()
        if self.lowres:
            raise ConfigError("model.lowres (super-resolution) is for images; set model.lowres=0 for video_diffusion")
        if self.network not in ("auto", "unet"):
            raise ConfigError(f"model.network={self.network!r}: video_diffusion always uses its space-time unet; drop the key")


@register_model("video_diffusion", VideoDiffusionConfig)
class VideoDiffusion(DiffusionModel):
    """Clips (T, C, H, W) in [-1, 1]: `sample(n)` generates whole clips (class-conditional with `labels=` and
    `guidance=`), `sample(n, context=clips)` keeps their first C frames and generates the rest.

    >>> model = VideoDiffusion(VideoDiffusionConfig(channels=(8, 8), timesteps=20, steps=4, context_frames=2),
    ...                        DataSpec((4, 1, 16, 16), modality="video"))
    >>> model.sample(2, context=torch.zeros(2, 2, 1, 16, 16)).shape
    torch.Size([2, 4, 1, 16, 16])
    """

    family = "diffusion"

    @classmethod
    def sample_options(cls) -> tuple[SampleOption, ...]:
        own = tuple(o for o in super().sample_options() if o.name != "lowres")
        return (*own, SampleOption("context", str, "video prediction: the given frames, an .npz of uint8 clips (N, T, 1, H, W) or a .gif"))

    def __init__(self, config: VideoDiffusionConfig, spec: DataSpec):
        if len(spec.shape) != 4:
            raise ConfigError(f"video_diffusion generates clips (T, C, H, W); the data have shape {spec.shape}")
        if config.context_frames >= spec.shape[0]:
            raise ConfigError(
                f"model.context_frames={config.context_frames}: expected 0..{spec.shape[0] - 1} for clips of {spec.shape[0]} frames"
            )
        if any(side % config.patch for side in spec.shape[2:]):
            raise ConfigError(f"model.patch={config.patch}: the frames ({spec.shape[2]} x {spec.shape[3]}) must split into such patches")
        self.context_frames = config.context_frames
        super().__init__(config, spec)

    def build_net(self, cfg: VideoDiffusionConfig, spec: DataSpec) -> nn.Module:
        """The space-time UNet; with given frames, C + 1 extra channels per frame: the frame itself where it is given
        (else zeros) and the mask (1 on given frames); with `context_stack`, C x context_frames more: all given frames."""
        T, C, H, W = spec.shape
        if cfg.conditional and spec.num_classes == 0:
            raise ConfigError("model.conditional=true needs class labels, but this dataset has none; set model.conditional=false")
        return SpaceTimeUNet(
            C,
            frames=T,
            channels=tuple(cfg.channels),
            blocks=cfg.blocks,
            temporal=cfg.temporal,
            heads=cfg.heads,
            attn_resolutions=tuple(cfg.attn_resolutions),
            size=min(H, W),
            num_classes=spec.num_classes if cfg.conditional else 0,
            cond_channels=(C + 1 + (C * self.context_frames if cfg.context_stack else 0)) if self.context_frames else 0,
            dropout=cfg.dropout,
            patch=cfg.patch,
        )

    @property
    def bounded_samples(self) -> bool:
        return True  # frames are images in [-1, 1]

    def given_frames(self, clips: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """The condition (B, T, C + 1 [+ C x context_frames], H, W) of clips whose first context_frames frames are given:
        those frames and a mask channel, zeros elsewhere, and with `context_stack` all given frames again on every frame;
        clips with keep = False get no frames (all zeros, the unconditional input)."""
        B, T, C, H, W = clips.shape
        mask = torch.zeros(B, T, 1, H, W, dtype=clips.dtype, device=clips.device)
        mask[:, : self.context_frames] = 1
        if keep is not None:
            mask = mask * keep.to(clips.dtype).view(B, 1, 1, 1, 1)
        parts = [clips * mask, mask]
        if self.config.context_stack:
            given = clips[:, : self.context_frames] * mask[:, :1]  # (B, Cf, C, H, W), zeros for clips without frames
            parts.append(given.reshape(B, 1, -1, H, W).expand(B, T, -1, H, W))
        return torch.cat(parts, dim=2)

    def training_condition(self, x0: torch.Tensor) -> torch.Tensor | None:
        if not self.context_frames:
            return None
        keep = torch.rand(x0.shape[0], device=x0.device) < self.config.p_context if self.training else None
        return self.given_frames(x0, keep)

    def _net(self, x: torch.Tensor, c_noise: torch.Tensor, y: torch.Tensor | None, cond: torch.Tensor | None) -> torch.Tensor:
        if self.context_frames and cond is None:
            B, T, C, H, W = x.shape
            cond = x.new_zeros(B, T, self.net.cond_channels, H, W)  # no frames given
        dtype = next(self.net.parameters()).dtype
        return self.net(x.to(dtype), c_noise.to(dtype), y, None if cond is None else cond.to(dtype)).to(x.dtype)

    def sampling_denoiser(self, labels: torch.Tensor | None, kwargs: dict) -> _Denoiser:
        """Bound to the labels, `guidance` and `context`, the given frames (n, C, ...) that `sample` checked."""
        given = kwargs.pop("context", None)
        den = self.denoiser(labels, kwargs.pop("guidance", None))
        if given is not None:
            rest = given.new_zeros(len(given), self.spec.shape[0] - self.context_frames, *self.spec.shape[1:])
            den.cond = self.given_frames(torch.cat([given, rest], 1))
        return den

    @torch.no_grad()
    def sample(self, n: int, *, labels: torch.Tensor | None = None, generator: torch.Generator | None = None, **kwargs) -> torch.Tensor:
        """n clips; with `context` (clips or a file of them), their first C frames are kept and the rest generated."""
        self.check_sample_kwargs(kwargs)
        if kwargs.get("context") is None:
            return super().sample(n, labels=labels, generator=generator, **kwargs)
        if not self.context_frames:
            raise ConfigError("context= was given, but this model generates whole clips only (model.context_frames=0)")
        given = context_clips(kwargs["context"], n, self.spec, self.context_frames, self.device, type(self).__name__)
        x = super().sample(n, labels=labels, generator=generator, **{**kwargs, "context": given})
        x[:, : self.context_frames] = given.to(x.dtype)
        return x

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        tiny = {"channels": [8, 8], "heads": 2, "timesteps": 20, "steps": 3}
        return [
            (tiny, DataSpec((3, 1, 8, 8), encoding="8bit", modality="video")),
            (
                {
                    **tiny,
                    "temporal": "conv",
                    "conditional": True,
                    "guidance": 2.0,
                    "context_frames": 1,
                    "formulation": "edm",
                    "sampler": "heun",
                },
                DataSpec((4, 1, 8, 8), num_classes=3, modality="video"),
            ),
            ({**tiny, "patch": 2, "context_frames": 2, "context_stack": True}, DataSpec((4, 1, 8, 8), modality="video")),
        ]

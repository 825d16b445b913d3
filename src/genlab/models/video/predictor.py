"""A deterministic video predictor, SimVP (Gao et al. 2022, "SimVP: Simpler yet Better Video Prediction"): the future
frames x_{C+1..T} = f(x_{1..C}) trained by mean squared error; the baseline of the field's prediction table."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genlab.config import ModelConfig, param
from genlab.data.transforms import to_unit_range
from genlab.data.video import read_clips
from genlab.errors import ConfigError
from genlab.models.base import Batch, GenerativeModel, SampleOption
from genlab.nn.video import SimVPNet
from genlab.registry import register_model
from genlab.spec import DataSpec


def context_clips(
    context: torch.Tensor | str | os.PathLike | None, n: int, spec: DataSpec, frames: int, device: torch.device, who: str
) -> torch.Tensor:
    """The first `frames` frames of the first n clips of `context` (a tensor in [-1, 1] or uint8, or a file for
    `read_clips`), checked against the clips of `spec`, on `device`; `who` names the model in the errors."""
    if context is None:
        shape = ", ".join(map(str, spec.shape[1:]))
        raise ConfigError(
            f"{who} predicts frames and cannot make clips from nothing: pass context=, the given frames as "
            f"clips (n, >= {frames}, {shape}) or an .npz / .gif of them (`genlab sample RUN --context clips.npz`)"
        )
    if isinstance(context, (str, os.PathLike)):
        context = read_clips(context)
    if context.dtype == torch.uint8:
        context = to_unit_range(context)
    T, *frame = spec.shape
    if context.ndim != 5 or list(context.shape[2:]) != frame or context.shape[1] < frames:
        raise ConfigError(f"context: expected clips (n, >= {frames}, {', '.join(map(str, frame))}), got {tuple(context.shape)}")
    if len(context) < n:
        raise ConfigError(f"context: {len(context)} clips given for {n} samples; pass --n {len(context)} or more clips")
    return context[:n, :frames].to(device).float()


@dataclass
class VideoPredictorConfig(ModelConfig):
    """SimVP: per-frame encoder, a translator over the stacked context frames, per-frame decoder."""

    name: str = param("video_predictor", help="model name")
    context_frames: int | None = param(
        None, ge=1, help="C, the given frames (the rest are predicted); default: half the clip (10 of 20, 8 of 16)"
    )
    hidden: int = param(16, ge=1, help="channels of the per-frame encoder and decoder")
    levels: int = param(2, ge=0, help="stride-2 downsamplings in the encoder (32 -> 8 at 2)")
    translator_width: int = param(64, ge=1, help="channels of the translator over the stacked frames")
    blocks: int = param(2, ge=0, help="residual blocks in the translator")


@register_model("video_predictor", VideoPredictorConfig)
class VideoPredictor(GenerativeModel):
    """Predicts the last T - C frames of a clip (T, C_img, H, W) from its first C frames; no likelihood, no sampling
    without context. `sample(n, context=...)` returns whole clips: the given frames followed by the predicted ones.

    >>> model = VideoPredictor(VideoPredictorConfig(hidden=8, translator_width=16), DataSpec((4, 1, 16, 16), modality="video"))
    >>> model.sample(2, context=torch.zeros(2, 2, 1, 16, 16)).shape
    torch.Size([2, 4, 1, 16, 16])
    """

    family = "video"
    likelihood = "none"
    deterministic_sampling = True  # the same context gives the same prediction under every seed

    def __init__(self, config: VideoPredictorConfig, spec: DataSpec):
        super().__init__(config, spec)
        if len(spec.shape) != 4:
            raise ConfigError(f"video_predictor predicts clips (T, C, H, W); the data have shape {spec.shape}")
        T, C, H, W = spec.shape
        self.context_frames = config.context_frames or T // 2
        if not 1 <= self.context_frames < T:
            raise ConfigError(f"model.context_frames={self.context_frames}: expected 1..{T - 1} for clips of {T} frames")
        self.net = self.build_net(config, C, H, W, T - self.context_frames)

    def build_net(self, config: VideoPredictorConfig, C: int, H: int, W: int, t_out: int) -> torch.nn.Module:
        """The network mapping (B, context_frames, C, H, W) to (B, t_out, C, H, W): SimVP here."""
        if H % 2**config.levels or W % 2**config.levels:
            raise ConfigError(f"model.levels={config.levels}: {H} x {W} frames are not divisible by {2**config.levels}; lower model.levels")
        return SimVPNet(
            C, self.context_frames, t_out,
            hidden=config.hidden, levels=config.levels, translator_width=config.translator_width, blocks=config.blocks,
        )  # fmt: skip

    @classmethod
    def sample_options(cls) -> tuple[SampleOption, ...]:
        return (SampleOption("context", str, "video prediction: the given frames, an .npz of uint8 clips (N, T, 1, H, W) or a .gif"),)

    def predict(self, context: torch.Tensor) -> torch.Tensor:
        """The predicted frames (B, T - C, C_img, H, W) of context clips (B, C, C_img, H, W) in [-1, 1]."""
        return self.net(context)

    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, torch.Tensor]:
        x = batch["x"]
        C = self.context_frames
        mse = F.mse_loss(self.predict(x[:, :C]), x[:, C:])
        return {"loss": mse, "mse": mse.detach()}

    def context_tensor(self, context: torch.Tensor | str | os.PathLike | None, n: int) -> torch.Tensor:
        """The first C frames of the first n clips of `context`, checked, on the model's device (`context_clips`)."""
        return context_clips(context, n, self.spec, self.context_frames, self.device, type(self).__name__)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        context: torch.Tensor | str | None = None,
    ) -> torch.Tensor:
        self.check_sample_labels(labels)
        ctx = self.context_tensor(context, n)
        return torch.cat([ctx, self.predict(ctx).clamp(-1, 1)], 1)

    @torch.no_grad()
    def figures(self, batch: Batch) -> dict[str, tuple[torch.Tensor, int]]:
        """ "predictions": for 4 test clips, a row of the true frames above a row of the given + predicted frames."""
        x = batch["x"][:4]
        both = torch.stack([x, self.sample(len(x), context=x)], 1)  # (n, 2, T, C, H, W)
        return {"predictions": (both.flatten(0, 2), self.spec.shape[0])}

    def contract_sample_kwargs(self, n: int) -> dict:
        """What `sample` needs in the contract test: n fixed random context clips."""
        g = torch.Generator().manual_seed(n)
        return {"context": torch.rand((n, self.context_frames, *self.spec.shape[1:]), generator=g) * 2 - 1}

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        return [
            ({"hidden": 8, "translator_width": 16, "blocks": 1}, DataSpec((6, 1, 16, 16), num_classes=10, modality="video")),
            ({"hidden": 4, "levels": 1, "translator_width": 8, "blocks": 0, "context_frames": 1}, DataSpec((3, 1, 8, 8), modality="video")),
        ]

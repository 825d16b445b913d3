"""The ConvLSTM video predictor (Shi et al. 2015, "Convolutional LSTM Network"): a stack of convolutional LSTMs rolled
out frame by frame, trained by the mean squared error of the predicted frames; the oldest row of the field's table."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genlab.config import ModelConfig, param
from genlab.errors import ConfigError
from genlab.models.video.predictor import VideoPredictor
from genlab.nn.video import ConvLSTMNet
from genlab.registry import register_model
from genlab.spec import DataSpec


@dataclass
class ConvLSTMConfig(ModelConfig):
    """ConvLSTM: frames folded into patches, stacked ConvLSTM layers, a 1 x 1 read-out of the next frame."""

    name: str = param("convlstm", help="model name")
    context_frames: int | None = param(
        None, ge=1, help="C, the given frames (the rest are predicted); default: half the clip (10 of 20, 8 of 16)"
    )
    hidden: tuple[int, ...] = param((32, 32), ge=1, help="hidden channels of each ConvLSTM layer (bottom to top)")
    kernel: int = param(3, ge=1, help="convolution kernel of the gates (odd)")
    patch: int = param(2, ge=1, help="space-to-depth patch: frames of H x W become maps of H/patch x W/patch")

    def validate(self) -> None:
        if self.kernel % 2 == 0:
            raise ConfigError(f"model.kernel={self.kernel}: expected an odd kernel (the maps keep their size)")
        if not self.hidden:
            raise ConfigError("model.hidden: expected at least one layer, e.g. [32, 32]")


@register_model("convlstm", ConvLSTMConfig)
class ConvLSTMPredictor(VideoPredictor):
    """Predicts the last T - C frames of a clip from its first C frames, one frame after the other, each prediction
    fed back as the next input. Sampling, context files, figures and the loss are the video predictor's.

    >>> model = ConvLSTMPredictor(ConvLSTMConfig(hidden=(8,)), DataSpec((4, 1, 16, 16), modality="video"))
    >>> model.sample(2, context=torch.zeros(2, 2, 1, 16, 16)).shape
    torch.Size([2, 4, 1, 16, 16])
    """

    def build_net(self, config: ConvLSTMConfig, C: int, H: int, W: int, t_out: int) -> torch.nn.Module:
        if H % config.patch or W % config.patch:
            raise ConfigError(f"model.patch={config.patch}: {H} x {W} frames are not divisible by it; pick a divisor")
        return ConvLSTMNet(C, self.context_frames, t_out, hidden=config.hidden, kernel=config.kernel, patch=config.patch)

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        return [
            ({"hidden": (8, 8)}, DataSpec((6, 1, 16, 16), num_classes=10, modality="video")),
            ({"hidden": (4,), "patch": 1, "context_frames": 1}, DataSpec((3, 1, 8, 8), modality="video")),
        ]

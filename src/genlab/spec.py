"""What a model needs to know about its data, without importing the data code."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class DataSpec:
    """Shape and encoding of one example.

    `encoding` says what a batch's values mean, so every family reports likelihoods under one
    convention (`genlab.metrics.likelihood`):
      - "8bit": images quantised to 256 levels, shown to the model in [-1, 1]
        (x_int / 127.5 - 1, or (x_int + u) / 128 - 1 when `dequantized`);
      - "binary": binarised images, values in {-1, 1};
      - "continuous": real-valued vectors (toy 2D and tabular data);
      - "tokens": integer sequences (L,) over the vocabulary `vocab` (token 0 ends a sequence; what follows it is padding).

    `modality` names the registered `genlab.modalities` entry that evaluates, writes and previews such data
    (default: "tokens", "image" for C x H x W, "points" for vectors). `sample_rate` is a waveform's samples per second.
    `params` holds what a modality needs to read the values back, as sorted (name, number or string) pairs (e.g. the STFT
    of a spectrogram); `param(name)` reads one.
    """

    shape: tuple[int, ...]
    num_classes: int = 0
    encoding: Literal["8bit", "binary", "continuous", "tokens"] = "8bit"
    dequantized: bool = False
    class_names: tuple[str, ...] = ()
    vocab: tuple[str, ...] = ()
    modality: str = ""
    sample_rate: int = 0  # waveforms: samples per second (0: not audio)
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not self.modality:  # the built-in modalities follow from the encoding and the shape; others are named
            default = "tokens" if self.encoding == "tokens" else "image" if len(self.shape) == 3 else "points"
            object.__setattr__(self, "modality", default)
        if isinstance(self.params, dict):
            object.__setattr__(self, "params", tuple(sorted(self.params.items())))

    def param(self, name: str) -> Any:
        """The value of one of `params`; KeyError names the missing key and those there are."""
        found = dict(self.params)
        if name not in found:
            raise KeyError(f"DataSpec has no parameter {name!r} (it has {sorted(found) or 'none'})")
        return found[name]

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    @property
    def dim(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["shape"] = list(self.shape)
        d["class_names"] = list(self.class_names)
        d["vocab"] = list(self.vocab)
        d["params"] = dict(self.params)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        return cls(
            shape=tuple(d["shape"]),
            num_classes=int(d.get("num_classes", 0)),
            encoding=d.get("encoding", "8bit"),
            dequantized=bool(d.get("dequantized", False)),
            class_names=tuple(d.get("class_names", ())),
            vocab=tuple(d.get("vocab", ())),
            modality=d.get("modality", ""),
            sample_rate=int(d.get("sample_rate", 0)),
            params=tuple(sorted(dict(d.get("params") or {}).items())),
        )

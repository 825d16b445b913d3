"""In-memory datasets and the loader that cuts batches from them.

A dataset is held as one tensor; a batch is an index into it, with no per-item Python work.
The loader's order is a function of (seed, epoch) and its noise a function of (seed, batch
number), so a resumed or distributed run sees exactly the batches of an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from genlab.config import DataConfig
from genlab.data import transforms as T
from genlab.errors import DataError
from genlab.spec import DataSpec


@dataclass
class ArrayDataset:
    """Stored examples: `x` uint8 N x C x H x W (8-bit images) or float N x D; labels `y` or None."""

    x: torch.Tensor
    y: torch.Tensor | None
    spec: DataSpec
    name: str = ""

    def __post_init__(self) -> None:
        if self.y is not None and len(self.y) != len(self.x):
            raise DataError(f"{self.name}: {len(self.x)} examples but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.x)


class BatchTransform:
    """Stored values -> model inputs, as set by the data config (dequantise, binarise, pad)."""

    def __init__(self, raw: DataSpec, cfg: DataConfig):
        self.raw = raw
        self.cfg = cfg
        if raw.encoding != "8bit" and (cfg.binarize or cfg.pad_to):
            raise DataError(f"data.binarize / data.pad_to apply to images; {cfg.name} holds {raw.encoding} vectors")
        if cfg.pad_to is not None and raw.is_image and cfg.pad_to < max(raw.shape[1:]):
            raise DataError(f"data.pad_to={cfg.pad_to} is smaller than the {raw.shape[1]}x{raw.shape[2]} images of {cfg.name}")
        self.spec = self._out_spec()

    def _out_spec(self) -> DataSpec:
        r, c = self.raw, self.cfg
        if r.encoding != "8bit":
            return r
        shape = r.shape if c.pad_to is None else (r.shape[0], c.pad_to, c.pad_to)
        encoding = "binary" if c.binarize else "8bit"
        return replace(r, shape=tuple(shape), encoding=encoding, dequantized=c.dequantize and not c.binarize)

    @property
    def random(self) -> bool:
        return self.spec.encoding != "continuous" and (self.cfg.binarize or self.cfg.dequantize)

    def __call__(self, x: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
        """Transform a stored batch; `u` is U[0, 1) noise of x's shape when `random`."""
        if self.raw.encoding != "8bit":
            return x.long() if self.raw.encoding == "tokens" else x.float()
        if self.cfg.binarize:
            out = T.binarize(x, u)
        elif self.cfg.dequantize:
            out = T.dequantize(x, u)
        else:
            out = T.to_unit_range(x)
        if self.cfg.pad_to is not None:
            out = T.pad_to(out, self.cfg.pad_to)
        return out


class Loader:
    """Endless batches from an ArrayDataset, shuffled per epoch; rank `rank` of `world_size`
    gets its contiguous slice of every global batch. State: (epoch, position, batches served)."""

    def __init__(
        self,
        ds: ArrayDataset,
        transform: BatchTransform,
        batch_size: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ):
        if batch_size % world_size:
            raise DataError(f"train.batch_size={batch_size} is not divisible by the {world_size} processes")
        if len(ds) < batch_size:
            raise DataError(f"{ds.name}: {len(ds)} examples, fewer than one batch of {batch_size}; lower train.batch_size")
        self.ds, self.transform, self.batch_size = ds, transform, batch_size
        self.seed, self.rank, self.world_size, self.shuffle = seed, rank, world_size, shuffle
        self.epoch, self.pos, self.served = 0, 0, 0
        self._perm = self._permutation(0)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(len(self.ds))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.ds), generator=g)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos, "served": self.served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.pos, self.served = int(state["epoch"]), int(state["pos"]), int(state["served"])
        self._perm = self._permutation(self.epoch)

    def __iter__(self) -> Loader:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        B = self.batch_size
        if self.pos + B > len(self.ds):
            self.epoch, self.pos = self.epoch + 1, 0
            self._perm = self._permutation(self.epoch)
        idx = self._perm[self.pos : self.pos + B]
        self.pos += B
        per = B // self.world_size
        mine = idx[self.rank * per : (self.rank + 1) * per]
        x = self.ds.x[mine]
        u = None
        if self.transform.random:
            g = torch.Generator().manual_seed(self.seed * 7_919 + 1 + self.served)
            u = torch.rand((B, *self.ds.x.shape[1:]), generator=g)[self.rank * per : (self.rank + 1) * per]
        self.served += 1
        batch = {"x": self.transform(x, u)}
        if self.ds.y is not None:
            batch["y"] = self.ds.y[mine]
        return batch


def load_dataset(cfg: DataConfig, split: str) -> tuple[ArrayDataset, BatchTransform]:
    """The dataset named by `cfg` (split "train" or "test") and its batch transform."""
    from genlab import registry

    ds = registry.dataset(cfg.name)(cfg, split)
    limit = cfg.n_train if split == "train" else cfg.n_test
    if limit is not None and limit < len(ds):
        ds = ArrayDataset(ds.x[:limit], None if ds.y is None else ds.y[:limit], ds.spec, ds.name)
    return ds, BatchTransform(ds.spec, cfg)


def iterate(ds: ArrayDataset, transform: BatchTransform, batch_size: int, *, seed: int = 0, limit: int | None = None) -> Any:
    """One ordered pass over a dataset in batches (evaluation); noise seeded per batch."""
    n = len(ds) if limit is None else min(limit, len(ds))
    for b, start in enumerate(range(0, n, batch_size)):
        x = ds.x[start : min(start + batch_size, n)]
        u = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed * 7_919 + b)) if transform.random else None
        batch = {"x": transform(x, u)}
        if ds.y is not None:
            batch["y"] = ds.y[start : start + len(x)]
        yield batch

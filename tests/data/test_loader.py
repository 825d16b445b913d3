import pytest
import torch

from genlab.config import DataConfig
from genlab.data import transforms as T
from genlab.data.base import ArrayDataset, BatchTransform, Loader
from genlab.errors import DataError
from genlab.spec import DataSpec


def images(n: int = 40, size: int = 4, seed: int = 0) -> ArrayDataset:
    """n random 8-bit 1 x size x size images; label i for image i, so a batch's labels spell its indices."""
    x = torch.randint(0, 256, (n, 1, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return ArrayDataset(x, torch.arange(n), DataSpec((1, size, size), num_classes=n), "images")


def loader(ds: ArrayDataset, batch_size: int = 8, **kw) -> Loader:
    cfg_keys = {k: kw.pop(k) for k in ("dequantize", "binarize", "pad_to") if k in kw}
    return Loader(ds, BatchTransform(ds.spec, DataConfig(name="images", **cfg_keys)), batch_size, **kw)


def take(it: Loader, n: int) -> list[dict[str, torch.Tensor]]:
    return [next(it) for _ in range(n)]


def test_order_is_a_function_of_seed_and_epoch():
    ds = images()
    a, b = take(loader(ds, seed=3), 15), take(loader(ds, seed=3), 15)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["y"], y["y"]) and torch.equal(x["x"], y["x"])
    epochs = [torch.cat([batch["y"] for batch in a[5 * e : 5 * e + 5]]) for e in range(3)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(40))  # each epoch serves every example once
    assert not torch.equal(epochs[0], epochs[1])
    assert not torch.equal(torch.cat([batch["y"] for batch in take(loader(ds, seed=4), 5)]), epochs[0])


def test_restored_loader_continues_with_identical_batches():
    ds = images()
    first = loader(ds, seed=1)
    take(first, 7)  # into the second epoch
    state = first.state_dict()
    expected = take(first, 6)
    resumed = loader(ds, seed=1)
    resumed.load_state_dict(state)
    for want, got in zip(expected, take(resumed, 6), strict=True):
        assert torch.equal(want["x"], got["x"]) and torch.equal(want["y"], got["y"])


def test_ranks_concatenated_equal_the_single_process_batch():
    ds = images()
    whole = take(loader(ds, seed=2), 12)
    ranks = [take(loader(ds, seed=2, rank=r, world_size=4), 12) for r in range(4)]
    for step, batch in enumerate(whole):
        assert torch.equal(torch.cat([r[step]["x"] for r in ranks]), batch["x"])  # dequantisation noise included
        assert torch.equal(torch.cat([r[step]["y"] for r in ranks]), batch["y"])


def test_dequantised_values_are_in_range_and_map_back_to_the_stored_ints():
    ds = ArrayDataset(torch.arange(256, dtype=torch.uint8).view(16, 1, 4, 4).repeat(4, 1, 1, 1), None, DataSpec((1, 4, 4)))
    it = loader(ds, batch_size=16, seed=5)
    for _ in range(20):
        out = next(it)["x"]
        assert out.min() >= -1 and out.max() < 1
    stored = ds.x[:16]
    for u in (torch.zeros(()), torch.tensor(1.0).nextafter(torch.tensor(0.0)), torch.rand(stored.shape)):
        out = T.dequantize(stored, u.expand(stored.shape))  # the largest float32 below 1 included
        assert out.max() < 1
        assert torch.equal(torch.floor((out + 1) * 128), stored.float())


def test_binarised_values_are_pm_one_with_the_pixel_intensity_as_mean():
    levels = torch.tensor([0, 51, 128, 204, 255], dtype=torch.uint8)
    x = levels.view(5, 1, 1, 1).expand(5, 1, 64, 64).repeat(4, 1, 1, 1).contiguous()
    ds = ArrayDataset(x, None, DataSpec((1, 64, 64)))
    out = next(loader(ds, batch_size=20, binarize=True, dequantize=False, shuffle=False))["x"]
    assert set(out.unique().tolist()) == {-1.0, 1.0}
    ones = ((out + 1) / 2).view(4, 5, -1).transpose(0, 1).reshape(5, -1).mean(1)
    torch.testing.assert_close(ones, levels.float() / 255, atol=0.01, rtol=0)


def test_padding_28_to_32_adds_minus_one_borders():
    ds = images(n=8, size=28)
    plain = next(loader(ds, dequantize=False, shuffle=False))["x"]
    padded = next(loader(ds, dequantize=False, shuffle=False, pad_to=32))["x"]
    assert padded.shape == (8, 1, 32, 32)
    assert torch.equal(padded[..., 2:30, 2:30], plain)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (padded[..., border] == -1).all()
    assert torch.equal(T.crop_from(padded, 28, 28), plain)


def test_bad_batch_sizes_are_errors():
    with pytest.raises(DataError, match="not divisible by the 3 processes"):
        loader(images(), batch_size=8, world_size=3)
    with pytest.raises(DataError, match="fewer than one batch of 64"):
        loader(images(), batch_size=64)

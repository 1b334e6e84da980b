"""Fashion-MNIST loader: IDX parsing and validation on small synthetic files, then the real data when present."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from torchworks.core.errors import DataError, DataNotFoundError
from torchworks.data import FASHION_MNIST_CLASSES, FashionMNIST, dataset_path, load_fashion_mnist, read_idx


def _idx_bytes(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def _write(folder: Path, split: str, images: np.ndarray, labels: np.ndarray, gz: bool = True) -> None:
    stem = "train" if split == "train" else "t10k"
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in ((f"{stem}-images-idx3-ubyte", images), (f"{stem}-labels-idx1-ubyte", labels)):
        data = _idx_bytes(arr)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A 12-train / 5-test copy under tmp_path/fashion_mnist_debian, with the cwd away from ../shared."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    data = {
        "train": (rng.integers(0, 256, (12, 28, 28), dtype=np.uint8), np.arange(12, dtype=np.uint8) % 10),
        "test": (rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.array([9, 2, 1, 1, 6], dtype=np.uint8)),
    }
    for split, (x, y) in data.items():
        _write(tmp_path / "fashion_mnist_debian", split, x, y)
    return tmp_path, data


def test_load_synthetic_copy(tiny):
    root, data = tiny
    for split in ("train", "test"):
        images, labels = load_fashion_mnist(split, data_dir=root)
        assert images.dtype == np.uint8 and images.shape == data[split][0].shape
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(images, data[split][0])
        np.testing.assert_array_equal(labels, data[split][1])


def test_dataset_items_and_limit(tiny):
    root, data = tiny
    ds = FashionMNIST("train", data_dir=root, limit=7)
    assert len(ds) == 7
    image, label = ds[3]
    assert image.dtype == torch.float32 and image.shape == (1, 28, 28)
    assert 0.0 <= image.min() and image.max() <= 1.0
    torch.testing.assert_close(image[0], torch.from_numpy(data["train"][0][3]).float() / 255)
    assert label == 3 and isinstance(label, int)
    assert len(FashionMNIST("test", data_dir=root)) == 5
    with pytest.raises(ValueError, match="limit"):
        FashionMNIST("test", data_dir=root, limit=-1)
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("validation", data_dir=root)


def test_uncompressed_files_are_accepted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = np.zeros((2, 28, 28), np.uint8), np.array([4, 5], np.uint8)
    for split in ("train", "test"):
        _write(tmp_path / "fm", split, x, y, gz=False)
    images, labels = load_fashion_mnist("test", data_dir=tmp_path / "fm")
    assert images.shape == (2, 28, 28) and labels.tolist() == [4, 5]


def test_wrong_magic_raises_naming_the_file(tiny):
    root, _ = tiny
    bad = root / "fashion_mnist_debian" / "train-images-idx3-ubyte.gz"
    data = bytearray(gzip.decompress(bad.read_bytes()))
    data[2] = 0x42  # not an IDX dtype code
    bad.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(DataError, match="bad magic") as info:
        load_fashion_mnist("train", data_dir=root)
    assert str(bad) in str(info.value)


def test_truncated_payload_and_broken_gzip_raise(tiny):
    root, _ = tiny
    labels = root / "fashion_mnist_debian" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes())[:-1]))
    with pytest.raises(DataError, match="corrupt") as info:
        load_fashion_mnist("test", data_dir=root)
    assert str(labels) in str(info.value)
    labels.write_bytes(b"\x1f\x8b" + b"\x00" * 30)  # gzip magic, garbage after it
    with pytest.raises(DataError, match="gzip") as info:
        load_fashion_mnist("test", data_dir=root)
    assert str(labels) in str(info.value)


def test_mismatched_counts_and_bad_labels_raise(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = (np.zeros((1, 28, 28), np.uint8), np.zeros(1, np.uint8))
    _write(tmp_path / "a", "train", *good)  # both splits present, or the folder is not a complete copy
    _write(tmp_path / "a", "test", np.zeros((3, 28, 28), np.uint8), np.array([1, 2], np.uint8))
    with pytest.raises(DataError, match="3 images but"):
        load_fashion_mnist("test", data_dir=tmp_path / "a")
    _write(tmp_path / "b", "train", *good)
    _write(tmp_path / "b", "test", np.zeros((2, 28, 28), np.uint8), np.array([1, 10], np.uint8))
    with pytest.raises(DataError, match="label 10"):
        load_fashion_mnist("test", data_dir=tmp_path / "b")


def test_read_idx_generic(tmp_path):
    arr = np.arange(24, dtype=">i4").reshape(2, 3, 4)
    raw = bytes([0, 0, 0x0C, 3]) + struct.pack(">3I", 2, 3, 4) + arr.tobytes()
    (tmp_path / "x.idx").write_bytes(raw)
    out = read_idx(tmp_path / "x.idx")
    assert out.dtype == np.int32 and out.dtype.isnative and out.flags.writeable
    np.testing.assert_array_equal(out, np.arange(24).reshape(2, 3, 4))


def _real_root() -> Path:
    try:
        return dataset_path("fashion_mnist")
    except DataNotFoundError:
        pytest.skip("Fashion-MNIST not found (../shared/data, $TORCHWORKS_DATA, the cache): "
                    "torchworks data path fashion_mnist --download")


def test_real_train_split():
    root = _real_root()
    images, labels = load_fashion_mnist("train", data_dir=root)
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.dtype == np.int64
    assert labels.min() == 0 and labels.max() == 9
    assert np.bincount(labels).tolist() == [6000] * 10
    assert labels[0] == 9 and FASHION_MNIST_CLASSES[labels[0]] == "Ankle boot"  # the well-known first image
    assert 0 < images.mean() < 255


def test_real_test_split_and_dataset():
    root = _real_root()
    images, labels = load_fashion_mnist("test", data_dir=root)
    assert images.shape == (10000, 28, 28)
    assert np.bincount(labels).tolist() == [1000] * 10
    ds = FashionMNIST("test", data_dir=root, limit=100)
    image, label = ds[0]
    assert image.shape == (1, 28, 28) and label == int(labels[0])
    assert len(FASHION_MNIST_CLASSES) == 10


def test_batched_fetch_equals_item_fetch(tiny):
    ds = FashionMNIST("train", data_dir=tiny[0])
    idx = [3, 0, 2, 2]
    batch = ds.__getitems__(idx)
    for i, (image, label) in zip(idx, batch, strict=True):
        ref_image, ref_label = ds[i]
        assert torch.equal(image, ref_image) and label == ref_label and isinstance(label, int)

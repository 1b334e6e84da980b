"""CIFAR loaders: the JPEG npz (with its decoded cache), the python pickle batches, CIFAR-100, the dataset."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from torchworks.core.errors import DataError
from torchworks.data import cifar
from torchworks.data.cifar import CIFAR_STATS, CIFARDataset, load_cifar10, load_cifar100


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHWORKS_CACHE", str(tmp_path / "cache"))


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def _rows(images: np.ndarray) -> np.ndarray:
    """HWC images -> the official (N, 3072) channel-major rows."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def _write_pickle(path, obj, protocol: int = 2) -> None:
    """Protocol 2, as the official (Python 2) batches; 4 and 5 are accepted too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def test_cifar10_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    train = [(_images(3, i), np.arange(3) + i) for i in range(5)]
    for i, (im, lab) in enumerate(train, 1):
        _write_pickle(folder / f"data_batch_{i}", {b"data": _rows(im), b"labels": list(lab)})
    test_im = _images(2, 9)
    _write_pickle(folder / "test_batch", {b"data": _rows(test_im), b"labels": [7, 8]})
    _write_pickle(folder / "batches.meta", {b"label_names": [c.encode() for c in cifar.CIFAR10_CLASSES]})

    images, labels = load_cifar10("train", data_dir=tmp_path)
    assert images.shape == (15, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, np.concatenate([im for im, _ in train]))
    np.testing.assert_array_equal(labels, np.concatenate([lab for _, lab in train]))
    images, labels = load_cifar10("test", data_dir=tmp_path)
    np.testing.assert_array_equal(images, test_im)
    assert labels.tolist() == [7, 8] and labels.dtype == np.int64


@pytest.mark.parametrize("protocol", [4, 5])
def test_cifar10_batches_of_newer_pickle_protocols(tmp_path, protocol):
    im = _images(2, protocol)
    _write_pickle(tmp_path / "test_batch", {b"data": _rows(im), b"labels": [3, 4]}, protocol=protocol)
    images, labels = cifar._read_batches(tmp_path, ["test_batch"], b"labels")
    np.testing.assert_array_equal(images, im)
    assert labels.tolist() == [3, 4]


def test_cifar10_batch_naming_numpy_core_as_the_official_files_do(tmp_path):
    """The official batches were pickled by numpy 1.x under Python 2: they name numpy.core.multiarray."""
    im = _images(2, 3)
    raw = pickle.dumps({b"data": _rows(im), b"labels": [1, 2]}, protocol=2)
    if b"numpy._core.multiarray" in raw:
        raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"cnumpy.core.multiarray\n_reconstruct" in raw
    (tmp_path / "test_batch").write_bytes(raw)
    images, labels = cifar._read_batches(tmp_path, ["test_batch"], b"labels")
    np.testing.assert_array_equal(images, im)


class _Planted:
    """Unpickling this runs code: what a planted file in a folder the user points at could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def _batches_folder(root) -> None:
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        _write_pickle(root / "cifar-10-batches-py" / name, {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]})


def test_a_pickle_that_would_run_code_is_refused_before_running_it(tmp_path):
    marker = tmp_path / "ran.txt"
    _batches_folder(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    _write_pickle(batch, {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Planted(marker)})
    with pytest.raises(DataError, match=r"test_batch: .*refusing to load (__builtin__|builtins)\.exec"):
        load_cifar10("test", data_dir=tmp_path)
    assert not marker.exists()
    with open(batch, "rb") as f:  # the same file through pickle.load does run its code: the test is meaningful
        pickle.load(f, encoding="bytes")
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("data, match", [
    (np.zeros((2, 3072), dtype=object), "uint8 array"),
    (np.zeros((2, 3072), dtype=np.float32), "uint8 array"),
    ([[0] * 3072] * 2, "uint8 array"),
])
def test_batch_data_must_be_a_uint8_array(tmp_path, data, match):
    _write_pickle(tmp_path / "test_batch", {b"data": data, b"labels": [0, 1]})
    with pytest.raises(DataError, match=match):
        cifar._read_batches(tmp_path, ["test_batch"], b"labels")


def test_batch_labels_must_be_integers(tmp_path):
    _write_pickle(tmp_path / "test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [b"a", b"b"]})
    with pytest.raises(DataError, match="labels are not integers"):
        cifar._read_batches(tmp_path, ["test_batch"], b"labels")


def test_cifar10_copy_names_the_jpeg_copy(tmp_path):
    _write_npz(tmp_path / "cifar10_jpeg_bytes.npz")
    assert cifar.cifar10_copy(tmp_path) == "the JPEG (quality 75) copy of CIFAR-10"
    _batches_folder(tmp_path / "orig")
    assert cifar.cifar10_copy(tmp_path / "orig") == "the original (lossless) CIFAR-10"


def test_cifar10_corrupt_batch_is_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        _write_pickle(folder / name, {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="test_batch"):
        load_cifar10("test", data_dir=tmp_path)


def _write_npz(path, n_train: int = 6, n_test: int = 3):
    """Flat-coloured images survive JPEG almost exactly; returns the originals."""
    from PIL import Image

    out = {"classes": np.array(cifar.CIFAR10_CLASSES)}
    originals = {}
    for split, n in (("train", n_train), ("test", n_test)):
        colours = np.random.default_rng(len(split)).integers(0, 256, size=(n, 3))
        ims = np.broadcast_to(colours[:, None, None, :], (n, 32, 32, 3)).astype(np.uint8)
        blobs = []
        for im in ims:
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, format="JPEG", quality=95)
            blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
        out[f"{split}_jpeg"] = np.concatenate(blobs)
        out[f"{split}_offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
        out[f"{split}_labels"] = (np.arange(n) % 10).astype(np.uint8)
        originals[split] = ims
    np.savez_compressed(path, **out)
    return originals


def test_cifar10_jpeg_npz_decodes_and_caches(tmp_path, monkeypatch):
    originals = _write_npz(tmp_path / "cifar10_jpeg_bytes.npz")
    images, labels = load_cifar10("train", data_dir=tmp_path)
    assert images.shape == (6, 32, 32, 3) and images.dtype == np.uint8
    assert np.abs(images.astype(int) - originals["train"]).max() <= 3  # JPEG q95 of flat colours
    assert labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert len(list((tmp_path / "cache" / "cifar10_decoded").glob("train_*.npy"))) == 1

    def no_decode(*args):
        raise AssertionError("decoded again although a cache exists")

    monkeypatch.setattr(cifar, "_decode_jpegs", no_decode)
    again, _ = load_cifar10("train", data_dir=tmp_path)
    np.testing.assert_array_equal(again, images)
    with pytest.raises(AssertionError, match="decoded again"):
        load_cifar10("train", data_dir=tmp_path, cache=False)


def test_cifar10_bad_split(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_cifar10("val", data_dir=tmp_path)


def test_cifar100_tiny_original_format(tmp_path):
    folder = tmp_path / "cifar-100-python"
    train_im, test_im = _images(4, 1), _images(2, 2)
    _write_pickle(folder / "train", {b"data": _rows(train_im), b"fine_labels": [0, 99, 5, 42],
                                     b"coarse_labels": [0, 19, 3, 7], b"filenames": [b"a"] * 4})
    _write_pickle(folder / "test", {b"data": _rows(test_im), b"fine_labels": [1, 2], b"coarse_labels": [1, 1]})
    images, labels = load_cifar100("train", data_dir=tmp_path)
    np.testing.assert_array_equal(images, train_im)
    assert labels.tolist() == [0, 99, 5, 42]
    assert load_cifar100("train", data_dir=tmp_path, label="coarse")[1].tolist() == [0, 19, 3, 7]
    images, labels = load_cifar100("test", data_dir=folder)  # the folder itself works too
    np.testing.assert_array_equal(images, test_im)
    with pytest.raises(ValueError, match="label"):
        load_cifar100("train", data_dir=tmp_path, label="medium")


def test_cifar100_missing_names_the_places(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        load_cifar100("train", data_dir=tmp_path / "nowhere")


def test_dataset_normalises_and_returns_index():
    images = _images(5, 3)
    ds = CIFARDataset(images, np.arange(5), return_index=True)
    x, y, i = ds[2]
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in CIFAR_STATS["cifar10"])
    expected = (torch.from_numpy(images[2]).permute(2, 0, 1).float() / 255 - mean) / std
    torch.testing.assert_close(x, expected)
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32) and (y, i) == (2, 2)
    assert len(CIFARDataset(images, np.arange(5))[0]) == 2


def test_augmentation_is_a_padded_crop_or_its_flip():
    images = _images(1, 4)
    plain = CIFARDataset(images, [0], stats=((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
    aug = CIFARDataset(images, [0], augment=True, stats=((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
    padded = F.pad(plain[0][0], (4, 4, 4, 4))  # black border, like torchvision's RandomCrop(padding=4)
    candidates = [c for dy in range(9) for dx in range(9) for c in
                  (padded[:, dy:dy + 32, dx:dx + 32], padded[:, dy:dy + 32, dx:dx + 32].flip(-1))]
    torch.manual_seed(0)
    seen = set()
    for _ in range(30):
        x = aug[0][0]
        hits = [k for k, c in enumerate(candidates) if torch.equal(c, x)]
        assert hits, "augmented image is not a crop of the padded image"
        seen.add(hits[0])
    assert len(seen) > 5  # it actually varies


def test_dataset_rejects_bad_arrays():
    with pytest.raises(ValueError, match="uint8"):
        CIFARDataset(np.zeros((2, 32, 32, 3), np.float32), [0, 1])
    with pytest.raises(ValueError, match="labels"):
        CIFARDataset(np.zeros((2, 32, 32, 3), np.uint8), [0])


def test_shared_cifar10_copy_if_present(monkeypatch):
    from torchworks.data import find_dataset

    monkeypatch.delenv("TORCHWORKS_CACHE")  # reuse the user's decoded cache: decoding takes seconds
    if find_dataset("cifar10") is None:
        pytest.skip("no local CIFAR-10 copy: torchworks data path cifar10 --download (170 MB)")
    images, labels = load_cifar10("test")
    assert images.shape == (10000, 32, 32, 3) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10

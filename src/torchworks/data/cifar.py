"""CIFAR-10 and CIFAR-100: array loaders and a torch ``Dataset`` with the standard crop+flip augmentation.

Sources understood by :func:`load_cifar10`:

* ``cifar10_jpeg_bytes.npz`` (the shared copy): every image's JPEG bytes (quality ~75) with offsets and labels,
  class-major order. Decoding 60k JPEGs with Pillow takes 10-30 s on one core, so the decoded uint8 arrays are
  cached as ``.npy`` files in ``cache_dir()/cifar10_decoded/`` keyed by the npz's SHA-256 (later loads take well
  under a second). Pass ``cache=False`` to decode in memory only.
* ``cifar-10-batches-py/`` (the official python download): pickled batches ``data_batch_1..5`` and ``test_batch``,
  read by a restricted unpickler that refuses every global but numpy's array and dtype rebuilders, so a planted
  file cannot run code (``pickle.load`` would).

:func:`load_cifar100` reads the official ``cifar-100-python/{train,test}`` pickles (fine or coarse labels).
CIFAR-100 is not in the data registry, so its folder is passed explicitly.

Images leave the loaders as uint8 (N, 32, 32, 3) RGB (the IO-edge convention); :class:`CIFARDataset` keeps them
as one uint8 (N, 3, 32, 32) tensor and converts one image per ``__getitem__``.

References:
    A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", tech. report, 2009.
    https://www.cs.toronto.edu/~kriz/cifar.html
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from torchworks.core.atomic import atomic_path
from torchworks.core.errors import DataError
from torchworks.data.locate import cache_dir, resolve

__all__ = ["CIFAR10_CLASSES", "CIFAR10_JPEG_COPY", "CIFAR10_ORIGINAL", "CIFARDataset", "CIFAR_STATS", "cifar10_copy",
           "load_cifar10", "load_cifar100"]

log = logging.getLogger(__name__)

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
#: Per-channel (mean, std) of the training images in [0, 1], as used by RepDistiller / torchvision recipes.
CIFAR_STATS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
_NPZ = "cifar10_jpeg_bytes.npz"
CIFAR10_JPEG_COPY = "the JPEG (quality 75) copy of CIFAR-10"
CIFAR10_ORIGINAL = "the original (lossless) CIFAR-10"
_SPLIT_SIZES = {"cifar10": {"train": 50000, "test": 10000}, "cifar100": {"train": 50000, "test": 10000}}


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The only globals a CIFAR batch may name: how numpy arrays and dtypes rebuild themselves."""
    try:  # numpy >= 2 keeps the implementation in numpy._core; old pickles name numpy.core
        from numpy._core.multiarray import _reconstruct
        from numpy._core.multiarray import scalar as np_multiarray_scalar
        from numpy._core.numeric import _frombuffer
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
        from numpy.core.multiarray import scalar as np_multiarray_scalar
        from numpy.core.numeric import _frombuffer
    import _codecs

    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                               ("_codecs", "encode"): _codecs.encode}  # py3 bytes, protocol 2
    for module in ("numpy.core", "numpy._core"):
        allowed[(f"{module}.multiarray", "_reconstruct")] = _reconstruct  # protocols 0-4
        allowed[(f"{module}.multiarray", "scalar")] = np_multiarray_scalar  # numpy integers in a label list
        allowed[(f"{module}.numeric", "_frombuffer")] = _frombuffer  # protocol 5
    return allowed


class _BatchUnpickler(pickle.Unpickler):
    """Reads a CIFAR python batch without running arbitrary code.

    A pickle may name any importable callable and have it called while loading (``os.system`` included), so
    ``pickle.load`` on a file from a folder the user points at would run whatever that file says. The batches
    hold only dicts, lists, bytes, ints and numpy arrays, so any other global is refused before it is imported.
    """

    _allowed = None

    def find_class(self, module: str, name: str) -> object:
        if _BatchUnpickler._allowed is None:
            _BatchUnpickler._allowed = _numpy_globals()
        try:
            return _BatchUnpickler._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only numpy "
                                         "arrays, lists, bytes and numbers") from None


def _unpickle(path: Path) -> dict:
    """The dict of one official CIFAR batch (bytes keys), read by :class:`_BatchUnpickler`."""
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR batch file not found: {path}")
    try:
        with open(path, "rb") as f:
            d = _BatchUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # truncated, not a pickle, or a global outside the allow-list
        raise DataError(f"{path}: not a readable CIFAR python batch ({exc})") from exc
    if not isinstance(d, dict):
        raise DataError(f"{path}: not a CIFAR python batch (a {type(d).__name__}, expected a dict)")
    return d


def _rows_to_hwc(data: np.ndarray, path: Path) -> np.ndarray:
    """(N, 3072) rows, channel-major (R plane, G plane, B plane) -> uint8 (N, 32, 32, 3)."""
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise DataError(f"{path}: expected data as a uint8 array, got {getattr(data, 'dtype', type(data).__name__)}")
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: expected data of shape (N, 3072), got {data.shape}")
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _read_batches(folder: Path, names: list[str], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in names:
        d = _unpickle(folder / name)
        if b"data" not in d or label_key not in d:
            raise DataError(f"{folder / name}: missing key data or {label_key.decode()} (keys: {list(d)})")
        images.append(_rows_to_hwc(d[b"data"], folder / name))
        try:
            labels.append(np.asarray(d[label_key], dtype=np.int64).reshape(-1))
        except (TypeError, ValueError) as exc:
            raise DataError(f"{folder / name}: {label_key.decode()} are not integers ({exc})") from None
        if len(labels[-1]) != len(images[-1]):
            raise DataError(f"{folder / name}: {len(images[-1])} images but {len(labels[-1])} labels")
    return np.concatenate(images), np.concatenate(labels)


def _decode_jpegs(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    from PIL import Image  # lazily: Pillow is an optional extra

    out = np.empty((len(offsets) - 1, 32, 32, 3), dtype=np.uint8)
    for i in range(len(offsets) - 1):
        img = Image.open(io.BytesIO(blob[offsets[i]:offsets[i + 1]].tobytes())).convert("RGB")
        if img.size != (32, 32):
            raise DataError(f"JPEG {i} has size {img.size}, expected (32, 32)")
        out[i] = np.asarray(img)
    return out


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load_npz_split(npz: Path, split: str, cache: bool) -> tuple[np.ndarray, np.ndarray]:
    with np.load(npz, allow_pickle=False) as d:
        labels = d[f"{split}_labels"].astype(np.int64)
        cached = None
        if cache:
            cached = cache_dir() / "cifar10_decoded" / f"{split}_{_file_sha256(npz)[:16]}.npy"
            if cached.is_file():
                images = np.load(cached)
                if images.shape == (len(labels), 32, 32, 3) and images.dtype == np.uint8:
                    return images, labels
                log.warning("ignoring a stale decoded cache %s (shape %s)", cached, images.shape)
        images = _decode_jpegs(d[f"{split}_jpeg"], d[f"{split}_offsets"])
    if len(images) != len(labels):
        raise DataError(f"{npz}: {len(images)} {split} images but {len(labels)} labels")
    if cached is not None:
        try:
            with atomic_path(cached, keep_suffix=True) as tmp:  # a parallel reader never sees half a file
                np.save(tmp, images)
        except OSError as exc:  # a read-only cache only costs the decode time next run
            log.warning("could not cache decoded CIFAR-10 at %s: %s", cached, exc)
    return images, labels


def cifar10_copy(data_dir: str | os.PathLike[str] | None = None) -> str:
    """Which CIFAR-10 :func:`load_cifar10` reads, in words for a caption: :data:`CIFAR10_JPEG_COPY` (the shared
    ``cifar10_jpeg_bytes.npz``, whose accuracies run a few points below published ones) or
    :data:`CIFAR10_ORIGINAL` (the python batches a download gives).

    Raises:
        DataNotFoundError: no copy found.
    """
    return CIFAR10_JPEG_COPY if (resolve("cifar10", data_dir) / _NPZ).is_file() else CIFAR10_ORIGINAL


def load_cifar10(split: str = "train", data_dir: str | os.PathLike[str] | None = None,
                 cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Loads one CIFAR-10 split.

    Args:
        split: ``"train"`` (50,000 images) or ``"test"`` (10,000).
        data_dir: searched first (see :func:`torchworks.data.resolve`); it may hold ``cifar10_jpeg_bytes.npz``
            or ``cifar-10-batches-py/``.
        cache: keep the decoded JPEG arrays as ``.npy`` in the data cache dir (npz source only).

    Returns:
        images: uint8 (N, 32, 32, 3) RGB. labels: int64 (N,) indices into :data:`CIFAR10_CLASSES`.

    Raises:
        ValueError: unknown split.
        DataNotFoundError: no copy found (the message says how to get one).
        DataError: a corrupt or inconsistent file (named).
    """
    _check_split(split)
    root = resolve("cifar10", data_dir)
    if (root / _NPZ).is_file():
        images, labels = _load_npz_split(root / _NPZ, split, cache)
    else:
        folder = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        images, labels = _read_batches(folder, names, b"labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"CIFAR-10 {split} labels outside 0..9 in {root}")
    return images, labels


def load_cifar100(split: str = "train", data_dir: str | os.PathLike[str] | None = None,
                  label: str = "fine") -> tuple[np.ndarray, np.ndarray]:
    """Loads one CIFAR-100 split from the official python pickles.

    Args:
        split: ``"train"`` or ``"test"``.
        data_dir: a folder holding ``cifar-100-python/`` or the files ``train``/``test`` themselves; defaults
            to ``$TORCHWORKS_DATA/cifar100`` or ``cache_dir()/cifar100``.
        label: ``"fine"`` (100 classes) or ``"coarse"`` (20 super-classes).

    Returns:
        images: uint8 (N, 32, 32, 3) RGB. labels: int64 (N,).

    Raises:
        ValueError: unknown split or label kind.
        FileNotFoundError: no CIFAR-100 files where they were looked for (all places are named).
    """
    _check_split(split)
    if label not in ("fine", "coarse"):
        raise ValueError(f"label must be 'fine' or 'coarse', got {label!r}")
    roots = [Path(data_dir).expanduser()] if data_dir is not None else [
        Path(p) / "cifar100" for p in filter(None, [os.environ.get("TORCHWORKS_DATA")])] + [cache_dir() / "cifar100"]
    tried = []
    for root in roots:
        for folder in (root / "cifar-100-python", root):
            tried.append(str(folder / split))
            if (folder / split).is_file():
                return _read_batches(folder, [split], f"{label}_labels".encode())
    raise FileNotFoundError(
        "CIFAR-100 python files not found; looked for " + ", ".join(tried) + ". Download "
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz, extract it and pass its folder as data_dir")


class CIFARDataset(Dataset):
    """CIFAR images as normalised float tensors, with optional random-crop (pad 4) + horizontal-flip augmentation.

    ``__getitem__(i)`` returns ``(image, label)`` or, with ``return_index=True``, ``(image, label, i)`` (CRD's
    memory bank needs the index). ``image`` is float32 (3, 32, 32), ``(x/255 - mean)/std``; padding is black
    (pixel value 0) before normalisation, like torchvision's ``RandomCrop(32, padding=4)``. Augmentation draws
    from torch's global RNG, so the engine's seeding makes it reproducible.

    Args:
        images: uint8 (N, 32, 32, 3) RGB, as returned by the loaders.
        labels: int (N,).
        augment: apply random crop and flip.
        return_index: also return the sample index.
        stats: ``"cifar10"``/``"cifar100"`` or an explicit ``(mean, std)`` pair of 3-tuples in [0, 1] units.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, augment: bool = False, return_index: bool = False,
                 stats: str | tuple = "cifar10") -> None:
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        mean, std = CIFAR_STATS[stats] if isinstance(stats, str) else stats
        self.images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))  # (N, 3, H, W)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        self.augment = augment
        self.return_index = return_index
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = self.images[i].float().div_(255.0)
        if self.augment:
            h, w = x.shape[1:]
            dy, dx = torch.randint(0, 9, (2,)).tolist()
            x = F.pad(x, (4, 4, 4, 4))[:, dy:dy + h, dx:dx + w]
            if torch.rand(()) < 0.5:
                x = x.flip(-1)
        x = (x - self.mean) / self.std
        y = int(self.labels[i])
        return (x, y, int(i)) if self.return_index else (x, y)

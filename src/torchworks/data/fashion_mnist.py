"""Fashion-MNIST: 70,000 28x28 grayscale images of clothing in 10 balanced classes (Xiao et al., 2017).

The files are found like every registered data set (``--data-dir``, ``$TORCHWORKS_DATA``, ``../shared/data``,
``/usr/share/datasets/fashion-mnist`` from Debian's ``dataset-fashion-mnist`` package, then the cache); call
``dataset_path("fashion_mnist", download=True)`` once to download them.

References:
    H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning
    Algorithms", arXiv:1708.07747, 2017. https://github.com/zalandoresearch/fashion-mnist
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from torchworks.core.errors import DataError
from torchworks.data.idx import read_idx
from torchworks.data.locate import resolve

__all__ = ["CLASSES", "FashionMNIST", "load_fashion_mnist"]

log = logging.getLogger(__name__)

CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}


def _file(root: Path, stem: str) -> Path:
    # The registry accepts the gzipped files (upstream, Debian) or already gunzipped ones.
    gz = root / f"{stem}.gz"
    return gz if gz.exists() else root / stem


def load_fashion_mnist(
    split: str = "train", data_dir: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Loads one split as arrays.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        data_dir: searched first (a folder holding the IDX files, or its parent); see
            :func:`torchworks.data.resolve` for the rest of the search.

    Returns:
        images: uint8 array (N, 28, 28), 0 = black background, 255 = white.
        labels: int64 array (N,), class indices 0..9 into :data:`CLASSES`.

    Raises:
        ValueError: unknown split.
        DataNotFoundError: the files are nowhere to be found (the message says how to get them).
        DataError: a file is corrupt (its path is named) or images and labels disagree.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    image_stem, label_stem, n_expected = _SPLITS[split]
    root = resolve("fashion_mnist", data_dir)
    images_path, labels_path = _file(root, image_stem), _file(root, label_stem)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: expected uint8 images (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(f"{labels_path}: expected uint8 labels (N,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    if len(images) != n_expected:
        # Not fatal: a trimmed copy (e.g. a test fixture) is legitimate, but worth knowing about.
        log.warning("%s split has %d images, not %d", split, len(images), n_expected)
    if labels.size and labels.max() >= len(CLASSES):
        raise DataError(f"{labels_path}: label {int(labels.max())} is outside 0..{len(CLASSES) - 1}")
    return images, labels.astype(np.int64)


class FashionMNIST(Dataset):
    """Fashion-MNIST as a map-style dataset of ``(image, label)`` pairs.

    Args:
        split: ``"train"`` or ``"test"``.
        data_dir: searched first; see :func:`load_fashion_mnist`.
        limit: keep only the first ``limit`` examples (fast tests, smoke runs).

    Items:
        image: float32 tensor (1, 28, 28) in [0, 1].
        label: int in 0..9, an index into :data:`CLASSES`.
    """

    classes = CLASSES

    def __init__(
        self, split: str = "train", data_dir: str | os.PathLike[str] | None = None, limit: int | None = None
    ) -> None:
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")
        images, labels = load_fashion_mnist(split, data_dir)
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        self.split = split
        # uint8 storage (47 MB for train) instead of float32 (188 MB); each item is converted on access.
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(np.ascontiguousarray(labels))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].unsqueeze(0).to(torch.float32).div_(255.0)  # (1, 28, 28)
        return image, int(self.labels[index])

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        # DataLoader fetches a whole batch through this hook: one gather and one conversion instead of one per
        # item, which is most of the loader's cost for a model as small as an MLP on 28x28 images.
        idx = torch.as_tensor(indices, dtype=torch.long)
        images = self.images.index_select(0, idx).unsqueeze(1).to(torch.float32).div_(255.0)
        return list(zip(images.unbind(0), self.labels.index_select(0, idx).tolist(), strict=True))

    def __repr__(self) -> str:
        return f"FashionMNIST(split={self.split!r}, n={len(self)})"

"""Image-classification data: the data sets a classifier trains on, kept as uint8 tensors, and the one fixed split.

Every split is one uint8 tensor (N, C, H, W) with int64 labels (N,); a batch leaves the loader as uint8 and the
task converts, augments and normalises it on the whole batch (:meth:`ClassificationTask.prepare
<torchworks.classify.task.ClassificationTask.prepare>`).

The split: the shared CIFAR-10 copy is stored class-major (all airplanes, then all automobiles, ...), so "the last
N images" would be one class. The validation holdout and the ``train_limit`` subset are therefore taken from one
fixed permutation, ``numpy.random.default_rng(SPLIT_SEED)``, the same on every machine and independent of the run
seed (:func:`split_indices`). With ``holdout: 0`` the test set validates, in that same fixed shuffled order (so
``limit_val_batches`` sees a mix of classes); "best" checkpoints are then chosen on test data, so report the
last step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["DATASETS", "SPLIT_SEED", "STATS", "ClassificationData", "DatasetInfo", "TensorImages", "load_split",
           "normalize", "split_indices", "synthetic_bands", "synthetic_textures"]

SPLIT_SEED = 12345


@dataclass(frozen=True)
class DatasetInfo:
    """Shape, class count and per-channel (mean, std) in [0, 1] units of a data set's training images."""

    channels: int
    size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


_CIFAR10 = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
DATASETS: dict[str, DatasetInfo] = {
    "fashion_mnist": DatasetInfo(1, 28, 10, (0.2860,), (0.3530,)),
    "cifar10": DatasetInfo(3, 32, 10, *_CIFAR10),
    "cifar100": DatasetInfo(3, 32, 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    # Files-free data for tests and smoke runs (see synthetic_bands / synthetic_textures).
    "synthetic": DatasetInfo(3, 32, 10, *_CIFAR10),
    "synthetic_textures": DatasetInfo(1, 8, 4, (0.5,), (0.25,)),
}
#: ``{dataset: (mean, std)}``: how images in [0, 1] are normalised before the model.
STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {k: (v.mean, v.std) for k, v in DATASETS.items()}


def normalize(images: Tensor, dataset: str) -> Tensor:
    """uint8 images (B, C, H, W) -> float32 ``(x / 255 - mean) / std`` with ``dataset``'s statistics: what a model
    trained by the task expects (the task's own ``prepare`` adds augmentation and the memory layout)."""
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in STATS[dataset])
    return (images.float().div_(255.0) - mean) / std


def split_indices(n: int, holdout: int, train_limit: int | None = None,
                  seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices of an ``n``-image training split, drawn with a fixed permutation.

    The last ``holdout`` positions of ``permutation(n)`` validate; training uses the first ``train_limit`` of the
    rest. Both are returned sorted (the data set's own order), as int64 arrays.

    Raises:
        ValueError: ``holdout`` leaves no training image, or a negative ``holdout``/``train_limit < 1``.
    """
    if holdout < 0 or (train_limit is not None and train_limit < 1):
        raise ValueError(f"need holdout >= 0 and train_limit >= 1 or None, got {holdout}, {train_limit}")
    if holdout >= n:
        raise ValueError(f"holdout={holdout} leaves no training images (the split has {n})")
    order = np.random.default_rng(seed).permutation(n)
    train, val = order[: n - holdout], order[n - holdout:]
    return np.sort(train[:train_limit]), np.sort(val)


def synthetic_bands(n: int, seed: int, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 (n, 32, 32, 3) images whose label is the one of ``num_classes`` vertical bands set to 255.

    Learnable from pixels (tiny models overfit it) and free of any file. A flip or shift moves the band, so
    train it without augmentation.
    """
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=n)
    bands = np.array_split(np.arange(32), num_classes)
    for i, y in enumerate(labels):
        images[i, :, bands[y]] = 255
    return images, labels.astype(np.int64)


def synthetic_textures(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n, 1, 8, 8) noisy textures of 4 classes that flips and shifts leave intact: horizontal stripes,
    vertical stripes, checkerboard, plain noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=n)
    images = rng.integers(0, 100, size=(n, 1, 8, 8), dtype=np.uint8)
    r, c = np.mgrid[:8, :8]
    patterns = np.stack([r % 2 == 0, c % 2 == 0, (r + c) % 2 == 0, np.zeros((8, 8), bool)])
    images += (155 * patterns[labels][:, None]).astype(np.uint8)
    return images, labels.astype(np.int64)


def load_split(dataset: str, split: str, data_dir: str | None = None,
               synthetic_size: int = 64) -> tuple[Tensor, Tensor]:
    """uint8 images (N, C, H, W) and int64 labels (N,) of ``split`` (``train``/``test``) of ``dataset``.

    Raises:
        ValueError: unknown data set.
        DataNotFoundError: the files are not on this machine (the message says how to get them).
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
    seed = 0 if split == "train" else 1
    if dataset == "fashion_mnist":
        from torchworks.data.fashion_mnist import load_fashion_mnist

        images, labels = load_fashion_mnist(split, data_dir)
        images = images[:, None]
    elif dataset in ("cifar10", "cifar100"):
        from torchworks.data import cifar

        loader = cifar.load_cifar10 if dataset == "cifar10" else cifar.load_cifar100
        images, labels = loader(split, data_dir)
        images = images.transpose(0, 3, 1, 2)
    elif dataset == "synthetic":
        images, labels = synthetic_bands(synthetic_size, seed)
        images = images.transpose(0, 3, 1, 2)
    else:
        images, labels = synthetic_textures(synthetic_size, seed)
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(np.asarray(labels, dtype=np.int64))


class TensorImages(Dataset):
    """uint8 images (N, C, H, W) and labels (N,); items are ``(uint8 image (C, H, W), label)``.

    Args:
        images, labels: the split (labels are stored as int64).
        index: when given, (N,) int64 indices returned as a third item ``(image, label, index)`` (CRD's memory
            bank and the teacher-logit cache are indexed by position in the full training split).
    """

    def __init__(self, images: Tensor, labels: Tensor, index: Tensor | None = None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or len(images) != len(labels):
            raise ValueError(f"need uint8 (N, C, H, W) images and N labels, got {images.dtype} "
                             f"{tuple(images.shape)} and {len(labels)} labels")
        if index is not None and len(index) != len(labels):
            raise ValueError(f"need one index per image, got {len(index)} for {len(labels)}")
        self.images, self.labels, self.index = images, labels.to(torch.int64), index

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        if self.index is None:
            return self.images[i], self.labels[i]
        return self.images[i], self.labels[i], self.index[i]

    def __getitems__(self, indices: list[int]) -> list[tuple[Tensor, ...]]:
        idx = torch.as_tensor(indices, dtype=torch.long)  # one gather per batch instead of one per item
        cols = [self.images[idx], self.labels[idx]] + ([] if self.index is None else [self.index[idx]])
        return list(zip(*(c.unbind(0) for c in cols), strict=True))


class ClassificationData:
    """Loads a data set once and hands out the train / validation / test splits as :class:`TensorImages`.

    Args:
        dataset: a key of :data:`DATASETS`.
        holdout, train_limit: see :func:`split_indices` (``holdout`` 0: the test set validates).
        data_dir: searched first for the files.
        synthetic_size: images per split of the synthetic data sets.
        return_index: training items carry their index into the full training split.
    """

    def __init__(self, dataset: str, holdout: int = 0, train_limit: int | None = None, data_dir: str | None = None,
                 synthetic_size: int = 64, return_index: bool = False) -> None:
        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
        self.dataset, self.holdout, self.train_limit = dataset, holdout, train_limit
        self.data_dir, self.synthetic_size, self.return_index = data_dir, synthetic_size, return_index
        self._arrays: dict[str, tuple[Tensor, Tensor]] = {}

    @property
    def info(self) -> DatasetInfo:
        """Shape, classes and normalisation of the data set."""
        return DATASETS[self.dataset]

    def arrays(self, split: str) -> tuple[Tensor, Tensor]:
        """uint8 (N, C, H, W) images and int64 (N,) labels of the whole ``split`` (``train``/``test``)."""
        if split not in self._arrays:
            self._arrays[split] = load_split(self.dataset, split, self.data_dir, self.synthetic_size)
        return self._arrays[split]

    @property
    def num_train_total(self) -> int:
        """Size of the full training split (holdout included)."""
        return len(self.arrays("train")[1])

    def indices(self) -> tuple[np.ndarray, np.ndarray]:
        """``(train, val)`` indices into the full training split (see :func:`split_indices`)."""
        return split_indices(self.num_train_total, self.holdout, self.train_limit)

    def _subset(self, split: str, idx: np.ndarray, with_index: bool = False) -> TensorImages:
        images, labels = self.arrays(split)
        t = torch.from_numpy(idx)
        return TensorImages(images[t], labels[t], t if with_index else None)

    def train(self) -> TensorImages:
        """The training images (augmentation happens on the batch, in the task)."""
        return self._subset("train", self.indices()[0], self.return_index)

    def val(self) -> TensorImages:
        """The holdout, or the test set in a fixed shuffled order when ``holdout`` is 0."""
        if self.holdout == 0:
            n = len(self.arrays("test")[1])
            return self._subset("test", np.random.default_rng(SPLIT_SEED).permutation(n))
        return self._subset("train", self.indices()[1])

    def test(self) -> TensorImages:
        """The test split in its stored order."""
        images, labels = self.arrays("test")
        return TensorImages(images, labels)

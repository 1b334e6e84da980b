"""CIFAR splits shared by the ``cifar_classifier`` and ``distill`` tasks: holdout, subsets, augmentation, indices.

The shared CIFAR-10 copy is stored class-major (all airplanes, then all automobiles, ...), so "the last N images"
would be one class. Holdout and ``train_limit`` subsets are therefore taken from a fixed permutation
(``numpy.random.default_rng(12345)``), the same on every machine and independent of the run seed.

With ``holdout: 0`` there is no separate validation set and validation runs on the test set, as RepDistiller
does; then "best" checkpoints are selected on test data, so report last-step accuracy (the engine's final
evaluation) as the headline number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset, Subset

SPLIT_SEED = 12345
DATASETS = ("cifar10", "cifar100", "synthetic")


@dataclass
class CifarData:
    """Which CIFAR data a task trains on.

    Attributes:
        dataset: ``cifar10``, ``cifar100`` (official python files under ``data_dir``), or ``synthetic``
            (random images whose label is a fixed function of the pixels: tests and smoke runs, no files).
        holdout: training images held out for validation (0: validate on the test set).
        train_limit: train on only this many images (after the holdout), or None for all.
        augment: random crop (pad 4) and horizontal flip on training images.
        synthetic_size: number of images per split for ``synthetic``.
    """

    dataset: str = "cifar10"
    holdout: int = 0
    train_limit: int | None = None
    augment: bool = True
    synthetic_size: int = 64

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"data.dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.holdout < 0:
            raise ValueError(f"data.holdout must be >= 0, got {self.holdout}")
        if self.train_limit is not None and self.train_limit < 1:
            raise ValueError(f"data.train_limit must be >= 1 or null, got {self.train_limit}")

    @property
    def num_classes(self) -> int:
        """Classes of the data set (100 for CIFAR-100, 10 otherwise)."""
        return 100 if self.dataset == "cifar100" else 10


def synthetic_arrays(n: int, seed: int, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 (n, 32, 32, 3) images; the label is the brightest of ``num_classes`` vertical bands.

    Learnable from pixels (so tiny models can overfit it) and free of any file.
    """
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=n)
    bands = np.array_split(np.arange(32), num_classes)
    for i, y in enumerate(labels):
        images[i, :, bands[y]] = 255
    return images, labels.astype(np.int64)


class CifarSplits:
    """Loads a CIFAR data set once and hands out train / validation / test datasets.

    Args:
        cfg: the data settings.
        data_dir: searched first for the files.
        return_index: datasets return ``(image, label, index)``; the index is into the *full* training set
            (``len(full_train)`` is :attr:`num_train_total`), which is what CRD's memory bank is sized by.
    """

    def __init__(self, cfg: CifarData, data_dir: str | None = None, return_index: bool = False) -> None:
        self.cfg = cfg
        self.data_dir = data_dir
        self.return_index = return_index
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._datasets: dict[tuple[str, bool], Dataset] = {}

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, 32, 32, 3) images and int64 (N,) labels of ``split`` (``train`` / ``test``)."""
        if split not in self._arrays:
            if self.cfg.dataset == "synthetic":
                self._arrays[split] = synthetic_arrays(self.cfg.synthetic_size, seed=0 if split == "train" else 1)
            elif self.cfg.dataset == "cifar100":
                from torchworks.data.cifar import load_cifar100

                self._arrays[split] = load_cifar100(split, self.data_dir)
            else:
                from torchworks.data.cifar import load_cifar10

                self._arrays[split] = load_cifar10(split, self.data_dir)
        return self._arrays[split]

    def _full(self, split: str, augment: bool) -> Dataset:
        from torchworks.data.cifar import CIFARDataset

        key = (split, augment)
        if key not in self._datasets:
            images, labels = self.arrays(split)
            stats = "cifar100" if self.cfg.dataset == "cifar100" else "cifar10"
            self._datasets[key] = CIFARDataset(images, labels, augment=augment, return_index=self.return_index,
                                               stats=stats)
        return self._datasets[key]

    @property
    def num_train_total(self) -> int:
        """Size of the full training split (holdout included)."""
        return len(self.arrays("train")[1])

    def _order(self) -> np.ndarray:
        n = self.num_train_total
        if self.cfg.holdout >= n:
            raise ValueError(f"data.holdout={self.cfg.holdout} leaves no training images (the split has {n})")
        return np.random.default_rng(SPLIT_SEED).permutation(n)

    def train_indices(self) -> np.ndarray:
        """Indices (into the full training split) of the images trained on."""
        order = self._order()
        idx = order[: len(order) - self.cfg.holdout]
        if self.cfg.train_limit is not None:
            idx = idx[: self.cfg.train_limit]
        return np.sort(idx)

    def train(self) -> Dataset:
        """The (augmented) training set."""
        full = self._full("train", self.cfg.augment)
        idx = self.train_indices()
        return full if len(idx) == len(full) else Subset(full, idx.tolist())

    def val(self) -> Dataset:
        """The holdout (un-augmented), or the test set in a fixed shuffled order when ``holdout`` is 0.

        Shuffled so that ``limit_val_batches`` evaluates a mix of classes, not the first class only.
        """
        if self.cfg.holdout == 0:
            test = self.test()
            return Subset(test, np.random.default_rng(SPLIT_SEED).permutation(len(test)).tolist())
        order = self._order()
        return Subset(self._full("train", False), np.sort(order[len(order) - self.cfg.holdout:]).tolist())

    def test(self) -> Dataset:
        """The test split (un-augmented)."""
        return self._full("test", False)

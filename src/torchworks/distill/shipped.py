"""The CIFAR-10 models shipped in ``distill/pretrained``: which file is the teacher, which are students, and the
fixed test subset they are compared on (by ``torchworks demo``; any script can reuse it)."""

from __future__ import annotations

import os
from pathlib import Path

TEACHER = "resnet56_cifar10"


def shipped_cifar_models(pretrained_dir: str | os.PathLike[str] | None = None) -> tuple[Path, list[Path]]:
    """The shipped teacher and the shipped students, by file name.

    A student is any other ``.safetensors`` whose name starts with ``resnet20`` or contains ``student``.

    Args:
        pretrained_dir: the folder to look in; None is ``torchworks.distill.task.PRETRAINED_DIR``, read at call
            time.

    Returns:
        ``(teacher file, student files sorted by name)``; the teacher file may be absent (check ``is_file()``).
    """
    if pretrained_dir is None:
        from torchworks.distill import task

        pretrained_dir = task.PRETRAINED_DIR
    folder = Path(pretrained_dir)
    teacher = folder / f"{TEACHER}.safetensors"
    students = sorted(p for p in folder.glob("*.safetensors")
                      if p != teacher and (p.stem.startswith("resnet20") or "student" in p.stem))
    return teacher, students


def cifar10_test_subset(limit: int, data_dir: str | os.PathLike[str] | None = None):
    """The first ``limit`` test images of a fixed permutation of the CIFAR-10 test split, ready for the zoo.

    The permutation is ``numpy.random.default_rng(SPLIT_SEED)`` (the seed of the distillation splits), so the
    subset mixes the classes (the stored copy is class-major) and is the same on every machine.

    Args:
        limit: how many images (at most 10,000; a larger value gives all of them).
        data_dir: searched first for CIFAR-10 (see :func:`torchworks.data.cifar.load_cifar10`).

    Returns:
        ``(images, labels)``: float32 (n, 3, 32, 32) normalised with the CIFAR-10 mean and std, and int64 (n,).

    Raises:
        ValueError: ``limit < 1``.
        DataNotFoundError: CIFAR-10 is not on this machine.
    """
    import numpy as np

    from torchworks.classify.data import SPLIT_SEED
    from torchworks.data.cifar import CIFARDataset, load_cifar10

    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    images, labels = load_cifar10("test", data_dir)
    idx = np.random.default_rng(SPLIT_SEED).permutation(len(labels))[:limit]
    data = CIFARDataset(images[idx], labels[idx])
    return (data.images.float() / 255 - data.mean) / data.std, data.labels

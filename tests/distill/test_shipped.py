"""``torchworks.distill.shipped``: which shipped files are teacher and students, and the fixed CIFAR-10 test subset."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import torchworks.distill.task as task
from torchworks.classify.data import SPLIT_SEED
from torchworks.data.cifar import CIFAR_STATS
from torchworks.distill.shipped import cifar10_test_subset, shipped_cifar_models


def test_teacher_and_students_by_file_name(tmp_path, monkeypatch):
    for stem in ("resnet56_cifar10", "resnet20_cifar10_ofd", "resnet20_cifar10_kd", "wrn_student_fitnet",
                 "wrn_40_2_cifar10"):
        (tmp_path / f"{stem}.safetensors").write_bytes(b"")
    (tmp_path / "resnet20_cifar10_kd.md").write_text("a card, not weights")
    teacher, students = shipped_cifar_models(tmp_path)
    assert teacher == tmp_path / "resnet56_cifar10.safetensors"
    assert [p.stem for p in students] == ["resnet20_cifar10_kd", "resnet20_cifar10_ofd", "wrn_student_fitnet"]
    # The default folder is read when called, so a patched PRETRAINED_DIR is honoured.
    monkeypatch.setattr(task, "PRETRAINED_DIR", tmp_path / "empty")
    assert shipped_cifar_models() == (tmp_path / "empty" / "resnet56_cifar10.safetensors", [])


def test_the_package_ships_the_teacher():
    teacher, students = shipped_cifar_models()
    assert teacher.is_file() and teacher.with_suffix(".md").is_file()
    assert teacher not in students


def _batches(root, images: np.ndarray, labels: list[int]) -> None:
    """A complete python-batches layout whose test split is ``images`` (the training batches are placeholders)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # the official channel-major rows
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rows, b"labels": labels}, f, protocol=2)


def test_subset_is_a_fixed_permutation_normalised_for_the_zoo(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHWORKS_CACHE", str(tmp_path / "cache"))
    images = np.random.default_rng(1).integers(0, 256, size=(30, 32, 32, 3), dtype=np.uint8)
    labels = [i % 10 for i in range(30)]
    _batches(tmp_path, images, labels)
    x, y = cifar10_test_subset(12, tmp_path)
    idx = np.random.default_rng(SPLIT_SEED).permutation(30)[:12]
    mean, std = (np.array(v, np.float32)[:, None, None] for v in CIFAR_STATS["cifar10"])
    expected = (images[idx].transpose(0, 3, 1, 2).astype(np.float32) / 255 - mean) / std
    assert x.shape == (12, 3, 32, 32) and x.dtype.is_floating_point
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-6)
    assert y.tolist() == [labels[i] for i in idx]
    assert len(cifar10_test_subset(100, tmp_path)[1]) == 30  # more than there are: all of them
    with pytest.raises(ValueError, match="limit must be >= 1"):
        cifar10_test_subset(0, tmp_path)

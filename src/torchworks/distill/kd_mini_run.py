"""A few-second knowledge-distillation experiment: one student trained on a handful of labelled images from the
labels alone, and again also matching a teacher's softened outputs, for several seeds.

It is an illustration sized for the tour (``torchworks demo`` runs it on the Fashion-MNIST slice shipped in the
package when CIFAR-10 is absent), so its loop is written out here instead of going through the engine:
``torchworks distill`` and :class:`~torchworks.distill.task.DistillationTask` run the real recipes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from torchworks.distill.losses.kd import KDLoss

LABELS_ONLY, WITH_KD = "labels only", "with KD"


@dataclass
class KDMiniRun:
    """What :func:`kd_mini_run` measured. Accuracies are top-1 fractions on the test images.

    Attributes:
        teacher_acc: the teacher's accuracy.
        teacher_params, student_params: parameter counts.
        seeds: the seeds, in the order of the lists in ``student_acc``.
        student_acc: ``{"labels only": [...], "with KD": [...]}``, one accuracy per seed.
        n_test: how many test images were scored.
        seconds: wall time of the student training (the teacher's forward passes excluded).
    """

    teacher_acc: float
    teacher_params: int
    student_params: int
    seeds: list[int]
    student_acc: dict[str, list[float]]
    n_test: int
    seconds: float

    def gains(self) -> list[float]:
        """KD minus labels-only accuracy, per seed (fractions)."""
        return [k - p for k, p in zip(self.student_acc[WITH_KD], self.student_acc[LABELS_ONLY], strict=True)]


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.inference_mode():
        return float((model(x).argmax(1) == y).float().mean())


def kd_mini_run(teacher: nn.Module, make_student: Callable[[], nn.Module], train: tuple[torch.Tensor, torch.Tensor],
                test: tuple[torch.Tensor, torch.Tensor], seeds: Sequence[int] = (0, 1, 2), steps: int = 400,
                batch_size: int = 64, T: float = 4.0, alpha: float = 0.9, lr: float = 1e-3,
                progress: Callable[[str], None] | None = None) -> KDMiniRun:
    """Trains ``make_student()`` with and without Hinton's KD from ``teacher`` for each seed, and scores both.

    For each seed, in the order labels only then with KD: ``torch.manual_seed(seed)``, a fresh student, Adam
    (``lr``), ``steps`` batches of ``batch_size`` drawn with replacement by a generator seeded with ``seed``
    (so both students of a seed see the same batches). The loss is cross-entropy, or
    ``(1 - alpha) CE + alpha KD`` with KD at temperature ``T``. The teacher is run once in eval mode on all
    images; its logits are reused at every step.

    Args:
        teacher: maps images to (n, K) logits; not trained.
        make_student: builds an untrained student (called after the seed is set, so its initialisation is seeded).
        train, test: ``(images, labels)``: float images (n, ...) as the models expect them, int64 labels (n,).
        seeds: one pair of students per seed.
        steps, batch_size, lr: the students' optimisation.
        T, alpha: KD temperature and weight (RepDistiller's CIFAR setting: 4 and 0.9).
        progress: called with a short note before each student.

    Returns:
        A :class:`KDMiniRun`.

    Raises:
        ValueError: no seeds, ``steps < 1``, ``batch_size < 1``, ``alpha`` outside [0, 1], ``T <= 0``, or images
            and labels of different lengths.

    References:
        Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", NIPS-W 2014, arXiv:1503.02531.
    """
    (x_train, y_train), (x_test, y_test) = train, test
    if not seeds or steps < 1 or batch_size < 1 or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"need seeds, steps >= 1, batch_size >= 1 and alpha in [0, 1]; got {list(seeds)}, {steps}, "
                         f"{batch_size}, {alpha}")
    for name, (x, y) in (("train", train), ("test", test)):
        if len(x) != len(y) or len(y) == 0:
            raise ValueError(f"{name}: need as many images as labels (at least one), got {len(x)} and {len(y)}")
    kd = KDLoss(T=T)
    teacher.eval()
    if progress is not None:
        progress("teacher logits")
    with torch.inference_mode():
        t_train, t_test = teacher(x_train), teacher(x_test)
    teacher_acc = float((t_test.argmax(1) == y_test).float().mean())

    def train_student(seed: int, with_kd: bool) -> nn.Module:
        torch.manual_seed(seed)
        student = make_student()
        opt = torch.optim.Adam(student.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            b = torch.randint(0, len(y_train), (batch_size,), generator=gen)
            z = student(x_train[b])
            ce = F.cross_entropy(z, y_train[b])
            loss = (1 - alpha) * ce + alpha * kd(z, t_train[b]) if with_kd else ce
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return student.eval()

    start = time.perf_counter()
    accs: dict[str, list[float]] = {LABELS_ONLY: [], WITH_KD: []}
    params = 0
    for seed in seeds:
        for kind, values in accs.items():
            if progress is not None:
                progress(f"student seed {seed}, {kind}")
            student = train_student(seed, kind == WITH_KD)
            values.append(_accuracy(student, x_test, y_test))
            params = sum(p.numel() for p in student.parameters())
    return KDMiniRun(teacher_acc=teacher_acc, teacher_params=sum(p.numel() for p in teacher.parameters()),
                     student_params=params, seeds=list(seeds), student_acc=accs, n_test=len(y_test),
                     seconds=time.perf_counter() - start)

"""``torchworks.distill.kd_mini_run``: students with and without KD, per seed, on data small enough to reason about."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchworks.distill.kd_mini_run import LABELS_ONLY, WITH_KD, kd_mini_run

K, D = 4, 6


def _problem(n_train: int = 64, n_test: int = 400, wrong_train_labels: bool = False):
    """Linearly separable classes and a teacher that knows the true rule. With ``wrong_train_labels`` every
    training label is shifted by one class, so only the teacher carries the truth."""
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(K, D, generator=g)
    teacher = nn.Linear(D, K, bias=False)
    teacher.weight.data.copy_(3 * weight)
    x_train, x_test = torch.randn(n_train, D, generator=g), torch.randn(n_test, D, generator=g)
    y_train, y_test = (x_train @ weight.T).argmax(1), (x_test @ weight.T).argmax(1)
    if wrong_train_labels:
        y_train = (y_train + 1) % K
    return teacher, (x_train, y_train), (x_test, y_test)


def _student() -> nn.Module:
    return nn.Sequential(nn.Linear(D, 16), nn.ReLU(), nn.Linear(16, K))


def test_kd_recovers_what_wrong_labels_hide():
    teacher, train, test = _problem(wrong_train_labels=True)
    run = kd_mini_run(teacher, _student, train, test, seeds=(0, 1), steps=150, batch_size=16, T=2.0, alpha=1.0,
                      lr=1e-2)
    assert run.teacher_acc == 1.0 and run.n_test == 400 and run.seeds == [0, 1]
    assert run.teacher_params == K * D and run.student_params == sum(p.numel() for p in _student().parameters())
    # Labels alone teach the shifted rule (almost always wrong); pure KD (alpha = 1) ignores them.
    assert max(run.student_acc[LABELS_ONLY]) < 0.2 and min(run.student_acc[WITH_KD]) > 0.8
    assert all(g > 0.6 for g in run.gains()) and len(run.gains()) == 2


def test_same_seed_same_students_and_alpha_zero_is_labels_only():
    teacher, train, test = _problem()
    kw = dict(seeds=(3, 4), steps=30, batch_size=8)
    first = kd_mini_run(teacher, _student, train, test, alpha=0.0, **kw)
    # alpha = 0: both students of a seed start from the same weights and see the same batches, so they agree.
    assert first.student_acc[LABELS_ONLY] == first.student_acc[WITH_KD] and first.gains() == [0.0, 0.0]
    again = kd_mini_run(teacher, _student, train, test, alpha=0.0, **kw)
    assert again.student_acc == first.student_acc
    other = kd_mini_run(teacher, _student, train, test, alpha=0.0, seeds=(5, 6), steps=30, batch_size=8)
    assert other.student_acc != first.student_acc  # the seed matters


def test_progress_names_the_teacher_then_every_student():
    teacher, train, test = _problem(n_train=8, n_test=8)
    notes: list[str] = []
    kd_mini_run(teacher, _student, train, test, seeds=(0,), steps=1, progress=notes.append)
    assert notes == ["teacher logits", f"student seed 0, {LABELS_ONLY}", f"student seed 0, {WITH_KD}"]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"seeds": ()}, "need seeds"),
    ({"steps": 0}, "steps >= 1"),
    ({"batch_size": 0}, "batch_size >= 1"),
    ({"alpha": 1.5}, "alpha in \\[0, 1\\]"),
    ({"T": 0.0}, "temperature T must be > 0"),
])
def test_bad_settings_are_refused(kwargs, match):
    teacher, train, test = _problem(n_train=8, n_test=8)
    with pytest.raises(ValueError, match=match):
        kd_mini_run(teacher, _student, train, test, **kwargs)


def test_images_and_labels_must_pair_up():
    teacher, (x, y), test = _problem(n_train=8, n_test=8)
    with pytest.raises(ValueError, match="train: need as many images as labels"):
        kd_mini_run(teacher, _student, (x, y[:5]), test)

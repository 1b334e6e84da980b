"""Every registered method trains inside DistillationTask; init phases, teacher BN mode, caching, bad input."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from torchworks.core.errors import ShapeError
from torchworks.core.registry import DISTILL_LOSSES
from torchworks.distill.recipes import INIT_METHODS, LossTerm, method_terms
from torchworks.distill.task import DistillationTask, DistillConfig

NO_AUGMENT = {"crop_padding": 0, "flip": False}


def _task(losses, teacher="resnet8", student="resnet8", init_steps=0, **kw) -> DistillationTask:
    kw = {"dataset": "synthetic", "synthetic_size": 16, "channels_last": False, **kw}  # crop + flip by default
    cfg = DistillConfig(teacher=teacher, student=student, losses=losses, init_steps=init_steps, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "untrained teacher"
        return DistillationTask(cfg)


def _batch(task, n=8):
    ds = task.train_dataset()
    return torch.utils.data.default_collate([ds[i] for i in range(n)])


def _steps(task, n):
    opt = task.configure_optimizers()
    sched = task.configure_schedulers([opt])[0]
    batch = _batch(task)
    outs = []
    for _ in range(n):
        out = task.training_step(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        sched.step()
        outs.append(out)
    return outs


@pytest.mark.parametrize("method", [*DISTILL_LOSSES.names(), "crd+kd"])
def test_every_method_trains_with_finite_loss(method):
    task = _task(method_terms(method), init_steps=2 if method in INIT_METHODS else 0)
    teacher_before = {k: v.clone() for k, v in task.teacher.state_dict().items()}
    outs = _steps(task, 3 if method in INIT_METHODS else 2)
    for out in outs:
        assert math.isfinite(float(out["loss"].detach())), (method, out)
    assert set(outs[-1]) >= {"loss", "acc", "loss_ce"}
    if method not in ("ab", "fsp"):  # the init-only terms are dropped in the main phase
        assert any(k.startswith(f"loss_{method.split('+')[0]}") for k in outs[-1]), outs[-1]
    for k, v in task.teacher.state_dict().items():
        torch.testing.assert_close(v, teacher_before[k], rtol=0, atol=0, msg=k)
    assert all(p.grad is None for p in task.teacher.parameters())


def test_init_phase_trains_only_the_init_terms():
    task = _task(method_terms("ab+ft"), init_steps=2)
    para_before = [p.clone() for p in task.losses[1].paraphraser.parameters()]
    fc = task.student.fc if hasattr(task.student, "fc") else list(task.student.children())[-1]
    outs = _steps(task, 2)
    assert [sorted(k for k in o if k.startswith("loss_")) for o in outs] == [["loss_ab", "loss_ft"]] * 2
    assert all(o["phase_init"] == 1.0 for o in outs)
    assert all(p.grad is None for p in fc.parameters())  # CE is off: the classifier gets nothing
    moved = [not torch.equal(a, b) for a, b in zip(para_before, task.losses[1].paraphraser.parameters(), strict=True)]
    assert all(moved)  # FT's paraphraser learns to reconstruct in the init phase
    para_mid = [p.clone() for p in task.losses[1].paraphraser.parameters()]
    outs = _steps(task, 1)
    assert sorted(k for k in outs[0] if k.startswith("loss_")) == ["loss_ce", "loss_ft"]
    assert all(torch.equal(a, b) for a, b in zip(para_mid, task.losses[1].paraphraser.parameters(), strict=True))


def test_init_phase_misuse():
    with pytest.raises(ValueError, match="init_steps > 0"):
        _task(method_terms("fsp"))
    with pytest.raises(ValueError, match="no term has an init phase"):
        _task(method_terms("kd"), init_steps=5)


def test_unequal_feature_counts_name_the_mismatch():
    with pytest.raises(ShapeError, match=r"at pairs feature maps.*student resnet8 / teacher vgg8 give 3 vs 4"):
        _task([LossTerm("ce"), LossTerm("at", 1000.0)], teacher="vgg8")
    with pytest.raises(ShapeError, match=r"fsp cannot pair student resnet8 / teacher resnet8x4.*channel"):
        _task([LossTerm("ce"), LossTerm("fsp")], teacher="resnet8x4", init_steps=1)
    with pytest.raises(ValueError, match="student_layers"):
        _task([LossTerm("ce"), LossTerm("at", student_layers=[9])])
    with pytest.raises(ValueError, match="unknown loss 'kdd'"):
        _task([LossTerm("kdd")])


def test_crd_without_indices_is_explained():
    task = _task(method_terms("crd"))
    x, y, _ = _batch(task)
    with pytest.raises(ValueError, match="crd term needs dataset indices"):
        task.training_step((x, y))


def test_crd_uses_label_aware_memory_over_the_whole_train_split():
    task = _task(method_terms("crd"), train_limit=8)
    crd = task.losses[0]
    assert crd.memory.n_data == 16 and crd.memory.label_aware
    before = crd.memory.memory_s.clone()
    _steps(task, 1)
    idx = _batch(task)[2]
    changed = (crd.memory.memory_s != before).any(1)
    assert changed[idx].all() and int(changed.sum()) == len(idx.unique())


def test_teacher_batch_statistics_leave_running_stats_alone():
    task = _task([LossTerm("ce"), LossTerm("ofd", 1e-3)])
    assert task.teacher_batch_bn
    bn = [m for m in task.teacher.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    mean, count = bn.running_mean.clone(), bn.num_batches_tracked.clone()
    _steps(task, 2)
    assert torch.equal(bn.running_mean, mean) and torch.equal(bn.num_batches_tracked, count)
    assert not task.teacher.training and bn.track_running_stats


def test_teacher_logit_cache(monkeypatch):
    task = _task(method_terms("kd"), cache_teacher_logits=True, **NO_AUGMENT)
    x, y, idx = _batch(task)
    first = task.training_step((x, y, idx))["loss"]
    monkeypatch.setattr(task.teacher, "forward", lambda *a, **k: pytest.fail("teacher ran despite the cache"))
    torch.testing.assert_close(task.training_step((x, y, idx))["loss"], first)
    with pytest.raises(ValueError, match="augment"):
        _task(method_terms("kd"), cache_teacher_logits=True)
    with pytest.raises(ValueError, match="logit-only"):
        _task(method_terms("at"), cache_teacher_logits=True, **NO_AUGMENT)

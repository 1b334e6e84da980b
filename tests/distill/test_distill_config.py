"""The distillation config: RepDistiller's CIFAR defaults on the shared classification recipe, the schedule after
the init phase, the shipped distillation recipes, shipped teacher names."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from torchworks.classify.task import ClassifierRecipe
from torchworks.distill.recipes import LossTerm
from torchworks.distill.task import DistillationTask, DistillConfig, resolve_teacher_ckpt
from torchworks.engine.config import load_run_config

CONFIGS = sorted(str(p) for p in Path("configs").glob("distill_*.yaml")) + ["configs/tiny_distill.yaml"]


def test_defaults_are_repdistillers_cifar_recipe():
    cfg = DistillConfig()
    assert isinstance(cfg, ClassifierRecipe)
    assert (cfg.dataset, cfg.holdout, cfg.crop_padding, cfg.flip) == ("cifar10", 0, 4, True)
    assert (cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.weight_decay_scope) == \
        ("sgd", 0.05, 0.9, 5e-4, "all")
    assert cfg.num_classes == 10 and DistillConfig(dataset="cifar100").num_classes == 100
    with pytest.raises(ValueError, match="losses is empty"):
        DistillConfig(losses=[])
    with pytest.raises(ValueError, match="dataset"):  # the recipe's own checks still run
        DistillConfig(dataset="imagenet")


def test_schedule_starts_after_the_init_phase():
    cfg = DistillConfig(teacher="resnet8", student="resnet8", dataset="synthetic", synthetic_size=8,
                        channels_last=False, losses=[LossTerm("ce"), LossTerm("ab", 1.0)], init_steps=5,
                        warmup_steps=2, total_steps=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # untrained teacher
        task = DistillationTask(cfg)
    opt = task.configure_optimizers()
    (sched,) = task.configure_schedulers([opt])
    f = sched.lr_lambdas[0]
    assert [f(s) for s in range(5)] == pytest.approx([1 / 3] * 5)  # held at the first warm-up value
    assert [f(s) for s in (5, 6, 7, 16, 25)] == pytest.approx([1 / 3, 2 / 3, 1.0, 0.5, 0.0])  # mid-cosine: 5 + 11
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not trained & {id(p) for p in task.teacher.parameters()}  # the teacher is never optimised
    assert trained >= {id(p) for p in task.student.parameters()}
    assert all(k.startswith(("student.", "teacher.", "losses.", "step_count")) for k in task.state_dict())
    assert torch.equal(task(task.data.test().images[:2]), task.student(task.prepare(task.data.test().images[:2],
                                                                                       False)))


@pytest.mark.parametrize("path", CONFIGS)
def test_shipped_configs_validate(path):
    run, task_cfg = load_run_config(path)
    assert run.trainer.threads == 1
    assert task_cfg.dataset in ("cifar10", "synthetic")


def test_pretrained_names_are_resolved_or_listed():
    with pytest.raises(FileNotFoundError, match="no shipped teacher 'nope'"):
        resolve_teacher_ckpt("pretrained:nope")
    assert resolve_teacher_ckpt("x/y.ckpt") == Path("x/y.ckpt")

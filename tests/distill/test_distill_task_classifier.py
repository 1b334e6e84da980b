"""cifar_classifier (teachers and baselines), the LR schedule, data splits and the shipped YAML recipes."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

import torchworks.distill.task  # noqa: F401  (registers distill and cifar_classifier)
from torchworks.core.checkpoint import load_model
from torchworks.distill.cifar_data import CifarData, CifarSplits
from torchworks.distill.classifier import OptimConfig
from torchworks.distill.task import resolve_teacher_ckpt
from torchworks.engine.config import load_run_config
from torchworks.engine.run import train

CONFIGS = sorted(str(p) for p in Path("configs").glob("distill_*.yaml")) + [
    "configs/cifar_resnet56.yaml", "configs/cifar_resnet56_stage2.yaml", "configs/tiny_distill.yaml"]


def test_classifier_overfits_through_the_engine(tmp_path):
    cfg = {
        "task": {"name": "cifar_classifier", "model": "resnet8", "channels_last": False,
                 "data": {"dataset": "synthetic", "synthetic_size": 8, "augment": False},
                 "optim": {"lr": 0.05, "weight_decay": 0.0, "schedule": "constant"}},
        "trainer": {"max_steps": 30, "batch_size": 8, "eval_every": 30, "log_every": 1, "threads": 1,
                    "progress": False, "tensorboard": False, "plots": False},
        "out_dir": str(tmp_path / "run"),
    }
    result = train(cfg)
    with open(result.metrics_csv) as f:
        losses = [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]
    assert losses[-1] < 0.1 * losses[0]
    model = load_model(result.last_checkpoint, expect="resnet8")
    assert model.fc.out_features == 10


def test_init_ckpt_must_hold_the_same_model(tmp_path):
    from torchworks.core.checkpoint import build_model, save_model
    from torchworks.core.errors import CheckpointError
    from torchworks.distill.classifier import CifarClassifier, CifarClassifierConfig

    source = build_model("resnet8", num_classes=10)
    path = save_model(tmp_path / "r8.safetensors", source)
    data = CifarData(dataset="synthetic", synthetic_size=8)
    task = CifarClassifier(CifarClassifierConfig(model="resnet8", data=data, init_ckpt=str(path)))
    for name, value in source.state_dict().items():
        assert torch.equal(task.model.state_dict()[name], value), name
    with pytest.raises(CheckpointError, match="'resnet8', not 'resnet14'"):
        CifarClassifier(CifarClassifierConfig(model="resnet14", data=data, init_ckpt=str(path)))


def test_schedule_warmup_cosine_and_steps():
    cos = OptimConfig(lr=0.1, schedule="cosine", total_steps=110, warmup_steps=10)
    assert cos.factor(0) == pytest.approx(0.1) and cos.factor(10) == pytest.approx(1.0)
    assert cos.factor(60) == pytest.approx(0.5) and cos.factor(110) == pytest.approx(0.0, abs=1e-12)
    step = OptimConfig(schedule="step", total_steps=240, milestones=[0.625, 0.75, 0.875])
    assert [step.factor(s) for s in (149, 150, 180, 239)] == pytest.approx([1, 0.1, 0.01, 0.001])
    with pytest.raises(ValueError, match="milestones"):
        OptimConfig(milestones=[150])


def test_splits_are_shuffled_holdouts_not_the_last_class():
    splits = CifarSplits(CifarData(dataset="synthetic", synthetic_size=40, holdout=10, train_limit=20))
    train_idx = splits.train_indices()
    assert len(train_idx) == 20 and len(splits.val()) == 10
    val_idx = np.array(splits.val().indices)
    assert not set(train_idx) & set(val_idx) and val_idx.max() - val_idx.min() > 10
    with pytest.raises(ValueError, match="holdout"):
        CifarSplits(CifarData(dataset="synthetic", synthetic_size=8, holdout=8)).train()
    with pytest.raises(ValueError, match="dataset"):
        CifarData(dataset="imagenet")


@pytest.mark.parametrize("path", CONFIGS)
def test_shipped_configs_validate(path):
    run, task_cfg = load_run_config(path)
    assert run.trainer.threads == 1
    assert task_cfg.data.dataset in ("cifar10", "synthetic")


def test_pretrained_names_are_resolved_or_listed():
    with pytest.raises(FileNotFoundError, match="no shipped teacher 'nope'"):
        resolve_teacher_ckpt("pretrained:nope")
    assert resolve_teacher_ckpt("x/y.ckpt") == Path("x/y.ckpt")

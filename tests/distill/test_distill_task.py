"""DistillationTask through the shared engine: overfitting, a frozen teacher, resume, CLI, bad checkpoints."""

from __future__ import annotations

import argparse
import csv

import pytest
import torch

import torchworks.distill.task  # noqa: F401  (registers the distill task)
from torchworks.core.checkpoint import build_model, load_model, save_model
from torchworks.core.errors import CheckpointError
from torchworks.engine.run import train

TINY = "configs/tiny_distill.yaml"


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    """A resnet8 teacher trained for a few steps on the tiny config's synthetic images, saved with save_model."""
    from torchworks.classify.data import ClassificationData, normalize

    torch.manual_seed(123)
    teacher = build_model("resnet8", num_classes=10)
    ds = ClassificationData("synthetic", synthetic_size=8).train()
    x, y = normalize(ds.images, "synthetic"), ds.labels
    opt = torch.optim.Adam(teacher.parameters(), lr=1e-2)
    for _ in range(25):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(teacher(x), y).backward()
        opt.step()
    path = save_model(tmp_path_factory.mktemp("teacher") / "teacher.safetensors", teacher)
    return str(path), {k: v.clone() for k, v in teacher.state_dict().items()}


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_overfits_tiny_batch_and_teacher_stays_frozen(tmp_path, teacher_ckpt):
    ckpt, before = teacher_ckpt
    result = train(TINY, overrides=[f"task.teacher_ckpt={ckpt}", "trainer.log_every=1"], out_dir=tmp_path / "run")
    rows = [r for r in _rows(result["metrics_csv"]) if r.get("train/loss")]
    first, last = float(rows[0]["train/loss"]), float(rows[-1]["train/loss"])
    assert last < 0.1 * first, (first, last)
    assert float(rows[-1]["train/acc"]) == 1.0
    task = result["task"]
    assert not task.teacher.training  # never switched to train mode, not even by validation
    for name, value in task.teacher.state_dict().items():  # weights and BN running statistics untouched
        torch.testing.assert_close(value, before[name], rtol=0, atol=0, msg=name)
    assert all(p.grad is None and not p.requires_grad for p in task.teacher.parameters())
    assert all(m is not task.teacher for m in task.trainable_modules())
    exported = load_model(result["last_checkpoint"], expect="resnet8")  # the checkpoint rebuilds the student
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(exported.eval()(x), task.student.eval()(x))


def test_crd_kd_resume_gives_same_next_loss(tmp_path, teacher_ckpt):
    ckpt, _ = teacher_ckpt
    sets = [f"task.teacher_ckpt={ckpt}", "trainer.max_steps=6", "trainer.log_every=1", "trainer.checkpoint_every=3",
            "trainer.eval_every=0", "task.losses=[{name: ce}, {name: kd}, {name: crd, weight: 0.8, args: {k: 16}}]"]
    full = train(TINY, overrides=sets, out_dir=tmp_path / "full")
    crd = full["task"].losses[1]
    assert crd.z[0] > 0  # the NCE normalisation was fixed on the first batch
    part = train(TINY, overrides=[*sets, "trainer.max_steps=3"], out_dir=tmp_path / "part")
    resumed = train(TINY, overrides=sets, out_dir=tmp_path / "part", resume=part["last_checkpoint"])
    a = {r["step"]: float(r["train/loss"]) for r in _rows(full["metrics_csv"]) if r.get("train/loss")}
    b = {r["step"]: float(r["train/loss"]) for r in _rows(resumed["metrics_csv"]) if r.get("train/loss")}
    assert a["4"] == pytest.approx(b["4"], rel=1e-6) and a["6"] == pytest.approx(b["6"], rel=1e-6)


def test_teacher_checkpoint_of_another_architecture(tmp_path):
    wrong = save_model(tmp_path / "r14.safetensors", build_model("resnet14", num_classes=10))
    with pytest.raises(CheckpointError, match=r"resnet14.*resnet8|resnet8.*resnet14"):
        train(TINY, overrides=[f"task.teacher_ckpt={wrong}"], out_dir=tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        train(TINY, overrides=[f"task.teacher_ckpt={tmp_path / 'missing.safetensors'}"], out_dir=tmp_path / "y")


def test_teacher_checkpoint_with_other_class_count(tmp_path):
    other = save_model(tmp_path / "r8_100.safetensors", build_model("resnet8", num_classes=100))
    with pytest.raises(CheckpointError, match="100 classes"):
        train(TINY, overrides=[f"task.teacher_ckpt={other}"], out_dir=tmp_path / "x")


def test_cli_distill_verb(tmp_path, teacher_ckpt, capsys):
    from torchworks.cli import distill_cmd

    parser = argparse.ArgumentParser()
    distill_cmd.add_parser(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["distill", "--teacher", "resnet8", "--student", "resnet8", "--method", "crd+kd",
                              "--ckpt-teacher", teacher_ckpt[0], "--data", "synthetic", "--steps", "2",
                              "--batch-size", "8", "--threads", "1", "--out", str(tmp_path / "cli"),
                              "--set", "trainer.progress=false", "--set", "trainer.plots=false"])
    assert distill_cmd.run(args) == 0
    out = capsys.readouterr().out
    assert "last ckpt" in out and (tmp_path / "cli" / "checkpoints" / "last.ckpt").exists()
    cfg = distill_cmd.build_config(parser.parse_args(["distill", "--method", "ab", "--steps", "80"]))
    assert cfg["task"]["init_steps"] == 10 and [t["name"] for t in cfg["task"]["losses"]] == ["ce", "ab"]
    with pytest.raises(ValueError, match="unknown distillation method"):
        distill_cmd.build_config(parser.parse_args(["distill", "--method", "kd+magic"]))

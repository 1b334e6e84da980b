"""Any nn.Module as teacher or student, by import path, with features tapped by module path, through the engine."""

from __future__ import annotations

import argparse
import csv
import warnings
from pathlib import Path

import pytest
import torch

import torchworks.distill.task  # noqa: F401  (registers the distill task)
from torchworks.core.checkpoint import load_model, save_model
from torchworks.core.errors import ConfigError, ShapeError, UnknownNameError
from torchworks.distill.networks import build_network, load_network
from torchworks.distill.recipes import LossTerm
from torchworks.distill.task import DistillationTask, DistillConfig
from torchworks.engine.run import train

TINY = "configs/tiny_distill.yaml"
NET = "distill_foreign_nets:tiny_cnn"


@pytest.fixture(autouse=True)
def _importable(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


@pytest.fixture
def foreign_teacher(tmp_path, _importable):
    """A tiny_cnn (width 16) fitted for a few steps to the tiny config's 8 synthetic images, saved by save_model."""
    from torchworks.classify.data import ClassificationData, normalize

    torch.manual_seed(7)
    teacher = build_network(NET, {"width": 16}, num_classes=10)
    ds = ClassificationData("synthetic", synthetic_size=8).train()
    x, y = normalize(ds.images, "synthetic"), ds.labels
    opt = torch.optim.Adam(teacher.parameters(), lr=1e-2)
    for _ in range(40):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(teacher(x), y).backward()
        opt.step()
    path = save_model(tmp_path / "teacher.safetensors", teacher)  # spec: the import path and its kwargs
    return str(path), {k: v.clone() for k, v in teacher.state_dict().items()}


def _rows(path):
    with open(path) as f:
        return [r for r in csv.DictReader(f) if r.get("train/loss")]


def test_kd_between_two_foreign_models_through_the_engine(tmp_path, foreign_teacher):
    ckpt, before = foreign_teacher
    result = train(TINY, out_dir=tmp_path / "run", overrides=[
        f"task.teacher={NET}", f"task.student={NET}", f"task.teacher_ckpt={ckpt}", "trainer.log_every=1",
        "trainer.max_steps=60"])
    rows = _rows(result["metrics_csv"])
    assert float(rows[-1]["train/loss"]) < 0.2 * float(rows[0]["train/loss"]), (rows[0], rows[-1])
    assert float(rows[-1]["train/acc"]) == 1.0
    task = result["task"]
    assert isinstance(task.student, torch.nn.Sequential) and task.student[0].out_channels == 8  # default width
    assert task.teacher[0].out_channels == 16  # width from the teacher checkpoint's stored kwargs
    for name, value in task.teacher.state_dict().items():  # frozen: weights and BN statistics untouched
        torch.testing.assert_close(value, before[name], rtol=0, atol=0, msg=name)
    # the exported student comes back by its import path (the file alone never names code to import)
    student = load_network(result["last_checkpoint"], NET).eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(student(x), task.student.eval()(x))
    with pytest.raises(UnknownNameError):
        load_model(result["last_checkpoint"])
    with pytest.raises(ValueError, match="holds model 'distill_foreign_nets:tiny_cnn', not 'resnet8'"):
        load_network(result["last_checkpoint"], "resnet8")


def _task(losses, teacher=NET, student=NET, **kw) -> DistillationTask:
    cfg = DistillConfig(teacher=teacher, student=student, losses=losses, channels_last=False, dataset="synthetic",
                        synthetic_size=16, crop_padding=0, flip=False, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "untrained teacher"
        return DistillationTask(cfg)


def _train(task, steps):
    opt = task.configure_optimizers()
    ds = task.train_dataset()
    batch = torch.utils.data.default_collate([ds[i] for i in range(8)])
    outs = []
    for _ in range(steps):
        out = task.training_step(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        outs.append(out)
    return batch, outs


def test_fitnet_taps_a_foreign_student_against_a_zoo_teacher():
    # student module "4" is the second BN (16 x 16 x 16), teacher resnet8's "layer2" gives (32, 16, 16)
    task = _task([LossTerm("ce"), LossTerm("fitnet", 100.0, student_layers=["4"], teacher_layers=["layer2"])],
                 teacher="resnet8")
    fitnet = task.losses[0]
    assert fitnet.regressor.conv.in_channels == 16 and fitnet.regressor.out_shape == (32, 16, 16)
    batch, outs = _train(task, 12)
    losses = [float(o["loss_fitnet"]) for o in outs]
    assert losses[-1] < 0.5 * losses[0], losses
    # the term reads exactly the tapped modules' outputs of this forward
    x = task.prepare(batch[0], train=False)  # uint8 batch -> the normalised float images both networks see
    task.eval()
    with torch.no_grad():
        s_logits, s_feats = task.terms.run_student(task.student, x)
        _, t_feats = task.terms.run_teacher(task.teacher, x)
        torch.testing.assert_close(s_feats["tap"]["4"], task.student[:5](x))
        torch.testing.assert_close(t_feats["tap"]["layer2"], task.teacher(x, return_features=True)[1][2])
        expected = fitnet(s_feats["tap"]["4"], t_feats["tap"]["layer2"])
        assert float(task.terms.losses(s_logits, s_feats, None, t_feats, batch[1], None, False)["fitnet"][1]) \
            == pytest.approx(float(expected))


def test_attention_transfer_on_two_taps_of_foreign_models():
    at = LossTerm("at", 1000.0, student_layers=["2", "5"], teacher_layers=["2", "5"])
    task = _task([LossTerm("ce"), at], teacher_args={"width": 16})
    assert task.terms.student_needs == frozenset() and task.terms.teacher_reads_features
    _, outs = _train(task, 8)
    losses = [float(o["loss_at"]) for o in outs]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0], losses


def test_bad_foreign_models_and_taps_fail_when_the_task_is_built():
    fitnet = LossTerm("fitnet", 1.0)
    with pytest.raises(ValueError, match=r"student 'distill_foreign_nets:tiny_cnn' is not a zoo model.*module paths.*"
                                         r"\(its top-level modules: 0, 1, 2"):
        _task([fitnet], teacher="resnet8")
    with pytest.raises(ValueError, match=r"no module at path '44'.*close names: 4"):
        _task([LossTerm("fitnet", 1.0, student_layers=["44"], teacher_layers=["4"])])
    with pytest.raises(ValueError, match="mixes indices and module paths"):
        _task([LossTerm("at", 1.0, student_layers=["2", 1], teacher_layers=["2", "5"])])
    with pytest.raises(ValueError, match=r"'act' ran twice in one forward pass of SharedRelu"):
        _task([LossTerm("at", 1.0, student_layers=["act"], teacher_layers=["2"])],
              student="distill_foreign_nets:SharedRelu")
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module'"):
        _task([LossTerm("kd")], student="no_such_module:net")
    with pytest.raises(ConfigError, match="has no attribute 'tiny_cn'; close names: tiny_cnn"):
        _task([LossTerm("kd")], student="distill_foreign_nets:tiny_cn")
    with pytest.raises(ConfigError, match="returned a int, not a torch.nn.Module"):
        _task([LossTerm("kd")], student="distill_foreign_nets:not_a_model")
    with pytest.raises(ShapeError, match=r"student distill_foreign_nets:tiny_cnn returned \(2, 7\).*\(2, 10\)"):
        _task([LossTerm("kd")], student_args={"num_classes": 7})


def test_factory_without_num_classes_is_called_without_it():
    model = build_network("distill_foreign_nets:fixed_ten", {}, num_classes=10)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(TypeError):  # the factory really has no such parameter: it was not passed
        build_network("distill_foreign_nets:fixed_ten", {"num_classes": 10}, num_classes=10)
    cfg = DistillConfig(student="distill_foreign_nets:fixed_ten", teacher="resnet8", channels_last=False,
                        dataset="cifar100")  # 100 classes; no file is read to build the task
    with warnings.catch_warnings(), pytest.raises(ShapeError, match=r"returned \(2, 10\).*\(2, 100\)"):
        warnings.simplefilter("ignore")
        DistillationTask(cfg)


def test_teacher_from_a_plain_safetensors_state_dict(tmp_path, foreign_teacher):
    from safetensors.torch import save_file

    _, weights = foreign_teacher
    plain = tmp_path / "plain.safetensors"
    save_file(weights, str(plain))
    task = _task([LossTerm("ce"), LossTerm("kd", 0.9)], teacher_ckpt=str(plain), teacher_args={"width": 16})
    for name, value in task.teacher.state_dict().items():
        torch.testing.assert_close(value, weights[name], rtol=0, atol=0, msg=name)
    with pytest.raises(ValueError, match=r"does not fit.*wrong shape"):  # width 8 by default: weights do not fit
        _task([LossTerm("kd")], teacher_ckpt=str(plain))
    junk = tmp_path / "teacher.pt"
    junk.write_bytes(b"PK\x03\x04 not safetensors")
    with pytest.raises(ValueError, match="is not a safetensors file"):
        _task([LossTerm("kd")], teacher_ckpt=str(junk))


def test_cli_distills_foreign_models_with_taps(tmp_path, foreign_teacher, capsys):
    from torchworks.cli import distill_cmd

    parser = argparse.ArgumentParser()
    distill_cmd.add_parser(parser.add_subparsers(dest="verb"))
    argv = ["distill", "--teacher", NET, "--student", NET, "--method", "fitnet", "--student-taps", "4",
            "--teacher-taps", "4", "--ckpt-teacher", foreign_teacher[0], "--data", "synthetic", "--steps", "2",
            "--batch-size", "8", "--threads", "1", "--set", "trainer.progress=false", "--set", "trainer.plots=false"]
    cfg = distill_cmd.build_config(parser.parse_args(argv))
    assert cfg["out_dir"] == "runs/distill_distill_foreign_nets_tiny_cnn_fitnet"  # no colon in a folder name
    assert [(t["name"], t["student_layers"], t["teacher_layers"]) for t in cfg["task"]["losses"]] == \
        [("ce", None, None), ("fitnet", ["4"], ["4"])]
    assert distill_cmd.run(parser.parse_args([*argv, "--out", str(tmp_path / "cli")])) == 0
    assert "last ckpt" in capsys.readouterr().out
    student = load_network(tmp_path / "cli" / "checkpoints" / "last.ckpt", NET)
    assert student[0].out_channels == 8
    with pytest.raises(ValueError, match="--student-taps: the losses .*'kd'.* read no features"):
        distill_cmd.build_config(parser.parse_args(["distill", "--method", "kd", "--student-taps", "4"]))

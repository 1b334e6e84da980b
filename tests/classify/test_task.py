"""The one ``image_classifier`` task: engine training, batch preparation, optimiser choices, the engine schedule,
init weights, config errors, and every shipped classification recipe."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import torchworks.classify  # noqa: F401  (registers image_classifier)
from torchworks.classify.data import normalize
from torchworks.classify.task import ClassificationTask, ImageClassifier, ImageClassifierConfig
from torchworks.core.checkpoint import build_model, load_model, save_model
from torchworks.core.config import load_yaml
from torchworks.core.errors import CheckpointError, ConfigError
from torchworks.engine.config import load_run_config
from torchworks.engine.run import train

ROOT = Path(__file__).resolve().parents[2]
CLASSIFIER_CONFIGS = sorted(p.name for p in (ROOT / "configs").glob("*.yaml")
                            if load_yaml(p).get("task", {}).get("name") in ("image_classifier", "distill"))
TINY_VIT = {"image_size": 8, "patch_size": 4, "in_chans": 1, "num_classes": 4, "dim": 16, "depth": 1,
            "num_heads": 2, "mlp_dim": 32}


def _task(**cfg) -> ImageClassifier:
    cfg = {"dataset": "synthetic_textures", "model": "vit_tiny_patch4_28", "model_args": TINY_VIT, "holdout": 16,
           **cfg}
    return ImageClassifier(ImageClassifierConfig(**cfg))


def test_resnet_overfits_synthetic_bands_through_the_engine(tmp_path):
    cfg = {
        "task": {"name": "image_classifier", "model": "resnet8", "dataset": "synthetic", "synthetic_size": 8,
                 "holdout": 0, "optimizer": "sgd", "lr": 0.05, "weight_decay": 0.0},
        "trainer": {"max_steps": 30, "batch_size": 8, "eval_every": 30, "log_every": 1, "threads": 1,
                    "progress": False, "tensorboard": False, "plots": False},
        "out_dir": str(tmp_path / "run"),
    }
    result = train(cfg)
    with open(result.metrics_csv) as f:
        losses = [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]
    assert losses[-1] < 0.1 * losses[0]
    model = load_model(result.last_checkpoint, expect="resnet8").eval()
    assert model.fc.out_features == 10  # num_classes from the data set
    data = result["task"].data.train()
    acc = (model(normalize(data.images, "synthetic")).argmax(1) == data.labels).float().mean()
    assert acc == 1.0  # the exported network alone, fed as the task feeds it


def test_prepare_converts_augments_only_training_batches_and_normalises():
    images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    plain = _task(normalize=False)
    assert torch.equal(plain.prepare(images, train=False), images.float() / 255)
    task = _task(crop_padding=2, flip=True, channels_last=True)
    ref = normalize(images, "synthetic_textures")
    assert torch.equal(task.prepare(images, train=False), ref)
    torch.manual_seed(0)
    aug = task.prepare(images, train=True)
    assert not torch.equal(aug, ref) and aug.is_contiguous(memory_format=torch.channels_last)


def _multipliers(steps, **cfg):
    task = _task(**cfg)
    (sched,) = task.configure_schedulers([task.configure_optimizers()])
    return [sched.lr_lambdas[0](s) for s in steps]


def test_schedule_is_the_engine_warmup_then_cosine_or_steps():
    got = _multipliers([0, 9, 10, 60, 110, 500], warmup_steps=10, total_steps=110, min_lr_ratio=0.2)
    assert got == pytest.approx([1 / 11, 10 / 11, 1.0, 0.6, 0.2, 0.2])  # 0.6: half-way down from 1 to 0.2
    assert _multipliers([0, 10, 500], warmup_steps=10) == pytest.approx([1 / 11, 1.0, 1.0])  # no total_steps
    assert _multipliers([0, 500]) == [1.0, 1.0]
    steps = _multipliers([149, 150, 180, 239], schedule="step", total_steps=240)
    assert steps == pytest.approx([1, 0.1, 0.01, 0.001])


def test_adamw_decays_only_weight_matrices_by_default():
    task = _task(weight_decay=0.1)
    opt = task.configure_optimizers()
    decay, no_decay = opt.param_groups
    named = {id(p): n for n, p in task.model.named_parameters()}
    assert isinstance(opt, torch.optim.AdamW) and decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    decayed = sorted(named[id(p)] for p in decay["params"])
    assert "patch_embed.weight" in decayed and "head.weight" in decayed and "blocks.0.ff.fc1.weight" in decayed
    assert not any(k in n for n in decayed for k in ("bias", "norm", "pos_embed", "cls_token"))
    assert len(decay["params"]) + len(no_decay["params"]) == len(named)


def test_sgd_with_decay_on_every_parameter():
    task = _task(optimizer="sgd", lr=0.1, momentum=0.8, nesterov=True, weight_decay=5e-4, weight_decay_scope="all")
    opt = task.configure_optimizers()
    (group,) = opt.param_groups
    assert isinstance(opt, torch.optim.SGD) and group["nesterov"] and group["momentum"] == 0.8
    assert group["weight_decay"] == 5e-4 and len(group["params"]) == len(list(task.model.parameters()))


def test_init_ckpt_must_hold_the_same_model(tmp_path):
    source = build_model("resnet8", num_classes=10)
    path = save_model(tmp_path / "r8.safetensors", source)
    cfg = {"model": "resnet8", "dataset": "synthetic", "holdout": 0, "init_ckpt": str(path)}
    task = ImageClassifier(ImageClassifierConfig(**cfg))
    for name, value in source.state_dict().items():
        assert torch.equal(task.model.state_dict()[name], value), name
    with pytest.raises(CheckpointError, match="'resnet8', not 'resnet14'"):
        ImageClassifier(ImageClassifierConfig(**{**cfg, "model": "resnet14"}))


@pytest.mark.parametrize(("bad", "match"), [
    ({"dataset": "mnist"}, "dataset"), ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"crop_padding": -1}, "crop_padding"), ({"milestones": [150]}, "milestones"),
    ({"min_lr_ratio": 2.0}, "min_lr_ratio"), ({"nesterov": True}, "nesterov"),
])
def test_config_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        ImageClassifierConfig(**bad)


def test_one_task_for_every_classifier():
    from torchworks.core.registry import TASKS
    from torchworks.distill.task import DistillationTask

    assert TASKS.get("image_classifier").__module__ == "torchworks.classify.task"
    assert issubclass(DistillationTask, ClassificationTask)
    for old in ("cifar_classifier", "fashion_classifier"):  # the former per-domain tasks point to the shared one
        with pytest.raises(ConfigError, match="did you mean 'image_classifier'"):
            load_run_config({"task": {"name": old}, "out_dir": "x"})


@pytest.mark.parametrize("name", CLASSIFIER_CONFIGS)
def test_shipped_classification_recipes_validate(name):
    run, task_cfg = load_run_config(ROOT / "configs" / name)
    assert run.task["name"] in ("image_classifier", "distill") and task_cfg.num_classes == 10
    if task_cfg.total_steps:  # the schedule ends where training ends
        assert task_cfg.total_steps == run.trainer.max_steps, name

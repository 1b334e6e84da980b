"""The ViT family on the shared ``image_classifier`` task: parameter counts by hand, the CNN partners, training on
synthetic textures through the engine, resume."""

from __future__ import annotations

import csv

import pytest
import torch

import torchworks.transformer.vit  # noqa: F401  (registers ViT variants and the CNN baseline)
from torchworks.core.checkpoint import build_model
from torchworks.core.registry import MODELS
from torchworks.engine.run import evaluate, train


def _vit_params(d: int, depth: int, mlp: int, chans: int, patch: int, n: int, k: int = 10) -> int:
    """Parameter count of our ViT written out layer by layer."""
    patch_embed = chans * patch * patch * d + d
    block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * mlp + mlp) + (mlp * d + d)
    return patch_embed + d + (n + 1) * d + depth * block + 2 * d + d * k + k


def test_variant_parameter_counts_by_hand():
    # vit_tiny_patch4_28: patch 16*64+64 = 1088, [CLS] 64, positions 50*64 = 3200,
    # 6 blocks of 33,472 (LN 128, qkv 12,480, out 4,160, LN 128, fc1 8,320, fc2 8,256), LN 128, head 650.
    assert sum(p.numel() for p in build_model("vit_tiny_patch4_28").parameters()) == 205_962
    assert _vit_params(64, 6, 128, 1, 4, 49) == 205_962
    assert sum(p.numel() for p in build_model("vit_mini_patch4_32").parameters()) == 546_186
    assert sum(p.numel() for p in build_model("vit_mini_convstem_32").parameters()) == 546_186 - 6_272 + 27_808
    for name in MODELS.names("vit_*"):
        c = MODELS.build(name).config
        expected = _vit_params(c.dim, c.depth, c.mlp_dim, c.in_chans, c.patch_size, c.num_patches)
        if c.stem == "conv":  # patchify conv (P*P*C*D + D) -> 3x3 convs without bias + BN (2 per channel) + 1x1 conv
            stem = 9 * (c.in_chans * 32 + 32 * 64) + 2 * (32 + 64) + 64 * c.dim + c.dim
            expected += stem - (c.patch_size ** 2 * c.in_chans * c.dim + c.dim)
        assert sum(p.numel() for p in MODELS.build(name).parameters()) == expected, name
    # cnn_vgg_28: 3x3 convs 1-27, 27-54, 54-54, 54-108, 108-108 without bias, BN 2 per channel, head 108*10+10.
    convs = 9 * (1 * 27 + 27 * 54 + 54 * 54 + 54 * 108 + 108 * 108)
    assert sum(p.numel() for p in build_model("cnn_vgg_28").parameters()) == convs + 2 * 351 + 1090 == 198_865
    # cnn_vgg_28_wide: the same at twice the widths (54, 108, 216).
    convs = 9 * (1 * 54 + 54 * 108 + 108 * 108 + 108 * 216 + 216 * 216)
    assert sum(p.numel() for p in build_model("cnn_vgg_28_wide").parameters()) == convs + 2 * 702 + 2170 == 791_380
    # The comparison pairs have about the same size.
    for vit, cnn in (("vit_tiny_patch4_28", "cnn_vgg_28"), ("vit_small_patch7_28", "cnn_vgg_28_wide"),
                     ("vit_mini_patch4_32", "cnn_vgg_32")):
        nv, nc = (sum(p.numel() for p in build_model(n).parameters()) for n in (vit, cnn))
        assert abs(nv - nc) / nv < 0.05, (vit, nv, cnn, nc)


def test_cnn_baseline_shapes():
    assert build_model("cnn_vgg_28")(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert build_model("cnn_vgg_32", num_classes=4)(torch.rand(2, 3, 32, 32)).shape == (2, 4)
    with pytest.raises(ValueError, match="equal length"):
        build_model("cnn_vgg_32", depths=(1, 2))


TINY_VIT = {"image_size": 8, "patch_size": 4, "in_chans": 1, "num_classes": 4, "dim": 16, "depth": 1,
            "num_heads": 2, "mlp_dim": 32}


def _run(tmp_path, steps: int, **extra):
    task = {"name": "image_classifier", "dataset": "synthetic_textures", "model": "vit_tiny_patch4_28",
            "model_args": TINY_VIT, "holdout": 16, "crop_padding": 0, "flip": True, "label_smoothing": 0.1,
            "lr": 1e-2, "warmup_steps": 5, "total_steps": 60, "synthetic_size": 96}
    trainer = {"max_steps": steps, "batch_size": 16, "eval_every": 0, "log_every": 1, "checkpoint_every": steps,
               "progress": False, "tensorboard": False, "plots": False, "threads": 1}
    return train({"task": task, "trainer": trainer, "seed": 0, "out_dir": str(tmp_path)}, **extra)


def _losses(path) -> dict[int, float]:
    with open(path) as fh:
        return {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(fh) if r.get("train/loss")}


def test_learns_synthetic_textures_through_engine_and_evaluates(tmp_path):
    result = _run(tmp_path / "run", 60)
    losses = _losses(result.metrics_csv)
    assert losses[1] > 1.2  # ~ln 4 at the start
    assert result.metrics["val/acc"] >= 0.9, result.metrics  # textures survive flips
    test = evaluate(None, result.last_checkpoint, split="test")
    assert test["test/acc"] >= 0.8, test


def test_resume_gives_identical_losses(tmp_path):
    full = _run(tmp_path / "full", 8)
    _run(tmp_path / "half", 4)
    resumed = _run(tmp_path / "half", 8, resume=tmp_path / "half" / "checkpoints" / "last.ckpt")
    a, b = _losses(full.metrics_csv), _losses(resumed.metrics_csv)
    assert [a[s] for s in range(5, 9)] == [b[s] for s in range(5, 9)]

"""The ``image_classifier`` task: crop/flip augmentation, warm-up + cosine, optimiser groups, engine training/resume."""

from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F

import torchworks.transformer.vit  # noqa: F401  (registers ViT variants, the CNN baseline and image_classifier)
from torchworks.core.checkpoint import build_model
from torchworks.core.registry import MODELS
from torchworks.engine.run import evaluate, train
from torchworks.transformer.vit.task import (
    ImageClassifier,
    ImageClassifierConfig,
    crop_flip,
    random_crop_flip,
)

IMG = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # (1, 1, 2, 2)


def _one(v: int) -> torch.Tensor:
    return torch.tensor([v])


@pytest.mark.parametrize("dy,dx,flip,expected", [
    (0, 0, False, [[0, 0], [0, 1]]),   # top-left window of the zero-padded image
    (2, 2, False, [[4, 0], [0, 0]]),   # bottom-right window
    (1, 1, False, [[1, 2], [3, 4]]),   # centred window = the image
    (1, 1, True, [[2, 1], [4, 3]]),    # mirrored
    (0, 1, True, [[0, 0], [2, 1]]),    # shifted down one row, then mirrored
    (1, 2, True, [[0, 2], [0, 4]]),    # window shifted right (column 0 of it is the image's column 1), mirrored
])
def test_crop_flip_against_hand_computed(dy, dx, flip, expected):
    out = crop_flip(IMG, 1, _one(dy), _one(dx), torch.tensor([flip]))
    assert torch.equal(out, torch.tensor([[expected]], dtype=torch.float32))


def test_crop_flip_matches_a_per_image_slicing_loop():
    x = torch.rand(6, 3, 5, 7)
    g = torch.Generator().manual_seed(3)
    dy, dx = torch.randint(0, 5, (6,), generator=g), torch.randint(0, 5, (6,), generator=g)
    flip = torch.tensor([True, False, True, True, False, False])
    out = crop_flip(x, 2, dy, dx, flip)
    for b in range(6):
        ref = F.pad(x[b], (2, 2, 2, 2))[:, dy[b]:dy[b] + 5, dx[b]:dx[b] + 7]
        assert torch.equal(out[b], ref.flip(-1) if flip[b] else ref)
    with pytest.raises(ValueError, match="dx"):
        crop_flip(x, 2, dy, torch.full((6,), 5), flip)


def test_random_crop_flip_is_seeded_keeps_order_and_shapes():
    # Image b holds the value b + 1 everywhere: padding only adds zeros, so each output keeps its own value.
    x = torch.arange(1, 9, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 3, 6, 6).contiguous()
    a = random_crop_flip(x, 3, generator=torch.Generator().manual_seed(0))
    b = random_crop_flip(x, 3, generator=torch.Generator().manual_seed(0))
    c = random_crop_flip(x, 3, generator=torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a.amax(dim=(1, 2, 3)), torch.arange(1, 9, dtype=torch.float32))  # order (= labels) kept
    assert (a == 0).any()  # some crops reach into the padding
    assert torch.equal(random_crop_flip(x, 0, flip=False), x)


def test_random_flip_only_mirrors_about_half():
    x = torch.rand(400, 1, 2, 3)
    out = random_crop_flip(x, 0, generator=torch.Generator().manual_seed(0))
    same, mirrored = (out == x).flatten(1).all(1), (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 150 < int(mirrored.sum()) < 250


def _multipliers(steps, **cfg):
    task = ImageClassifier(ImageClassifierConfig(dataset="synthetic", model="vit_tiny_patch4_28",
                                                 model_args=TINY_VIT, **cfg))
    (sched,) = task.configure_schedulers([task.configure_optimizers()])
    return [sched.lr_lambdas[0](s) for s in steps]


def test_schedule_is_nanogpt_warmup_then_cosine():
    """Hand values: W = 10 warm-up steps give (k + 1) / 11; the cosine runs from step 10 to 110."""
    got = _multipliers([0, 9, 10, 60, 110, 500], warmup_steps=10, total_steps=110, min_lr_ratio=0.2)
    assert got == pytest.approx([1 / 11, 10 / 11, 1.0, 0.6, 0.2, 0.2])  # 0.6: half-way down from 1 to 0.2
    assert _multipliers([0, 10, 500], warmup_steps=10) == pytest.approx([1 / 11, 1.0, 1.0])  # no total_steps
    assert _multipliers([0, 500]) == [1.0, 1.0]


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


def test_optimizer_decays_only_weight_matrices():
    task = ImageClassifier(ImageClassifierConfig(dataset="synthetic", model="vit_tiny_patch4_28",
                                                 model_args=TINY_VIT, weight_decay=0.1))
    decay, no_decay = task.configure_optimizers().param_groups
    named = {id(p): n for n, p in task.model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    decayed = sorted(named[id(p)] for p in decay["params"])
    assert "patch_embed.weight" in decayed and "head.weight" in decayed and "blocks.0.ff.fc1.weight" in decayed
    assert not any(k in n for n in decayed for k in ("bias", "norm", "pos_embed", "cls_token"))
    assert len(decay["params"]) + len(no_decay["params"]) == len(named)


def test_config_errors():
    with pytest.raises(ValueError, match="dataset"):
        ImageClassifierConfig(dataset="mnist")
    with pytest.raises(ValueError, match="label_smoothing"):
        ImageClassifierConfig(label_smoothing=1.0)
    with pytest.raises(ValueError, match="crop_padding"):
        ImageClassifierConfig(crop_padding=-1)


def _run(tmp_path, steps: int, **extra):
    task = {"name": "image_classifier", "dataset": "synthetic", "model": "vit_tiny_patch4_28", "model_args": TINY_VIT,
            "holdout": 16, "crop_padding": 0, "flip": True, "label_smoothing": 0.1, "lr": 1e-2, "warmup_steps": 5,
            "total_steps": 60, "synthetic_size": 96}
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

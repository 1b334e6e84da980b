"""Inpainting GAN tasks through the shared engine: overfitting, exact resume, Context Encoder, the data pipeline."""

from __future__ import annotations

import csv

import pytest
import torch

import torchworks.inpainting.nets  # noqa: F401  (registers the generators and discriminators)
import torchworks.inpainting.task  # noqa: F401  (registers inpaint_gan and context_encoder)
from torchworks.core.checkpoint import load_model
from torchworks.core.config import load_yaml
from torchworks.core.registry import MASKS
from torchworks.engine.run import train
from torchworks.inpainting.task import InpaintTaskConfig, PhotoCrops, list_photos, load_photo

TINY = "configs/tiny_inpaint.yaml"


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _series(path, key: str) -> dict[int, float]:
    return {int(r["step"]): float(r[key]) for r in _rows(path) if r.get(key)}


def test_tiny_config_overfits_the_hole_through_the_engine(tmp_path):
    result = train(TINY, out_dir=tmp_path)
    l1 = _series(result["metrics_csv"], "train/l1_hole")
    start, end = sum(l1[s] for s in (1, 2, 3)) / 3, sum(l1[s] for s in (28, 29, 30)) / 3
    assert end < 0.5 * start, (start, end)
    for key in ("train/adv_g", "train/fm", "train/d_loss", "train/r1"):
        assert all(torch.isfinite(torch.tensor(v)) for v in _series(result["metrics_csv"], key).values())
    assert {"val/l1_hole", "val/psnr_hole", "val/ssim"} <= set(result["metrics"])
    gen = load_model(result["last_checkpoint"], expect="lama_tiny")  # the checkpoint alone rebuilds the generator
    x = torch.rand(1, 4, 32, 32)
    torch.testing.assert_close(gen.eval()(x), result["task"].generator.eval()(x))


def test_resume_gives_the_same_next_losses(tmp_path):
    sets = ["trainer.max_steps=4", "trainer.checkpoint_every=2", "trainer.eval_every=0"]
    full = train(TINY, overrides=sets, out_dir=tmp_path / "full")
    part = train(TINY, overrides=[*sets, "trainer.max_steps=2"], out_dir=tmp_path / "part")
    resumed = train(TINY, overrides=sets, out_dir=tmp_path / "part", resume=part["last_checkpoint"])
    for key in ("train/loss", "train/d_loss"):
        a, b = _series(full["metrics_csv"], key), _series(resumed["metrics_csv"], key)
        assert a[3] == pytest.approx(b[3], rel=1e-5) and a[4] == pytest.approx(b[4], rel=1e-5)


@pytest.mark.parametrize("masks", ["center", "medium_256"])
def test_context_encoder_trains_on_centre_and_random_holes(tmp_path, masks):
    cfg = {"task": {"name": "context_encoder", "generator_args": {"nef": 8, "ngf": 8},
                    "discriminator_args": {"ndf": 8}, "data": "samples/photos", "holdout": 1,
                    "crop": 64, "load_size": 64, "repeat": 1, "train_masks": masks, "val_masks": masks},
           "trainer": {"max_steps": 3, "batch_size": 2, "eval_every": 0, "log_every": 1, "threads": 1,
                       "progress": False, "tensorboard": False, "plots": False}, "seed": 0}
    result = train(cfg, out_dir=tmp_path)
    rec = _series(result["metrics_csv"], "train/rec")
    assert len(rec) == 3 and all(0 < v < 1 for v in rec.values())
    assert "train/fm" not in _rows(result["metrics_csv"])[0]  # Context Encoder: L2 + adversarial only
    assert result["task"].cfg.rec == pytest.approx(0.999)


def test_photo_crops_are_seeded_per_sample():
    photos = [load_photo(p, 48) for p in list_photos("samples/photos")[:2]]
    ds = PhotoCrops(photos, 32, MASKS.build("lama_train_large"), 256, seed=7, train=True, repeat=3)
    assert len(ds) == 6
    (a, ma), (b, mb), (_, mc) = ds[4], ds[4], ds[1]
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ma, mb)
    assert not torch.equal(ma, mc)
    assert a.shape == (3, 32, 32) and a.dtype == torch.float32 and 0 <= a.min() and a.max() <= 1
    assert ma.shape == (1, 32, 32) and set(ma.unique().tolist()) <= {0.0, 1.0} and ma.sum() > 0
    val = PhotoCrops(photos, 32, MASKS.build("center"), 256, seed=1, train=False)
    assert len(val) == 2 and val[0][1][0, 16, 16] == 1 and val[0][1][0, 0, 0] == 0


def test_config_errors_name_the_value(tmp_path):
    with pytest.raises(ValueError, match="crop=64, load_size=32"):
        InpaintTaskConfig(crop=64, load_size=32)
    with pytest.raises(FileNotFoundError):
        list_photos(tmp_path)
    raw = load_yaml(TINY)
    raw["task"]["holdout"] = 5
    with pytest.raises(ValueError, match="holdout=5"):
        train(raw, out_dir=tmp_path / "x")

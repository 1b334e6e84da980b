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


def _tiny_task(**kw):
    from torchworks.inpainting.task import InpaintGANTask

    torch.manual_seed(0)
    return InpaintGANTask(InpaintTaskConfig(generator="lama_tiny", discriminator="lama_discriminator_tiny",
                                            discriminator_args={"n_layers": 2}, perceptual=0.0,
                                            data="samples/photos", holdout=1, crop=32, load_size=32, repeat=4,
                                            train_masks="medium_256", lr_g=0.01, **kw))


class _Stepper:
    def __init__(self, opts):
        self.opts = opts

    def step(self, i, loss):
        self.opts[i].zero_grad(set_to_none=True)
        loss.backward()
        self.opts[i].step()


def _batch(task, n=2):
    data = task.train_dataset()
    return torch.stack([data[i][0] for i in range(n)]), torch.stack([data[i][1] for i in range(n)])


def test_generator_weight_average_follows_the_warmed_up_decay():
    # ema = 0.9: after the first update the decay is min(0.9, 1 / 10) = 0.1, after the second min(0.9, 2 / 11).
    task = _tiny_task(ema=0.9)
    assert torch.equal(next(task.generator_ema.parameters()), next(task.generator.parameters()))
    assert not any(p.requires_grad for p in task.generator_ema.parameters())
    stepper, batch = _Stepper(task.configure_optimizers()), _batch(task)
    want = [p.detach().clone() for p in task.generator.parameters()]
    for decay in (0.1, 2 / 11):
        task.training_step(batch, stepper)
        want = [decay * w + (1 - decay) * p.detach() for w, p in zip(want, task.generator.parameters(), strict=True)]
    for w, a in zip(want, task.generator_ema.parameters(), strict=True):
        torch.testing.assert_close(a, w, rtol=1e-6, atol=1e-7)
    assert int(task.ema_updates) == 2
    moved = [not torch.equal(a, p) for a, p in zip(task.generator_ema.parameters(), task.generator.parameters(),
                                                    strict=True)]
    assert any(moved)  # the average lags behind the live weights
    for a, b in zip(task.generator_ema.buffers(), task.generator.buffers(), strict=True):
        assert torch.equal(a, b)  # batch-norm statistics are copied, not averaged
    # Export, validation and recalibration use the average; the live generator is left alone.
    assert task.export_model()[0] is task.generator_ema and task.inference_generator is task.generator_ema
    live = [b.clone() for b in task.generator.buffers()]
    task.recalibrate_generator(batches=1, batch_size=2)
    assert all(torch.equal(a, b) for a, b in zip(live, task.generator.buffers(), strict=True))
    ema_means = [b for n, b in task.generator_ema.named_buffers() if n.endswith("running_mean")]
    live_means = [b for n, b in task.generator.named_buffers() if n.endswith("running_mean")]
    assert ema_means and not all(torch.equal(a, b) for a, b in zip(ema_means, live_means, strict=True))


def test_weight_average_saved_resumed_and_started_from_an_older_checkpoint():
    task = _tiny_task(ema=0.99)
    stepper, batch = _Stepper(task.configure_optimizers()), _batch(task)
    for _ in range(3):
        task.training_step(batch, stepper)
    state = task.state_dict()
    assert "ema_updates" in state and any(k.startswith("generator_ema.") for k in state)
    again = _tiny_task(ema=0.99)
    again.load_state_dict(state)
    for a, b in zip(again.state_dict().values(), state.values(), strict=True):
        assert torch.equal(a, b)
    # A checkpoint written without the average (the run turned ema on when it resumed): it starts from the
    # checkpoint's generator, with its warm-up counter at zero.
    plain = _tiny_task()
    assert plain.generator_ema is None and plain.export_model()[0] is plain.generator
    old = {k: v for k, v in state.items() if not k.startswith("generator_ema.") and k != "ema_updates"}
    resumed = _tiny_task(ema=0.99)
    resumed.load_state_dict(old)
    for a, b in zip(resumed.generator_ema.state_dict().values(), resumed.generator.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    assert int(resumed.ema_updates) == 0
    with pytest.raises(ValueError, match=r"ema must be in \[0, 1\).*got 1.0"):
        InpaintTaskConfig(ema=1.0)


def test_a_run_resumed_with_ema_on_averages_from_there_and_exports_the_average(tmp_path):
    sets = ["trainer.checkpoint_every=2", "trainer.eval_every=0"]
    part = train(TINY, overrides=[*sets, "trainer.max_steps=2"], out_dir=tmp_path)
    resumed = train(TINY, overrides=[*sets, "trainer.max_steps=4", "task.ema=0.9"], out_dir=tmp_path,
                    resume=part["last_checkpoint"])
    task = resumed["task"]
    assert int(task.ema_updates) == 2  # steps 3 and 4
    gen = load_model(resumed["last_checkpoint"], expect="lama_tiny")  # the exported model is the average
    for a, b in zip(gen.state_dict().values(), task.generator_ema.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(gen.parameters(), task.generator.parameters(), strict=True))


def test_init_from_a_run_with_a_weight_average_takes_the_average(tmp_path):
    from torchworks.core.checkpoint import save_checkpoint
    from torchworks.inpainting.task import warm_start

    task = _tiny_task(ema=0.9)
    stepper, batch = _Stepper(task.configure_optimizers()), _batch(task)
    for _ in range(2):
        task.training_step(batch, stepper)
    save_checkpoint(tmp_path / "run.ckpt", {"task": task.state_dict()})
    fresh = _tiny_task()
    warm_start(fresh.generator, fresh.discriminator, tmp_path / "run.ckpt")
    for a, b in zip(fresh.generator.state_dict().values(), task.generator_ema.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(fresh.discriminator.state_dict().values(), task.discriminator.state_dict().values(), strict=True):
        assert torch.equal(a, b)

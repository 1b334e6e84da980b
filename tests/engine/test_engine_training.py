"""Training through the engine: learning, logs and curves, early stopping, clipping, bf16, manual optimisation,
frozen modules, exported models and evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from torchworks.core.checkpoint import load_checkpoint, load_model
from torchworks.engine.config import TrainerConfig
from torchworks.engine.logging import read_csv
from torchworks.engine.plots import metric_families
from torchworks.engine.run import evaluate, train
from torchworks.engine.trainer import Trainer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _column(csv_path, name):
    rows, _ = read_csv(csv_path)
    return [(r["step"], r[name]) for r in rows if name in r]


def test_overfits_a_tiny_batch(make_config):
    # 8 points, one full batch, a 64-unit MLP: it can interpolate, so the training MSE must collapse. A constant
    # predictor stays near the first loss (the target variance), a broken loop (no step, wrong grads) too;
    # 1% of the first loss after 100 steps leaves a wide margin (it reaches ~1e-3 after 50 steps).
    res = train(make_config(task={"n_train": 8, "n_val": 0, "hidden": 64}, max_steps=100, batch_size=8,
                            eval_every=0))
    losses = [v for _, v in _column(res.metrics_csv, "train/loss")]
    assert len(losses) == 100
    assert losses[-1] < 0.01 * losses[0]
    assert res.metrics["train/loss"] == losses[-1]
    assert res.best_checkpoint is None  # no validation set: nothing to rank checkpoints by


def test_csv_columns_steps_and_curves_png(make_config):
    res = train(make_config(max_steps=6, log_every=2, eval_every=3, plots=True))
    rows, columns = read_csv(res.metrics_csv)
    assert columns[:2] == ["step", "epoch"]
    assert {"train/loss", "train/mae", "val/loss", "val/mae"} <= set(columns)
    assert [r["step"] for r in rows] == [2, 3, 4, 6]  # train every 2, val every 3, one row per step
    assert [r["step"] for r in rows if "val/loss" in r] == [3, 6]
    assert [r["epoch"] for r in rows] == [0, 0, 0, 1]  # 64 samples / 16 = 4 batches per epoch
    data = res.curves_png.read_bytes()
    assert res.curves_png == res.out_dir / "curves.png" and data[:8] == PNG_MAGIC and len(data) > 1000
    assert metric_families(columns) == {"loss": ["train/loss", "val/loss"], "mae": ["train/mae", "val/mae"]}


def test_tensorboard_events_are_written(make_config):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    res = train(make_config(max_steps=4, eval_every=2, tensorboard=True))
    events = list((res.out_dir / "tb").glob("events.out.tfevents.*"))
    assert res.tensorboard_dir == res.out_dir / "tb" and len(events) == 1 and events[0].stat().st_size > 0
    acc = EventAccumulator(str(res.tensorboard_dir))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [e.step for e in acc.Scalars("val/loss")] == [2, 4]


def test_early_stopping_stops_when_the_metric_stalls(make_config):
    # The validation loss is constant: the first evaluation sets the best, the next two do not improve, and
    # patience 2 stops the run at the third evaluation (step 6) instead of step 40.
    res = train(make_config(task={"constant_val": True}, max_steps=40, eval_every=2, early_stopping_patience=2))
    assert res.stopped_early and res.step == 6
    state = load_checkpoint(res.last_checkpoint)
    assert state["step"] == 6 and state["early_stopping"]["wait"] == 2
    assert load_checkpoint(res.best_checkpoint)["step"] == 2  # the first (and only) best


def test_early_stopping_does_not_stop_while_improving(make_config):
    # Same patience, but a learnable validation metric that keeps falling over these 16 steps.
    res = train(make_config(max_steps=16, eval_every=2, early_stopping_patience=2))
    vals = [v for _, v in _column(res.metrics_csv, "val/loss")]
    assert not res.stopped_early and res.step == 16 and len(vals) == 8
    assert vals[-1] < vals[0]
    assert load_checkpoint(res.best_checkpoint)["step"] == 16


def test_grad_clipping_bounds_the_norm_seen_by_the_optimizer(make_config):
    limit = 0.05
    res = train(make_config(task={"track_grad_norm": True, "optimizer": "sgd", "lr": 1e-3}, max_steps=10,
                            grad_clip=limit, eval_every=0))
    seen = res.task.clipped_norms  # recomputed from .grad in an optimizer step pre-hook, i.e. after clipping
    before = [v for _, v in _column(res.metrics_csv, "train/grad_norm")]  # logged norm before clipping
    assert len(seen) == len(before) == 10
    assert max(seen) <= limit * (1 + 1e-5)
    assert min(before) > limit  # clipping was active at every step, so the bound above is not vacuous


def test_bf16_mixed_runs_under_autocast_with_finite_loss(make_config):
    res = train(make_config(max_steps=5, eval_every=5, precision="bf16-mixed"))
    assert res.task.autocast_seen == {True}
    assert math.isfinite(res.metrics["train/loss"]) and math.isfinite(res.metrics["val/loss"])
    assert all(p.dtype == torch.float32 for p in res.task.parameters())  # mixed: weights stay float32


def test_manual_optimization_steps_each_set_only_from_its_own_loss(tmp_path):
    import engine_toys

    cfg = TrainerConfig(max_steps=1, batch_size=8, eval_every=0, threads=1, progress=False, tensorboard=False,
                        plots=False)
    trainer = Trainer(cfg, seed=0)
    task = engine_toys.TwoOptTask(engine_toys.TwoOptConfig(lr_a=0.1, lr_b=0.05))
    a0, b0 = task.a.weight.detach().clone(), task.b.weight.detach().clone()
    res = trainer.fit(task, tmp_path / "run")

    x = task.train_dataset().x  # one batch holds all 8 samples
    a, b = torch.nn.Linear(4, 1, bias=False), torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        a.weight.copy_(a0), b.weight.copy_(b0)
    loss_a, loss_b = engine_toys.TwoOptTask.losses(a, b, x)
    ga, gb_leak = torch.autograd.grad(loss_a(), [a.weight, b.weight])
    with torch.no_grad():
        a.weight -= 0.1 * ga
    (gb,) = torch.autograd.grad(loss_b(), [b.weight])
    expected_b = b0 - 0.05 * gb
    torch.testing.assert_close(task.a.weight.detach(), a.weight.detach())
    torch.testing.assert_close(task.b.weight.detach(), expected_b)
    # A b-step polluted by loss_a's gradient would land elsewhere: the check above can tell the difference.
    assert not torch.allclose(expected_b, b0 - 0.05 * (gb + gb_leak), atol=1e-5)
    assert {"train/loss_a", "train/loss_b"} <= set(res.metrics)
    assert len(load_checkpoint(res.last_checkpoint)["optimizers"]) == 2


def test_frozen_part_is_not_wrapped_and_does_not_change(make_config):
    res = train(make_config(task={"frozen_input": True}, max_steps=4, eval_every=0))
    task = res.task
    # During steps the trainable net is its Fabric wrapper; the frozen projection stays a plain module.
    assert task.module_types == {("net", "_FabricModule", "Sequential"), ("frozen", "Linear", "Linear")}
    assert type(task.net).__name__ == "Sequential"  # ...and put back afterwards
    before = load_checkpoint(res.last_checkpoint)["task"]
    first = train(make_config(sub="again", task={"frozen_input": True}, max_steps=1, eval_every=0)).task
    torch.testing.assert_close(first.frozen.weight, task.frozen.weight, rtol=0, atol=0)
    assert not torch.equal(first.net[0].weight, task.net[0].weight)
    assert torch.equal(before["frozen.weight"], task.frozen.weight)


def test_checkpoint_rebuilds_the_exported_model_and_evaluates(make_config):
    res = train(make_config(max_steps=8, eval_every=4))
    state = load_checkpoint(res.last_checkpoint)
    for key in ("task", "optimizers", "schedulers", "step", "epoch", "batch_in_epoch", "rng", "early_stopping",
                "config", "model_spec", "model"):
        assert key in state
    assert state["config"]["task"]["name"] == "_test_regression" and state["config"]["trainer"]["max_steps"] == 8
    model = load_model(res.last_checkpoint, expect="_test_mlp")
    for name, value in model.state_dict().items():
        assert torch.equal(value, res.task.net.state_dict()[name])
    metrics = evaluate(None, res.last_checkpoint)  # the config stored in the checkpoint is enough
    assert metrics == pytest.approx({k: v for k, v in res.metrics.items() if k.startswith("val/")}, rel=1e-12)


def test_max_epochs_ends_the_run_first(make_config):
    res = train(make_config(max_steps=100, max_epochs=2, eval_every=0))  # 4 batches per epoch
    assert res.step == 8 and res.epoch == 2


def test_validation_is_a_sample_weighted_mean_with_optional_limit(make_config):
    import torch.nn.functional as F

    # 33 validation samples in batches of 16, 16, 1: a plain mean of batch means would weigh the last sample 16x.
    res = train(make_config(task={"n_val": 33}, max_steps=3, eval_every=0, val_batch_size=16))
    data = res.task.val_dataset()
    with torch.no_grad():
        pred = res.task.net.eval()(data.x)
    assert res.metrics["val/loss"] == pytest.approx(F.mse_loss(pred, data.y).item(), rel=1e-5)
    limited = evaluate(None, res.last_checkpoint, limit_val_batches=1)
    assert limited["val/loss"] == pytest.approx(F.mse_loss(pred[:16], data.y[:16]).item(), rel=1e-5)


def test_unavailable_accelerator_is_a_config_error(make_config):
    from torchworks.core.errors import ConfigError

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="accelerator='gpu'"):
        train(make_config(), accelerator="gpu")

"""Exact resume, and the errors a bad resume or a reused run directory raises."""

from __future__ import annotations

import shutil

import pytest
import torch

from torchworks.core.checkpoint import load_checkpoint, save_checkpoint, save_model
from torchworks.core.errors import CheckpointError, ConfigError
from torchworks.core.seeding import rng_state, seed_everything
from torchworks.engine.logging import read_csv
from torchworks.engine.run import train

K, S = 5, 11  # stop after step 5 (mid-epoch: 40 samples / 16 = 3 batches per epoch), run to 11


def _config(make_config, sub, max_steps):
    # Dropout and shuffled data: the RNG stream and the sampler position must both be restored. Evaluations
    # at 5, 10 and the end happen in both runs, so early-stopping state can be compared too.
    return make_config(sub=sub, task={"n_train": 40, "dropout": 0.3, "scheduler": True}, max_steps=max_steps,
                       eval_every=5, early_stopping_patience=50)


def _losses(csv_path):
    rows, _ = read_csv(csv_path)
    return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


def _assert_same_tree(a, b, path=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_same_tree(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_tree(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


@pytest.fixture
def full_and_resumed(make_config, tmp_path):
    """(uninterrupted run to S, a copy of the step-K checkpoint, the run resumed from it in its own directory)"""
    full = train(_config(make_config, "full", S))
    part = train(_config(make_config, "part", K))
    at_k = tmp_path / "step-k.ckpt"
    shutil.copyfile(part.last_checkpoint, at_k)  # the resumed run below moves last.ckpt on to step S
    assert part.step == K and load_checkpoint(at_k)["batch_in_epoch"] == 2
    resumed = train(_config(make_config, "part", S), resume=part.last_checkpoint)
    return full, at_k, resumed


def test_resume_is_bit_identical(full_and_resumed):
    full, _, resumed = full_and_resumed
    ref, got = _losses(full.metrics_csv), _losses(resumed.metrics_csv)
    assert got[K + 1] == ref[K + 1]  # bit-identical, not approximately equal
    assert got == ref and sorted(got) == list(range(1, S + 1))  # the CSV continued: every step exactly once
    for name, value in full.task.state_dict().items():
        assert torch.equal(resumed.task.state_dict()[name], value), name
    a, b = load_checkpoint(full.last_checkpoint), load_checkpoint(resumed.last_checkpoint)
    for key in ("optimizers", "schedulers", "early_stopping", "best", "rng", "step", "epoch", "batch_in_epoch"):
        _assert_same_tree(a[key], b[key], key)
    assert a["schedulers"][0]["last_epoch"] == S and a["optimizers"][0]["state"][0]["step"] == S


@pytest.mark.parametrize("tamper", ["rng", "position"])
def test_resume_depends_on_rng_and_sampler_position(make_config, full_and_resumed, tmp_path, tamper):
    # Controls: the step-K checkpoint with another RNG state, or with the epoch position reset, gives another
    # step K+1 loss; so the equality above rests on restoring both, not on dropout or data order not mattering.
    full, at_k, _ = full_and_resumed
    state = load_checkpoint(at_k)
    if tamper == "rng":
        seed_everything(123)
        state["rng"] = [rng_state()]
    else:
        state["batch_in_epoch"] = 0
    tampered = save_checkpoint(tmp_path / "tampered.ckpt", state)
    other = train(_config(make_config, "other", K + 1), resume=tampered)
    assert _losses(other.metrics_csv)[K + 1] != _losses(full.metrics_csv)[K + 1]


def test_corrupt_checkpoint_raises_checkpoint_error(make_config, tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00\x01 not a checkpoint" * 10)
    with pytest.raises(CheckpointError):
        train(make_config(), resume=garbage)
    good = train(make_config(sub="good", max_steps=2, eval_every=0)).last_checkpoint
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated|corrupt"):
        train(make_config(sub="t"), resume=truncated)
    flipped = bytearray(good.read_bytes())
    flipped[-5] ^= 0xFF
    (tmp_path / "flipped.ckpt").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="checksum"):
        train(make_config(sub="f"), resume=tmp_path / "flipped.ckpt")


def test_checkpoint_of_another_shape_or_kind_is_refused(make_config, tmp_path):
    good = train(make_config(sub="good", max_steps=2, eval_every=0)).last_checkpoint
    with pytest.raises(CheckpointError, match="does not fit"):
        train(make_config(sub="wide", task={"hidden": 48}), resume=good)
    bare = save_model(tmp_path / "bare.ckpt", torch.nn.Linear(2, 2), spec={"name": "_test_mlp"})
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        train(make_config(sub="bare"), resume=bare)


def test_fresh_run_refuses_a_directory_with_checkpoints(make_config):
    first = train(make_config(max_steps=2, eval_every=0))
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        train(make_config(max_steps=2, eval_every=0))
    second = train(make_config(max_steps=3, eval_every=0), overwrite=True)
    assert second.last_checkpoint == first.last_checkpoint and load_checkpoint(second.last_checkpoint)["step"] == 3
    assert sorted(_losses(second.metrics_csv)) == [1, 2, 3]  # the old log was replaced, not appended to


def test_periodic_checkpoints_are_pruned(make_config):
    res = train(make_config(max_steps=10, eval_every=0, checkpoint_every=2, keep_checkpoints=2))
    names = sorted(p.name for p in (res.out_dir / "checkpoints").glob("step-*.ckpt"))
    assert names == ["step-0000008.ckpt", "step-0000010.ckpt"]
    assert load_checkpoint(res.last_checkpoint)["step"] == 10


def test_training_time_is_carried_across_a_resume(make_config, tmp_path):
    """The checkpoint records the CPU and wall time spent in fit(); a resumed run adds its own to it."""
    part = train(_config(make_config, "t", K))
    saved = load_checkpoint(part.last_checkpoint)["timing"]
    assert saved["cpu_seconds"] > 0 and saved["wall_seconds"] > 0 and saved["from_step"] == 0
    assert (part.cpu_seconds, part.wall_seconds) >= (saved["cpu_seconds"], saved["wall_seconds"])
    state = load_checkpoint(part.last_checkpoint)
    state["timing"] = {"cpu_seconds": 1000.0, "wall_seconds": 2000.0, "from_step": 0}  # earlier processes ran long
    save_checkpoint(tmp_path / "long.ckpt", state)
    resumed = train(_config(make_config, "t", S), resume=tmp_path / "long.ckpt")
    assert 1000.0 < resumed.cpu_seconds < 1000.0 + 120 and 2000.0 < resumed.wall_seconds < 2000.0 + 120
    final = load_checkpoint(resumed.last_checkpoint)["timing"]
    assert final["cpu_seconds"] > 1000.0 and final["wall_seconds"] > 2000.0 and final["from_step"] == 0
    state.pop("timing")  # a checkpoint from before timing was recorded: counts from the resume, and says so
    save_checkpoint(tmp_path / "old.ckpt", state)
    old = train(_config(make_config, "t2", S), resume=tmp_path / "old.ckpt")
    assert old.cpu_seconds < 120 and load_checkpoint(old.last_checkpoint)["timing"]["from_step"] == K

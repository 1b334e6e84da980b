"""Shipped models: present, small, loadable offline, and as good as their model cards say."""

from __future__ import annotations

import pytest

from torchworks.sequence import pretrained


@pytest.mark.parametrize("name", list(pretrained.SHIPPED))
def test_shipped_files_exist_and_are_small(name):
    if name not in pretrained.available():
        pytest.skip(f"{name} not built (python -m torchworks.sequence.pretrained {name})")
    for ext in ("safetensors", "yaml", "md"):
        f = pretrained.HERE / f"{name}.{ext}"
        assert f.is_file() and f.stat().st_size < 1_000_000
    model = pretrained.load(name)
    assert not model.training and sum(p.numel() for p in model.parameters()) > 0


def test_shipped_counter_still_counts(tmp_path):
    if "counter_lstm" not in pretrained.available():
        pytest.skip("counter_lstm not built")
    from torchworks.sequence.experiments import run_experiment

    res = run_experiment("counter", out_dir=tmp_path, pretrained=True)
    assert res.solved and res.extra["|r| with the count"] > 0.9
    assert (tmp_path / "cell_states.png").is_file()


def test_unknown_name_is_a_checkpoint_error():
    from torchworks.core.errors import CheckpointError

    with pytest.raises(CheckpointError, match="no shipped sequence model"):
        pretrained.path_of("nope")

"""Memory experiments: the generators' exact data, and each recipe solved by the LSTM on a reduced budget."""

from __future__ import annotations

import pytest
import torch

from torchworks.sequence import memory_data as md
from torchworks.sequence.experiments import recipe_config, run_experiment, stateful_predictions
from torchworks.sequence.introspect import tracking_neuron


def test_counter_data_is_the_string_shifted_by_one():
    d = md.counter(4, torch.Generator().manual_seed(0), n_min=3, n_max=3)
    # a a a X b b b, padding none (T = 7); targets a a X b b b E, scored from X on
    assert d["x"].shape == (4, 7, 3)
    assert d["x"][0].argmax(-1).tolist() == [0, 0, 0, 1, 2, 2, 2]
    assert d["score"][0].tolist() == [False, False, False, True, True, True, True]
    assert d["y"][0][d["score"][0]].tolist() == [2, 2, 2, 3]  # b b b E
    assert md.count_signal(d["x"])[0].tolist() == [1, 2, 3, 3, 2, 1, 0]


def test_counter_pads_short_strings_with_zero_vectors():
    d = md.counter(64, torch.Generator().manual_seed(1), n_min=1, n_max=5)
    k = d["k"]
    real = d["x"].sum(-1) > 0
    assert torch.equal(real.sum(1), 2 * k + 1)
    assert torch.equal(d["score"].sum(1), k + 1)


def test_conflict_and_reverse_cumsum_targets():
    d = md.conflict(4, torch.Generator())
    assert d["x"][0].argmax(-1).tolist() == [3, 0, 1, 2] and d["y"][0].tolist() == [0, 1, 2, 3]
    assert d["x"][1].argmax(-1).tolist() == [4, 0, 1, 2] and d["y"][1].tolist() == [0, 1, 2, 4]
    c = md.cumsum(3, torch.Generator().manual_seed(0), length=8, reverse=True)
    v = c["x"][..., 0]
    expected = (v.flip(1).cumsum(1).flip(1) > 2.0).float()
    assert torch.equal(c["y"], expected)
    assert c["y"][:, -1].sum() == 0  # one value < 1 never exceeds 2


def test_ab_memory_answer_is_the_first_symbol():
    d = md.ab_memory(16, torch.Generator().manual_seed(0), lag=5)
    assert d["x"].shape == (16, 7, 4)
    assert torch.equal(d["x"][:, 0].argmax(-1), d["y"])
    assert (d["x"][:, 1:-1].argmax(-1) == 2).all() and (d["x"][:, -1].argmax(-1) == 3).all()


def test_tracking_neuron_finds_the_correlated_unit():
    gen = torch.Generator().manual_seed(0)
    signal = torch.randn(20, 10, generator=gen)
    states = torch.randn(20, 10, 4, generator=gen)
    states[..., 2] = -3 * signal + 0.01 * states[..., 2]
    neuron, r = tracking_neuron(states, signal)
    assert neuron == 2 and r[2] < -0.99 and r[[0, 1, 3]].abs().max() < 0.3


def test_recipe_configs_in_repo_match_the_python_recipes():
    from pathlib import Path

    from torchworks.core.config import load_yaml
    from torchworks.sequence.experiments import RECIPES

    root = Path(__file__).resolve().parents[2] / "configs"
    for name in RECIPES:
        assert load_yaml(root / f"seq_{name.replace('-', '_')}.yaml") == recipe_config(name), name


# Reduced budgets: (task overrides, steps, metric, minimum). Each trains in a few seconds on one core.
SMALL = {
    "counter": ({"params": {"n_min": 1, "n_max": 6}}, 300, "seq_acc", 0.95),
    "ab-memory": ({"params": {"lag": 20}}, 150, "seq_acc", 0.99),
    "echo": ({"params": {"length": 6, "index": 1}, "n_train": 1024}, 400, "seq_acc", 0.95),
    "many-to-one": ({"params": {"length": 6}, "tolerance": 0.1, "n_train": 1024}, 400, "seq_acc", 0.9),
    "many-to-many": ({}, 200, "acc", 0.95),
}


@pytest.mark.parametrize("name", list(SMALL))
def test_lstm_solves_the_experiment(name, tmp_path):
    overrides, steps, metric, low = SMALL[name]
    res = run_experiment(name, steps=steps, out_dir=tmp_path / name, **overrides)
    assert res.metrics[metric] >= low, res.lines()
    assert res.figure is None or res.figure.is_file()
    if name == "counter":
        assert res.extra["|r| with the count"] > 0.7, res.extra  # a neuron follows the count
        assert (tmp_path / name / "cell_states.png").is_file()
    if name == "ab-memory":
        assert res.extra["|r| with the first letter"] > 0.5, res.extra
        assert res.extra["letter read from that neuron alone at Y"] >= 0.99, res.extra


def test_conflict_lstm_solves_it_and_same_size_mlp_cannot(tmp_path):
    res = run_experiment("conflict", steps=150, out_dir=tmp_path)
    assert res.metrics["seq_acc"] == 1.0
    mlp = res.extra["MLP test"]
    # Seeing one value at a time, the MLP cannot tell the last step apart: at most 1 of the 2 sequences,
    # 7 of the 8 steps.
    assert mlp["seq_acc"] <= 0.5 and mlp["acc"] <= 0.875
    lstm_n, mlp_n = res.extra["LSTM params"], res.extra["MLP params"]
    assert abs(lstm_n - mlp_n) / lstm_n < 0.01, (lstm_n, mlp_n)
    assert res.extra["stateful one-step-at-a-time predictions equal"] is True
    assert (tmp_path / "conflict.png").is_file()


def test_bidirectional_solves_what_a_forward_lstm_cannot(tmp_path):
    res = run_experiment("bidirectional", steps=250, out_dir=tmp_path)
    assert res.metrics["acc"] >= 0.95, res.lines()
    forward = res.extra["forward-only LSTM test"]["acc"]
    assert forward < res.metrics["acc"] - 0.03, res.lines()  # the future matters


def test_stateful_step_by_step_matches_whole_sequence():
    from torchworks.sequence.memory_task import MemoryConfig, MemoryTask

    task = MemoryTask(MemoryConfig(experiment="conflict", hidden_size=6))
    x = task.make_split("test", n=4)["x"]
    with torch.no_grad():
        whole = task.model(x).argmax(-1)
    assert torch.equal(stateful_predictions(task, x), whole)

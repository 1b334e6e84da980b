"""The registered sequence models: layouts, memorylessness of the MLP, the forecaster's scaler and save/load."""

from __future__ import annotations

import torch

from torchworks.core.checkpoint import build_model, load_model, save_model
from torchworks.sequence.models import mlp_hidden_for_params


def test_lstm_layouts_and_shapes():
    x = torch.randn(3, 7, 4)
    assert build_model("seq_lstm", input_size=4, output_size=2)(x).shape == (3, 2)
    assert build_model("seq_lstm", input_size=4, output_size=2, many_to_many=True)(x).shape == (3, 7, 2)
    bi = build_model("seq_lstm", input_size=4, hidden_size=5, output_size=1, many_to_many=True, bidirectional=True)
    assert bi(x).shape == (3, 7, 1)
    assert bi.count_params() == 2 * 4 * (5 * (5 + 4) + 5) + (10 + 1)  # Keras' count per direction + Dense


def test_gate_bias_initialisation():
    net = build_model("seq_lstm", input_size=2, hidden_size=3, output_size=1, forget_bias=4.0, input_bias=-4.0)
    b = net.lstm.cells[0].bias
    assert b[:3].tolist() == [-4.0] * 3 and b[3:6].tolist() == [4.0] * 3 and b[6:].abs().sum() == 0


def test_step_mlp_has_no_memory():
    mlp = build_model("seq_mlp", input_size=5, output_size=5, hidden=[8])
    x = torch.randn(2, 4, 5)
    y = mlp(x)
    x2 = x.clone()
    x2[:, 0] += 1.0  # change the first step only
    y2 = mlp(x2)
    assert not torch.allclose(y[:, 0], y2[:, 0]) and torch.equal(y[:, 1:], y2[:, 1:])


def test_mlp_width_matches_a_parameter_budget():
    lstm = build_model("seq_lstm", input_size=5, hidden_size=20, output_size=5, many_to_many=True)
    h = mlp_hidden_for_params(lstm.count_params(), 5, 5)
    mlp = build_model("seq_mlp", input_size=5, output_size=5, hidden=[h])
    assert abs(mlp.count_params() - lstm.count_params()) <= 11  # one unit of width = F + 1 + O params


def test_forecaster_starts_at_persistence_and_predicts_raw_units():
    f = build_model("seq_forecaster", n_features=2, horizon=3, target_index=[0], hidden_size=4)
    f.set_scaler(torch.tensor([100.0, 0.0]), torch.tensor([10.0, 1.0]))
    window = torch.tensor([[100.0, 1.0], [110.0, 2.0], [125.0, 3.0]])  # (W, F) raw
    pred = f.predict(window)
    assert pred.shape == (3, 1)
    torch.testing.assert_close(pred, torch.full((3, 1), 125.0))  # zero-initialised correction = last value


def test_forecaster_save_load_gives_identical_predictions(tmp_path):
    f = build_model("seq_forecaster", n_features=1, horizon=2, hidden_size=6, delta=False)
    f.set_scaler(torch.tensor([5.0]), torch.tensor([2.0]))
    x = torch.randn(4, 9, 1) * 2 + 5
    before = f.predict(x)
    path = save_model(tmp_path / "f.safetensors", f)
    g = load_model(path, expect="seq_forecaster")
    assert torch.equal(g.predict(x), before)
    assert torch.equal(g.center, f.center) and torch.equal(g.scale, f.scale)

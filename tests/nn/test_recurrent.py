"""Recurrent layers: shapes for every flag, errors, stateful, masking, record, fused vs loop, gradcheck."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from torchworks.core.errors import ShapeError
from torchworks.nn.recurrent import (
    GRU,
    LSTM,
    Bidirectional,
    GRUCell,
    LSTMCell,
    TimeDistributed,
    padding_step_mask,
)
from torchworks.nn.recurrent_fused import FusedLSTMLayer

torch.set_num_threads(1)
B, T, F, U = 3, 7, 4, 5
LAYERS = {"lstm": LSTM, "gru": GRU}


@pytest.fixture
def x() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(B, T, F)


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("seq,state,layers", list(itertools.product([False, True], [False, True], [1, 2])))
def test_shapes_for_every_flag(kind, seq, state, layers, x):
    layer = LAYERS[kind](F, U, num_layers=layers, return_sequences=seq, return_state=state)
    out = layer(x)
    n_states = 2 if kind == "lstm" else 1
    y = out[0] if state else out
    assert y.shape == ((B, T, U) if seq else (B, U))
    if state:
        assert isinstance(out, tuple) and len(out) == 1 + n_states
        state_shape = (B, U) if layers == 1 else (layers, B, U)
        assert all(s.shape == state_shape for s in out[1:])
        top_h = out[1] if layers == 1 else out[1][-1]
        torch.testing.assert_close(y[:, -1] if seq else y, top_h)  # the last output is the top layer's h_T
    else:
        assert isinstance(out, torch.Tensor)


@pytest.mark.parametrize("merge,width", [("concat", 2 * U), ("sum", U), ("mul", U), ("ave", U), (None, U)])
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("state", [False, True])
def test_bidirectional_structures(merge, width, seq, state, x):
    bi = Bidirectional(LSTM(F, U, return_sequences=seq, return_state=state), merge_mode=merge)
    out = bi(x)
    shape = (B, T, width) if seq else (B, width)
    n_out = 2 if merge is None else 1
    outs = out if (merge is None or state) else (out,)
    assert len(outs) == n_out + (4 if state else 0)  # concat + return_state: five tensors, as Keras
    assert all(o.shape == shape for o in outs[:n_out])
    assert all(s.shape == (B, U) for s in outs[n_out:])
    assert bi.count_params() == 2 * bi.forward_layer.count_params()


def test_bidirectional_backward_half_reads_the_reversed_sequence(x):
    bi = Bidirectional(LSTM(F, U, return_sequences=True), merge_mode=None)
    fw, bw = bi(x)
    torch.testing.assert_close(fw, bi.forward_layer(x))
    twin = LSTM(F, U, return_sequences=True)
    twin.load_state_dict(bi.backward_layer.state_dict())
    torch.testing.assert_close(bw, twin(x.flip(1)).flip(1))  # step t of bw has seen x_T..x_t
    assert not torch.equal(bi.forward_layer.cells[0].weight_ih, bi.backward_layer.cells[0].weight_ih)


def test_count_params_keras_formula():
    assert LSTM(3, 5).count_params() == 4 * (5 * (5 + 3) + 5) == 180
    assert sum(p.numel() for p in nn.LSTM(3, 5).parameters()) == 180 + 4 * 5  # torch's second bias: 4U more
    stacked = LSTM(3, 8, return_sequences=True).count_params() + LSTM(8, 8).count_params() + 9  # + Dense(1)
    assert stacked == 937
    assert GRU(3, 5).count_params() == 3 * (5 * 8 + 2 * 5)
    assert GRU(3, 5, reset_after=False).count_params() == 3 * (5 * 8 + 5)
    assert TimeDistributed(nn.Linear(5, 2)).count_params() == 12


def test_keras_init_forget_bias_and_orthogonal():
    torch.manual_seed(1)
    cell = LSTM(F, 16, init="keras").cells[0]
    bias = cell.bias.detach().view(4, 16)
    assert torch.equal(bias[1], torch.ones(16)) and not bias[[0, 2, 3]].any()
    w = cell.weight_hh.detach()  # (4U, U): orthonormal columns, i.e. Keras' recurrent_kernel has orthonormal rows
    torch.testing.assert_close(w.t() @ w, torch.eye(16), atol=1e-5, rtol=0)
    limit = (6 / (F + 64)) ** 0.5
    assert cell.weight_ih.abs().max() <= limit
    torch_cell = LSTM(F, 16, init="torch").cells[0]
    assert torch_cell.bias.abs().max() <= 0.25 and torch_cell.bias.view(4, 16)[1].ne(1).all()
    with pytest.raises(ValueError, match="init must be one of"):
        LSTM(F, U, init="xavier")


@pytest.mark.parametrize("kind", LAYERS)
def test_wrong_rank_and_features_raise(kind, x):
    layer = LAYERS[kind](F, U)
    name = layer.__class__.__name__
    with pytest.raises(ShapeError, match=rf"{name} input must be 3-D \(batch, timesteps, features\), "
                                         r"got shape \(7, 4\)"):
        layer(x[0])
    with pytest.raises(ShapeError, match=r"expects 4 features per step .* got shape \(3, 7, 6\)"):
        layer(torch.randn(B, T, 6))
    with pytest.raises(ShapeError, match="initial state h must have shape"):
        layer(x, initial_state=[torch.zeros(B, U + 1)] * len(layer.state_names))
    with pytest.raises(ShapeError, match="step_mask must have shape"):
        layer(x, step_mask=torch.ones(B, T + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        layer(x, step_mask=torch.ones(B, T))
    assert issubclass(ShapeError, ValueError)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        LSTM(F, 0)
    with pytest.raises(ValueError, match="dropout"):
        LSTM(F, U, dropout=1.0)
    with pytest.raises(ValueError, match="merge_mode"):
        Bidirectional(LSTM(F, U), merge_mode="max")
    with pytest.raises(ShapeError, match="TimeDistributed input must be at least 3-D"):
        TimeDistributed(nn.Linear(F, 2))(torch.randn(B, F))


@pytest.mark.parametrize("kind", LAYERS)
def test_stateful_carries_state_and_reset_clears_it(kind, x):
    torch.manual_seed(0)
    layer = LAYERS[kind](F, U, stateful=True, return_sequences=True)
    plain = LAYERS[kind](F, U, return_sequences=True)
    plain.load_state_dict(layer.state_dict())
    first, second = layer(x[:, :3]), layer(x[:, 3:])
    torch.testing.assert_close(torch.cat([first, second], 1), plain(x))  # two calls = one long sequence
    assert not torch.allclose(layer(x[:, 3:]), second)  # the state moved on
    layer.reset_state()
    torch.testing.assert_close(layer(x[:, :3]), first)
    with pytest.raises(ShapeError, match="fixed batch size"):
        layer(x[:2])


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("layers", [1, 2])
def test_masking_padded_batch_equals_each_sequence_alone(kind, layers):
    torch.manual_seed(0)
    lengths = torch.tensor([7, 3, 5])
    x = torch.randn(B, T, F)
    x[torch.arange(T) >= lengths[:, None]] = 0.0  # right padding
    layer = LAYERS[kind](F, U, num_layers=layers, return_sequences=True, return_state=True)
    out, *states = layer(x, lengths=lengths)
    out2, *_ = layer(x, step_mask=padding_step_mask(x))
    torch.testing.assert_close(out, out2)
    for b, n in enumerate(lengths.tolist()):
        alone, *alone_states = layer(x[b:b + 1, :n])
        torch.testing.assert_close(out[b:b + 1, :n], alone, atol=1e-6, rtol=0)
        for s, a in zip(states, alone_states, strict=True):
            torch.testing.assert_close(s[..., b:b + 1, :], a, atol=1e-6, rtol=0)
        # Keras: a masked step repeats the last real output
        torch.testing.assert_close(out[b, n:], alone[0, -1].expand(T - n, U), atol=1e-6, rtol=0)


def test_leading_mask_outputs_zero_until_first_real_step(x):
    layer = LSTM(F, U, return_sequences=True)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[:, :2] = False
    h0 = torch.randn(B, U)
    out = layer(x, initial_state=[h0, torch.zeros(B, U)], step_mask=mask)
    assert not out[:, :2].any()
    torch.testing.assert_close(out[:, 2:], layer(x[:, 2:], initial_state=[h0, torch.zeros(B, U)]))


@pytest.mark.parametrize("layers,init_state", [(1, False), (2, True)])
def test_fused_path_equals_cell_loop_values_and_grads(layers, init_state, x):
    torch.manual_seed(0)
    layer = LSTM(F, U, num_layers=layers, return_sequences=True, return_state=True, init="torch")
    state = [torch.randn(layers, B, U).squeeze(0).requires_grad_() for _ in range(2)] if init_state else None
    results = []
    for fused in (True, False):
        layer.fused = fused
        layer.zero_grad()
        xi = x.clone().requires_grad_()
        out, h, c = layer(xi, initial_state=state)
        (out.pow(2).sum() + h.sum() + 2 * c.sum()).backward()
        results.append([out, h, c, xi.grad] + [p.grad.clone() for p in layer.parameters()])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, atol=2e-6, rtol=1e-5)


def test_gradcheck_lstm_cell_and_fused_recurrence_float64():
    torch.manual_seed(0)
    cell = LSTMCell(3, 2, init="torch").double()
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: cell(a[0], (a[1], a[2])), (x, h, c))
    seq = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)  # (T, B, F)
    weights = [torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in ((8, 3), (8,), (8, 2))]
    assert torch.autograd.gradcheck(FusedLSTMLayer.apply, (seq, *weights, h, c))
    gru = GRUCell(3, 2, init="torch").double()
    assert torch.autograd.gradcheck(gru, (x, h))


def test_record_returns_gates_and_cell_states(x):
    layer = LSTM(F, U, return_sequences=True, return_state=True)
    (out, h, c), rec = layer(x, record=True)
    assert set(rec) == {"i", "f", "g", "o", "h", "c"} and all(v.shape == (B, T, U) for v in rec.values())
    torch.testing.assert_close(rec["h"], out)
    torch.testing.assert_close(rec["c"][:, -1], c)
    torch.testing.assert_close(rec["h"], rec["o"] * torch.tanh(rec["c"]))  # h_t = o_t tanh(c_t)
    c_prev = torch.cat([torch.zeros(B, 1, U), rec["c"][:, :-1]], 1)
    torch.testing.assert_close(rec["c"], rec["f"] * c_prev + rec["i"] * rec["g"])
    assert 0 < rec["f"].min() and rec["f"].max() < 1 and rec["g"].abs().max() < 1
    torch.testing.assert_close(layer(x)[0], out)  # recording does not change the result
    _, rec2 = LSTM(F, U, num_layers=2, return_sequences=True)(x, record=True)
    assert rec2["c"].shape == (2, B, T, U)
    _, rec_bi = Bidirectional(GRU(F, U, return_sequences=True))(x, record=True)
    assert set(rec_bi["backward"]) == {"r", "z", "n", "h"}


def test_dropout_between_layers_only_in_training(x):
    layer = LSTM(F, U, num_layers=2, dropout=0.5, return_sequences=True)
    layer.eval()
    torch.testing.assert_close(layer(x), layer(x))
    layer.train()
    torch.manual_seed(0)
    a = layer(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, layer(x))


def test_time_distributed_applies_per_step(x):
    td = TimeDistributed(nn.Linear(F, 2))
    y = td(x)
    assert y.shape == (B, T, 2)
    torch.testing.assert_close(y[:, 3], td.module(x[:, 3]))
    conv = TimeDistributed(nn.Conv2d(1, 2, 3, padding=1))
    assert conv(torch.randn(B, T, 1, 5, 5)).shape == (B, T, 2, 5, 5)


def test_go_backwards_reverses_processing_and_output_order(x):
    layer = GRU(F, U, return_sequences=True, go_backwards=True)
    twin = GRU(F, U, return_sequences=True)
    twin.load_state_dict(layer.state_dict())
    torch.testing.assert_close(layer(x), twin(x.flip(1)))

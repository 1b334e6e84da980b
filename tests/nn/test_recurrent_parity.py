"""Parity of our recurrent layers with torch.nn (copied weights) and Keras 3 on the torch backend (both ways).

Tolerance: max abs difference <= 1e-6 in float32 on outputs and states (and LSTM gradients vs torch).
"""

from __future__ import annotations

import itertools
import os

import pytest
import torch
from torch import nn

from torchworks.nn.recurrent import (
    GRU,
    LSTM,
    Bidirectional,
    export_torch_rnn,
    keras_weights,
    load_keras_weights,
    load_torch_rnn,
)

torch.set_num_threads(1)
# Keras' own variable conversion trips NumPy 2's copy-keyword deprecation; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
B, T, F, U = 4, 9, 3, 6
TOL = 1e-6
FLAGS = list(itertools.product([False, True], [False, True]))  # (return_sequences, return_state)


def max_diff(a, b) -> float:
    return float((torch.as_tensor(a) - torch.as_tensor(b)).detach().abs().max())


def assert_all_close(ours, ref) -> None:
    ours = ours if isinstance(ours, tuple) else (ours,)
    ref = ref if isinstance(ref, (tuple, list)) else (ref,)
    assert len(ours) == len(ref)
    for o, r in zip(ours, ref, strict=True):
        r = torch.as_tensor(r)
        assert o.shape == r.shape
        assert max_diff(o, r) <= TOL


@pytest.fixture
def x() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(B, T, F)


# ---- torch.nn ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("fused", [True, False])
def test_torch_parity_unidirectional_with_initial_states(kind, layers, fused, x):
    torch.manual_seed(1)
    ref = getattr(nn, kind)(F, U, num_layers=layers, batch_first=True)
    ours = {"LSTM": LSTM, "GRU": GRU}[kind](F, U, num_layers=layers, return_sequences=True, return_state=True)
    load_torch_rnn(ours, ref)
    ours.fused = fused
    states = [torch.randn(layers, B, U, requires_grad=True) for _ in range(2 if kind == "LSTM" else 1)]
    xo, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref_out, ref_state = ref(xr, tuple(states) if kind == "LSTM" else states[0])
    ref_states = ref_state if kind == "LSTM" else (ref_state,)
    out, *final = ours(xo, initial_state=[s if layers > 1 else s[0] for s in states])
    assert_all_close((out, *final), (ref_out, *[s if layers > 1 else s[0] for s in ref_states]))
    # gradients flow identically (w.r.t. input, initial states, recurrent weights)
    grads_ours = torch.autograd.grad(out.pow(2).sum() + final[-1].sum(), [xo, ours.cells[-1].weight_hh, *states])
    grads_ref = torch.autograd.grad(ref_out.pow(2).sum() + ref_states[-1].sum(),
                                    [xr, getattr(ref, f"weight_hh_l{layers - 1}"), *states])
    for g, r in zip(grads_ours, grads_ref, strict=True):
        assert max_diff(g, r) <= 1e-5 * max(1.0, float(r.abs().max()))


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("layers", [1, 2])
def test_torch_parity_bidirectional(kind, layers, x):
    """torch's bidirectional stack = our Bidirectional(concat) layers stacked (layer k+1 reads both directions)."""
    torch.manual_seed(2)
    ref = getattr(nn, kind)(F, U, num_layers=layers, batch_first=True, bidirectional=True)
    cls = {"LSTM": LSTM, "GRU": GRU}[kind]
    stack, seq = [], x
    for k in range(layers):
        bi = Bidirectional(cls(F if k == 0 else 2 * U, U, return_sequences=True, return_state=True))
        single = getattr(nn, kind)(bi.forward_layer.input_size, U, batch_first=True, bidirectional=True)
        with torch.no_grad():  # pick layer k of the torch stack as a one-layer module
            for name, _ in single.named_parameters():
                getattr(single, name).copy_(getattr(ref, name.replace("_l0", f"_l{k}")))
        load_torch_rnn(bi.forward_layer, single)
        load_torch_rnn(bi.backward_layer, single, reverse=True)
        seq, *states = bi(seq)
        stack.append(states)
    ref_out, ref_state = ref(x)
    assert_all_close(seq, ref_out)
    # torch's h_n / c_n are (L*2, B, U): layer-major, forward then backward; ours: (h_fw, [c_fw,] h_bw, [c_bw])
    ref_states = ref_state if kind == "LSTM" else (ref_state,)
    n = len(ref_states)
    for j, s in enumerate(ref_states):
        assert_all_close((stack[-1][j], stack[-1][n + j]), (s[-2], s[-1]))


def test_export_to_torch_round_trip(x):
    ours = LSTM(F, U, num_layers=2, return_sequences=True)
    ref = export_torch_rnn(ours, nn.LSTM(F, U, num_layers=2, batch_first=True))
    assert_all_close(ours(x), ref(x)[0])
    back = load_torch_rnn(LSTM(F, U, num_layers=2, return_sequences=True), ref)
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), ours.state_dict().values(), strict=True))


# ---- Keras 3 (torch backend) ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keras():
    os.environ["KERAS_BACKEND"] = "torch"  # must precede the first keras import
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras already imported with backend {keras.backend.backend()}")
    return keras


def k2t(keras, y):
    if isinstance(y, (tuple, list)):
        return tuple(k2t(keras, v) for v in y)
    return torch.as_tensor(keras.ops.convert_to_numpy(y))


def to_numpy(ts):
    return [t.numpy() for t in ts]


@pytest.mark.parametrize("seq,state", FLAGS)
@pytest.mark.parametrize("direction", ["keras_to_ours", "ours_to_keras"])
def test_keras_lstm_parity_every_flag(keras, seq, state, direction, x):
    klayer = keras.layers.LSTM(U, return_sequences=seq, return_state=state)
    klayer.build((None, T, F))
    ours = LSTM(F, U, return_sequences=seq, return_state=state, init="torch")
    if direction == "keras_to_ours":
        load_keras_weights(ours, klayer.get_weights())
    else:
        klayer.set_weights(to_numpy(keras_weights(ours)))
    ref = k2t(keras, klayer(x.numpy()))
    assert isinstance(ours(x), tuple) == isinstance(ref, tuple) == state
    assert_all_close(ours(x), ref)
    assert ours.count_params() == klayer.count_params() == 4 * (U * (U + F) + U)


@pytest.mark.parametrize("merge", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("seq,state", [(True, True), (False, True), (True, False)])
def test_keras_bidirectional_parity_each_merge_mode(keras, merge, seq, state, x):
    kbi = keras.layers.Bidirectional(keras.layers.LSTM(U, return_sequences=seq, return_state=state),
                                     merge_mode=merge)
    kbi.build((None, T, F))
    ours = Bidirectional(LSTM(F, U, return_sequences=seq, return_state=state), merge_mode=merge)
    load_keras_weights(ours, kbi.get_weights())
    out = ours(x)
    assert_all_close(out, k2t(keras, kbi(x.numpy())))
    assert ours.count_params() == kbi.count_params()
    kbi.set_weights(to_numpy(keras_weights(ours)))  # and back: ours -> keras
    assert_all_close(out, k2t(keras, kbi(x.numpy())))


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("seq,state", FLAGS)
def test_keras_gru_parity(keras, reset_after, seq, state, x):
    klayer = keras.layers.GRU(U, return_sequences=seq, return_state=state, reset_after=reset_after)
    klayer.build((None, T, F))
    ours = GRU(F, U, return_sequences=seq, return_state=state, reset_after=reset_after, init="torch")
    klayer.set_weights(to_numpy(keras_weights(ours)))
    assert_all_close(ours(x), k2t(keras, klayer(x.numpy())))
    load_keras_weights(ours, klayer.get_weights())
    assert_all_close(ours(x), k2t(keras, klayer(x.numpy())))
    assert ours.count_params() == klayer.count_params()


def _padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(3)
    x = torch.randn(B, T, F)
    lengths = torch.tensor([9, 4, 6, 1])
    x[torch.arange(T) >= lengths[:, None]] = 0.0
    return x, lengths


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("seq,state", FLAGS)
def test_keras_masking_parity(keras, kind, seq, state):
    x, lengths = _padded_batch()
    klayer = getattr(keras.layers, kind)(U, return_sequences=seq, return_state=state)
    model = keras.Sequential([keras.Input((T, F)), keras.layers.Masking(0.0), klayer])
    ours = {"LSTM": LSTM, "GRU": GRU}[kind](F, U, return_sequences=seq, return_state=state)
    load_keras_weights(ours, klayer.get_weights())
    if not state:  # Sequential returns one tensor; Masking's mask reaches the layer
        assert_all_close(ours(x, lengths=lengths), k2t(keras, model(x.numpy())))
    mask = (torch.arange(T) < lengths[:, None]).numpy()
    assert_all_close(ours(x, lengths=lengths), k2t(keras, klayer(x.numpy(), mask=mask)))


@pytest.mark.parametrize("merge", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("seq", [True, False])
def test_keras_bidirectional_masking_parity(keras, merge, seq):
    x, lengths = _padded_batch()
    kbi = keras.layers.Bidirectional(keras.layers.LSTM(U, return_sequences=seq, return_state=True), merge_mode=merge)
    kbi.build((None, T, F))
    ours = Bidirectional(LSTM(F, U, return_sequences=seq, return_state=True), merge_mode=merge)
    load_keras_weights(ours, kbi.get_weights())
    mask = (torch.arange(T) < lengths[:, None]).numpy()
    assert_all_close(ours(x, lengths=lengths), k2t(keras, kbi(x.numpy(), mask=mask)))


def test_keras_stacked_and_go_backwards_and_initial_state(keras, x):
    k1, k2 = keras.layers.LSTM(U, return_sequences=True), keras.layers.LSTM(U, return_state=True, go_backwards=True)
    k1.build((None, T, F))
    k2.build((None, T, U))
    ours1 = load_keras_weights(LSTM(F, U, return_sequences=True), k1.get_weights())
    ours2 = load_keras_weights(LSTM(U, U, return_state=True, go_backwards=True), k2.get_weights())
    h0, c0 = torch.randn(B, U), torch.randn(B, U)
    ref = k2t(keras, k2(k1(x.numpy()), initial_state=[h0.numpy(), c0.numpy()]))
    assert_all_close(ours2(ours1(x), initial_state=[h0, c0]), ref)
    stacked = LSTM(F, U, num_layers=2)  # our num_layers=2 equals two Keras layers in sequence
    k3 = keras.layers.LSTM(U)
    k3.build((None, T, U))
    load_keras_weights(stacked, k1.get_weights() + k3.get_weights())
    assert_all_close(stacked(x), k2t(keras, k3(k1(x.numpy()))))


def test_keras_stateful_parity(keras, x):
    klayer = keras.layers.LSTM(U, stateful=True, return_sequences=True)
    keras.Sequential([keras.Input((None, F), batch_size=B), klayer])
    ours = load_keras_weights(LSTM(F, U, stateful=True, return_sequences=True), klayer.get_weights())
    for chunk in (x[:, :4], x[:, 4:]):
        assert_all_close(ours(chunk), k2t(keras, klayer(chunk.numpy())))
    klayer.reset_state()
    ours.reset_state()
    assert_all_close(ours(x[:, 4:]), k2t(keras, klayer(x[:, 4:].numpy())))

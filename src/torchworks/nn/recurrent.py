"""Recurrent layers with Keras' semantics in PyTorch, and weight conversions to and from torch.nn and Keras 3.

Public API (all batch-first, inputs (B, T, F)):

* :class:`LSTMCell`, :class:`LSTM` (gates i, f, g, o; one bias, Keras' parameter count; a fused fast path and a
  ``record=True`` path exposing per-step gates and cell states), :class:`GRUCell`, :class:`GRU`.
* :class:`Bidirectional` (merge concat | sum | mul | ave | None), :class:`TimeDistributed`.
* :func:`padding_step_mask` (Keras' ``Masking``), and the conversions below.

Weight layouts. Gate blocks are ordered i, f, g, o in torch *and* Keras (Keras names g "c"), so an LSTM needs
only transposes: torch ``weight_ih_l0`` (4U, F) = Keras ``kernel`` (F, 4U) transposed, ``weight_hh_l0`` (4U, U) =
``recurrent_kernel`` (U, 4U) transposed. Torch has two biases; their sum is the one bias of Keras and of our
:class:`LSTMCell`. The GRU stores r, z, n in torch and z, r, h in Keras: the first two blocks swap. Keras'
``reset_after=True`` bias is (2, 3U): row 0 the input bias, row 1 the recurrent bias.

References:
    Keras 3 ``keras/src/layers/rnn/{lstm,gru}.py`` and ``keras/src/backend/torch/rnn.py``; PyTorch
    ``torch.nn.LSTM`` / ``torch.nn.GRU`` parameter documentation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from torchworks.nn.gru import GRU, GRUCell
from torchworks.nn.lstm import LSTM, LSTMCell
from torchworks.nn.recurrent_base import RecurrentLayer, padding_step_mask
from torchworks.nn.wrappers import Bidirectional, TimeDistributed

__all__ = [
    "GRU", "LSTM", "Bidirectional", "GRUCell", "LSTMCell", "RecurrentLayer", "TimeDistributed",
    "export_torch_rnn", "gru_weights_from_keras", "gru_weights_to_keras", "keras_weights", "load_keras_weights",
    "load_torch_rnn", "lstm_weights_from_keras", "lstm_weights_from_torch", "lstm_weights_to_keras",
    "lstm_weights_to_torch", "padding_step_mask",
]


def _t(a) -> Tensor:
    """Tensor from a tensor or a NumPy array (Keras' get_weights) without importing NumPy."""
    return a.detach().clone() if isinstance(a, Tensor) else torch.as_tensor(a).clone()


def _swap_first_two_blocks(w: Tensor, units: int) -> Tensor:
    """Reorder the 3U axis (dim 0) between torch's r, z, n and Keras' z, r, h; the swap is its own inverse."""
    return torch.cat([w[units:2 * units], w[:units], w[2 * units:]], dim=0)


def lstm_weights_from_torch(weight_ih, weight_hh, bias_ih=None, bias_hh=None) -> tuple[Tensor, Tensor, Tensor]:
    """torch.nn.LSTM tensors of one layer and direction -> ours ``(weight_ih (4U, F), weight_hh (4U, U), bias)``.

    The two torch biases (each (4U,), either may be None) become their sum.
    """
    weight_ih, weight_hh = _t(weight_ih), _t(weight_hh)
    bias = weight_ih.new_zeros(weight_ih.shape[0])
    for b in (bias_ih, bias_hh):
        if b is not None:
            bias = bias + _t(b)
    return weight_ih, weight_hh, bias


def lstm_weights_to_torch(weight_ih, weight_hh, bias) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Ours -> torch ``(weight_ih_l, weight_hh_l, bias_ih_l, bias_hh_l)``; the whole bias goes to ``bias_ih``."""
    bias = _t(bias)
    return _t(weight_ih), _t(weight_hh), bias, torch.zeros_like(bias)


def lstm_weights_from_keras(kernel, recurrent_kernel, bias) -> tuple[Tensor, Tensor, Tensor]:
    """Keras ``[kernel (F, 4U), recurrent_kernel (U, 4U), bias (4U,)]`` -> ours (transposes only)."""
    return _t(kernel).t().contiguous(), _t(recurrent_kernel).t().contiguous(), _t(bias)


def lstm_weights_to_keras(weight_ih, weight_hh, bias) -> tuple[Tensor, Tensor, Tensor]:
    """Ours -> Keras ``(kernel (F, 4U), recurrent_kernel (U, 4U), bias (4U,))``."""
    return _t(weight_ih).t().contiguous(), _t(weight_hh).t().contiguous(), _t(bias)


def gru_weights_from_keras(kernel, recurrent_kernel, bias) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Keras GRU ``[kernel (F, 3U), recurrent_kernel (U, 3U), bias]`` -> ours/torch ``(w_ih, w_hh, b_ih, b_hh)``.

    ``bias`` is (2, 3U) for ``reset_after=True`` (input row, recurrent row) and (3U,) otherwise (then b_hh is
    None). Blocks are reordered from z, r, h to r, z, n.
    """
    kernel, recurrent_kernel, bias = _t(kernel), _t(recurrent_kernel), _t(bias)
    u = recurrent_kernel.shape[0]
    w_ih = _swap_first_two_blocks(kernel.t(), u)
    w_hh = _swap_first_two_blocks(recurrent_kernel.t(), u)
    if bias.dim() == 2:
        return w_ih, w_hh, _swap_first_two_blocks(bias[0], u), _swap_first_two_blocks(bias[1], u)
    return w_ih, w_hh, _swap_first_two_blocks(bias, u), None


def gru_weights_to_keras(weight_ih, weight_hh, bias_ih, bias_hh=None) -> tuple[Tensor, Tensor, Tensor]:
    """Ours/torch GRU tensors -> Keras ``(kernel (F, 3U), recurrent_kernel (U, 3U), bias (2, 3U) or (3U,))``."""
    weight_hh = _t(weight_hh)
    u = weight_hh.shape[1]
    kernel = _swap_first_two_blocks(_t(weight_ih), u).t().contiguous()
    recurrent = _swap_first_two_blocks(weight_hh, u).t().contiguous()
    bias = _swap_first_two_blocks(_t(bias_ih), u)
    if bias_hh is not None:
        bias = torch.stack([bias, _swap_first_two_blocks(_t(bias_hh), u)])
    return kernel, recurrent, bias


def _check_pair(layer: RecurrentLayer, ref: nn.RNNBase) -> None:
    kind = "LSTM" if isinstance(layer, LSTM) else "GRU"
    if ref.mode != kind or ref.hidden_size != layer.hidden_size or ref.num_layers < layer.num_layers:
        raise ValueError(f"cannot pair our {kind}({layer.hidden_size}, num_layers={layer.num_layers}) with {ref}")
    if getattr(ref, "proj_size", 0):
        raise ValueError("torch LSTMs with proj_size have no counterpart here")


@torch.no_grad()
def load_torch_rnn(layer: RecurrentLayer, ref: nn.RNNBase, reverse: bool = False) -> RecurrentLayer:
    """Copy a ``torch.nn.LSTM``/``GRU``'s weights into ``layer`` (``reverse``: its backward direction)."""
    _check_pair(layer, ref)
    sfx = "_reverse" if reverse else ""
    for k, cell in enumerate(layer.cells):
        p = {n: getattr(ref, f"{n}_l{k}{sfx}", None) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        if isinstance(cell, LSTMCell):
            for dst, src in zip((cell.weight_ih, cell.weight_hh, cell.bias), lstm_weights_from_torch(**p), strict=True):
                dst.copy_(src)
        else:
            if not cell.reset_after:
                raise ValueError("torch.nn.GRU computes reset_after=True; build the GRU with reset_after=True")
            for n, src in p.items():
                getattr(cell, n).copy_(src if src is not None else torch.zeros_like(getattr(cell, n)))
    return layer


@torch.no_grad()
def export_torch_rnn(layer: RecurrentLayer, ref: nn.RNNBase, reverse: bool = False) -> nn.RNNBase:
    """Copy ``layer``'s weights into a ``torch.nn.LSTM``/``GRU`` (``reverse``: into its backward direction)."""
    _check_pair(layer, ref)
    sfx = "_reverse" if reverse else ""
    for k, cell in enumerate(layer.cells):
        if isinstance(cell, LSTMCell):
            tensors = lstm_weights_to_torch(cell.weight_ih, cell.weight_hh, cell.bias)
        else:
            tensors = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
        for n, src in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), tensors, strict=True):
            getattr(ref, f"{n}_l{k}{sfx}").copy_(src)
    return ref


def keras_weights(layer: RecurrentLayer | Bidirectional) -> list[Tensor]:
    """Our weights in Keras' ``get_weights()`` order: per layer ``[kernel, recurrent_kernel, bias]``.

    A stacked layer lists its layers in order (as a Keras stack of single layers would); a Bidirectional lists the
    forward layer then the backward layer. Pass ``[t.numpy() for t in ...]`` to ``keras_layer.set_weights``.
    """
    if isinstance(layer, Bidirectional):
        return keras_weights(layer.forward_layer) + keras_weights(layer.backward_layer)
    out: list[Tensor] = []
    for cell in layer.cells:
        if isinstance(cell, LSTMCell):
            out += lstm_weights_to_keras(cell.weight_ih, cell.weight_hh, cell.bias)
        else:
            out += gru_weights_to_keras(cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    return out


@torch.no_grad()
def load_keras_weights(layer: RecurrentLayer | Bidirectional, weights: Sequence) -> RecurrentLayer | Bidirectional:
    """Load Keras ``get_weights()`` arrays (order as :func:`keras_weights`) into ``layer``."""
    weights = list(weights)
    layers = [layer.forward_layer, layer.backward_layer] if isinstance(layer, Bidirectional) else [layer]
    cells = [cell for sub in layers for cell in sub.cells]
    if len(weights) != 3 * len(cells):
        raise ValueError(f"expected {3 * len(cells)} Keras arrays (kernel, recurrent_kernel, bias per layer), "
                         f"got {len(weights)}")
    for k, cell in enumerate(cells):
        triple = weights[3 * k:3 * k + 3]
        if isinstance(cell, LSTMCell):
            dst, src = (cell.weight_ih, cell.weight_hh, cell.bias), lstm_weights_from_keras(*triple)
        else:
            dst, src = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh), gru_weights_from_keras(*triple)
        for d, s in zip(dst, src, strict=True):
            if (d is None) != (s is None) or (d is not None and d.shape != s.shape):
                raise ValueError(f"Keras weights of layer {k} do not fit {cell}: got shapes "
                                 f"{[tuple(_t(w).shape) for w in triple]}")
            if d is not None:
                d.copy_(s)
    return layer

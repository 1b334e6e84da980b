"""LSTM written from its gates, with Keras' flags (return_sequences, return_state, stateful, masking).

Step (gate order i, f, g, o; Keras calls g "c"):
    z = x_t W_ih^T + h_{t-1} W_hh^T + b                      (B, 4U)
    i = sigmoid(z_i)  f = sigmoid(z_f)  g = tanh(z_g)  o = sigmoid(z_o)
    c_t = f * c_{t-1} + i * g        h_t = o * tanh(c_t)

References:
    Hochreiter & Schmidhuber, "Long Short-Term Memory", 1997; Gers, Schmidhuber & Cummins, "Learning to Forget:
    Continual Prediction with LSTM", 2000; Jozefowicz et al., "An Empirical Exploration of Recurrent Network
    Architectures", ICML 2015 (forget bias 1, Keras' ``unit_forget_bias``). Reference implementations:
    Keras 3 ``keras/src/layers/rnn/lstm.py``, PyTorch ``torch.nn.LSTM``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.nn.recurrent_base import RecurrentLayer, init_recurrent_weights_
from torchworks.nn.recurrent_fused import FusedLSTMLayer


class LSTMCell(nn.Module):
    """One LSTM step, Keras' parameterisation (one bias), torch's tensor layout.

    Parameters: ``weight_ih`` (4U, F) and ``weight_hh`` (4U, U) with row blocks i, f, g, o (as torch's
    ``weight_ih_l0``; Keras' ``kernel`` (F, 4U) is its transpose), and ``bias`` (4U,). That is
    4 (U (U + F) + U) parameters, Keras' count; ``torch.nn.LSTMCell`` has a second bias and 4U more.

    Args:
        input_size: F, features per step.
        hidden_size: U, units (Keras' ``units``).
        init: ``"keras"`` (default: glorot_uniform input kernel, orthogonal recurrent kernel, zero bias with the
            forget block at 1, i.e. ``unit_forget_bias=True``) or ``"torch"`` (U(-1/sqrt(U), 1/sqrt(U)) everywhere).
    """

    gate_names = ("i", "f", "g", "o")

    def __init__(self, input_size: int, hidden_size: int, init: str = "keras") -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))
        self.reset_parameters(init)

    def reset_parameters(self, init: str = "keras") -> None:
        """Re-draw the weights with ``init`` ("keras" or "torch")."""
        init_recurrent_weights_(self.weight_ih, self.weight_hh, [self.bias], init, self.hidden_size, forget_block=1)

    def project_inputs(self, x: Tensor) -> Tensor:
        """x W_ih^T + b for any leading shape: (..., F) -> (..., 4U)."""
        return F.linear(x, self.weight_ih, self.bias)

    def step(self, projected: Tensor, state: tuple[Tensor, Tensor], record: bool = False):
        """One step from a precomputed input projection.

        Args:
            projected: (B, 4U) = x_t W_ih^T + b.
            state: (h, c), each (B, U).
            record: also return the gate activations.

        Returns:
            ``((h, c), gates)``: new states (B, U); gates is ``{"i", "f", "g", "o"}`` each (B, U) or None.
        """
        h, c = state
        z = projected + h @ self.weight_hh.t()  # (B, 4U)
        zi, zf, zg, zo = z.chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(zi), torch.sigmoid(zf), torch.tanh(zg), torch.sigmoid(zo)
        c = f * c + i * g
        h = o * torch.tanh(c)
        return (h, c), (dict(zip(self.gate_names, (i, f, g, o), strict=True)) if record else None)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """Advance one step.

        Args:
            x: (B, F) input at this step.
            state: (h, c), each (B, U); zeros when None.

        Returns:
            (h, c), each (B, U).
        """
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ShapeError(f"LSTMCell input must be 2-D (batch, {self.input_size}), got shape {tuple(x.shape)}")
        if state is None:
            zero = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zero, zero)
        return self.step(self.project_inputs(x), state)[0]


class LSTM(RecurrentLayer):
    """Multi-layer, batch-first LSTM with Keras' flags and torch's stacking.

    Input (B, T, F). What ``forward`` returns (Keras 3's structures; tuples, as Keras returns them):

    ========================  ============================================  ======================================
    return_sequences          return_state=False                            return_state=True
    ========================  ============================================  ======================================
    False                     h_T (B, U)                                    (h_T, h_T, c_T)
    True                      every h_t (B, T, U)                           (outputs, h_T, c_T)
    ========================  ============================================  ======================================

    With ``num_layers`` > 1 the outputs are the top layer's, states are stacked per layer (L, B, U) (torch's
    ``h_n`` layout), ``dropout`` applies between layers in training (torch's meaning, not Keras' input dropout),
    and ``initial_state`` takes the same (L, B, U) shapes. With ``record=True`` the call returns
    ``(result, record)`` where record holds the per-step gate activations ``i, f, g, o`` and states ``h, c``,
    each (B, T, U) ((L, B, T, U) when stacked), in processing order.

    Parameter count: 4 (U (U + F) + U) per layer, equal to Keras' ``count_params()``; ``torch.nn.LSTM`` has two
    bias vectors (``bias_ih`` and ``bias_hh``, whose sum is our ``bias``), hence 4U more per layer and direction.

    Args:
        input_size: F.
        hidden_size: U (Keras' ``units``).
        num_layers: stacked layers; layer k > 0 reads layer k-1's outputs.
        dropout: dropout probability on the outputs of every layer but the last, training only.
        return_sequences: return every step's output instead of the last one.
        return_state: also return the final states (h, c).
        stateful: keep the final states and start the next call from them (batch size must stay fixed);
            ``reset_state()`` forgets them.
        go_backwards: process the sequence in reverse and return outputs in that reversed order (Keras).
        zero_output_for_mask: masked steps output zeros instead of repeating the last output (Keras' flag;
            ``Bidirectional`` sets it when returning sequences, as Keras does).
        init: ``"keras"`` or ``"torch"``, see :class:`LSTMCell`.

    Forward args:
        x: (B, T, F) float.
        initial_state: ``[h0, c0]`` each (B, U), or (L, B, U) when stacked; zeros when omitted.
        step_mask: (B, T) bool, True = real step. Keras semantics: a masked step leaves h and c unchanged and
            its output repeats the previous output (zeros before the first real step).
        lengths: (B,) int, real steps per sequence (right padding); alternative to ``step_mask``.
        record: also return per-step gates and states (runs the step-by-step loop).

    Without mask and record the layer runs :class:`~torchworks.nn.recurrent_fused.FusedLSTMLayer` (set
    ``layer.fused = False`` to force the step loop, e.g. to compare them).
    """

    state_names = ("h", "c")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 return_sequences: bool = False, return_state: bool = False, stateful: bool = False,
                 go_backwards: bool = False, zero_output_for_mask: bool = False, init: str = "keras") -> None:
        super().__init__(input_size, hidden_size, num_layers, dropout, return_sequences, return_state, stateful,
                         go_backwards, zero_output_for_mask)
        self.init = init
        self.cells = nn.ModuleList(
            LSTMCell(input_size if k == 0 else hidden_size, hidden_size, init) for k in range(num_layers)
        )

    def _fused_layer(self, cell: LSTMCell, seq: Tensor, state: tuple[Tensor, Tensor]):
        out, h, c = FusedLSTMLayer.apply(seq, cell.weight_ih, cell.bias, cell.weight_hh, *state)
        return out, (h, c)

"""GRU with Keras' flags, in torch's formulation (= Keras 3's default ``reset_after=True``) or the original one.

Step (torch gate order r, z, n; Keras stores z, r, h):
    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)      z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    reset_after=True  (torch, Keras 3 default):  n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    reset_after=False (Cho et al. 2014, Keras 1):  n = tanh(W_in x + b_in + W_hn (r * h))
    h' = (1 - z) * n + z * h

References:
    Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder for Statistical Machine Translation",
    EMNLP 2014 (``reset_after=False``); the cuDNN/torch variant (``reset_after=True``) as in ``torch.nn.GRU`` and
    Keras 3 ``keras/src/layers/rnn/gru.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.nn.recurrent_base import RecurrentLayer, init_recurrent_weights_


class GRUCell(nn.Module):
    """One GRU step, torch's tensor layout.

    Parameters: ``weight_ih`` (3U, F), ``weight_hh`` (3U, U) with row blocks r, z, n (as ``torch.nn.GRU``),
    ``bias_ih`` (3U,) and, with ``reset_after=True``, ``bias_hh`` (3U,). Keras' count: 3 (U (U + F) + 2U) with
    ``reset_after=True`` (equal to torch's), 3 (U (U + F) + U) without.

    Args:
        input_size: F.
        hidden_size: U.
        reset_after: apply the reset gate after the recurrent matmul (torch, Keras 3 default) or before it.
        init: ``"keras"`` (glorot_uniform, orthogonal, zero biases) or ``"torch"`` (U(-1/sqrt(U), 1/sqrt(U))).
    """

    gate_names = ("r", "z", "n")

    def __init__(self, input_size: int, hidden_size: int, reset_after: bool = True, init: str = "keras") -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.reset_after = input_size, hidden_size, reset_after
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden_size)) if reset_after else None
        self.reset_parameters(init)

    def reset_parameters(self, init: str = "keras") -> None:
        """Re-draw the weights with ``init`` ("keras" or "torch")."""
        init_recurrent_weights_(self.weight_ih, self.weight_hh, [self.bias_ih, self.bias_hh], init, self.hidden_size)

    def project_inputs(self, x: Tensor) -> Tensor:
        """W_ih x + b_ih for any leading shape: (..., F) -> (..., 3U)."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def step(self, projected: Tensor, state: tuple[Tensor], record: bool = False):
        """One step from a precomputed input projection (B, 3U); returns ``((h,), gates or None)``, h (B, U)."""
        (h,) = state
        u = self.hidden_size
        xr, xz, xn = projected.chunk(3, dim=1)
        if self.reset_after:
            hr, hz, hn = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, dim=1)  # (B, U) each
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
        else:
            hr, hz = (h @ self.weight_hh[:2 * u].t()).chunk(2, dim=1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + (r * h) @ self.weight_hh[2 * u:].t())
        h = n + z * (h - n)  # = (1 - z) n + z h
        return (h,), (dict(zip(self.gate_names, (r, z, n), strict=True)) if record else None)

    def forward(self, x: Tensor, state: Tensor | None = None) -> Tensor:
        """Advance one step: x (B, F), state h (B, U) (zeros when None) -> new h (B, U)."""
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ShapeError(f"GRUCell input must be 2-D (batch, {self.input_size}), got shape {tuple(x.shape)}")
        h = x.new_zeros(x.shape[0], self.hidden_size) if state is None else state
        return self.step(self.project_inputs(x), (h,))[0][0]


class GRU(RecurrentLayer):
    """Multi-layer, batch-first GRU with Keras' flags (see :class:`~torchworks.nn.lstm.LSTM` for the flags).

    Returns h_T (B, U), or every h_t (B, T, U) with ``return_sequences``; with ``return_state`` the tuple
    ``(output, h_T)`` (Keras' structure). ``initial_state`` is ``[h0]``, (B, U) or (L, B, U) when stacked.
    ``record=True`` adds the gates ``r, z, n`` and state ``h`` per step, each (B, T, U). The recurrence runs
    step by step (the fused fast path exists for the LSTM only); the input projection is one matmul.

    Args:
        input_size: F.
        hidden_size: U (Keras' ``units``).
        num_layers: stacked layers.
        dropout: dropout between layers (training only).
        return_sequences: return every step's output.
        return_state: also return the final h.
        stateful: carry the final state into the next call; ``reset_state()`` forgets it.
        go_backwards: process the sequence reversed (outputs stay in that reversed order, as in Keras).
        zero_output_for_mask: masked steps output zeros instead of repeating the previous output.
        reset_after: see :class:`GRUCell`.
        init: ``"keras"`` or ``"torch"``.
    """

    state_names = ("h",)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 return_sequences: bool = False, return_state: bool = False, stateful: bool = False,
                 go_backwards: bool = False, zero_output_for_mask: bool = False, reset_after: bool = True,
                 init: str = "keras") -> None:
        super().__init__(input_size, hidden_size, num_layers, dropout, return_sequences, return_state, stateful,
                         go_backwards, zero_output_for_mask)
        self.reset_after, self.init = reset_after, init
        self.cells = nn.ModuleList(
            GRUCell(input_size if k == 0 else hidden_size, hidden_size, reset_after, init) for k in range(num_layers)
        )

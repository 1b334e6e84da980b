"""Keras' layer wrappers for sequences: ``Bidirectional`` and ``TimeDistributed``, batch-first (B, T, F).

References:
    Schuster & Paliwal, "Bidirectional Recurrent Neural Networks", IEEE Trans. Signal Processing 1997.
    Keras 3 ``keras/src/layers/rnn/bidirectional.py`` and ``keras/src/layers/core/time_distributed.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.nn.recurrent_base import RecurrentLayer

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(nn.Module):
    """Run a recurrent layer forwards and a twin backwards over the sequence and merge them (Keras semantics).

    The backward twin is a fresh copy of ``layer`` (new weights, ``go_backwards`` flipped) unless
    ``backward_layer`` is given. Its per-step outputs are flipped back to input time order before merging,
    so step t of the result sees x_1..x_t forwards and x_t..x_T backwards.

    Returns (tuples, as Keras 3):

    * ``merge_mode`` in concat | sum | mul | ave: the merged output, (B, [T,] 2U) for concat else (B, [T,] U);
      with ``return_state``: ``(output, *forward_states, *backward_states)``, i.e. five tensors
      ``(output, h_fw, c_fw, h_bw, c_bw)`` for an LSTM and three for a GRU.
    * ``merge_mode=None``: ``(out_fw, out_bw)``, then the states when ``return_state``.

    With ``return_sequences`` and a mask, masked steps output zeros in both directions (Keras forces
    ``zero_output_for_mask`` there). ``record=True`` returns ``(result, {"forward": ..., "backward": ...})``.

    Args:
        layer: a :class:`~torchworks.nn.lstm.LSTM` or :class:`~torchworks.nn.gru.GRU`; its flags apply to both.
        merge_mode: "concat" (default), "sum", "mul", "ave" or None.
        backward_layer: optional explicit backward layer; must have ``go_backwards`` opposite to ``layer`` and
            the same ``return_sequences`` / ``return_state``.
    """

    def __init__(self, layer: RecurrentLayer, merge_mode: str | None = "concat",
                 backward_layer: RecurrentLayer | None = None) -> None:
        super().__init__()
        if not isinstance(layer, RecurrentLayer):
            raise TypeError(f"Bidirectional wraps an LSTM or GRU layer, got {type(layer).__name__}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        if backward_layer is None:
            backward_layer = copy.deepcopy(layer)
            backward_layer.go_backwards = not layer.go_backwards
            backward_layer.reset_parameters()
            backward_layer.reset_state()
        elif backward_layer.go_backwards == layer.go_backwards:
            raise ValueError("backward_layer.go_backwards must be the opposite of layer.go_backwards")
        for flag in ("return_sequences", "return_state", "hidden_size", "num_layers"):
            if getattr(layer, flag) != getattr(backward_layer, flag):
                raise ValueError(f"forward and backward layers differ in {flag}")
        self.forward_layer, self.backward_layer, self.merge_mode = layer, backward_layer, merge_mode
        for sub in (layer, backward_layer):  # Keras does the same to its wrapped layers
            sub.zero_output_for_mask = sub.return_sequences
        self.return_sequences, self.return_state = layer.return_sequences, layer.return_state

    def count_params(self) -> int:
        """Trainable scalars of both directions (2x the wrapped layer's count, as in Keras)."""
        return self.forward_layer.count_params() + self.backward_layer.count_params()

    def reset_state(self) -> None:
        """Forget the carried states of stateful inner layers."""
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    def forward(self, x: Tensor, initial_state: Sequence[Tensor] | None = None, step_mask: Tensor | None = None,
                lengths: Tensor | None = None, record: bool = False):
        """Run both directions.

        Args:
            x: (B, T, F).
            initial_state: forward states then backward states, e.g. ``[h_fw, c_fw, h_bw, c_bw]`` each (B, U).
            step_mask: (B, T) bool, True = real step.
            lengths: (B,) int, alternative to ``step_mask``.
            record: also return both directions' per-step gates and states.
        """
        fw_state = bw_state = None
        if initial_state is not None:
            half = len(initial_state) // 2
            fw_state, bw_state = list(initial_state[:half]), list(initial_state[half:])
        kwargs = {"step_mask": step_mask, "lengths": lengths, "record": record}
        y = self.forward_layer(x, initial_state=fw_state, **kwargs)
        y_rev = self.backward_layer(x, initial_state=bw_state, **kwargs)
        records = None
        if record:
            (y, rec_fw), (y_rev, rec_bw) = y, y_rev
            records = {"forward": rec_fw, "backward": rec_bw}
        states: tuple[Tensor, ...] = ()
        if self.return_state:
            states = tuple(y[1:]) + tuple(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev.flip(1)  # back to input time order
        if self.merge_mode == "concat":
            output = torch.cat([y, y_rev], dim=-1)
        elif self.merge_mode == "sum":
            output = y + y_rev
        elif self.merge_mode == "ave":
            output = (y + y_rev) / 2
        elif self.merge_mode == "mul":
            output = y * y_rev
        else:
            output = (y, y_rev)
        if self.return_state:
            result = (*output, *states) if self.merge_mode is None else (output, *states)
        else:
            result = output
        return (result, records) if record else result

    def extra_repr(self) -> str:
        return f"merge_mode={self.merge_mode!r}"


class TimeDistributed(nn.Module):
    """Apply ``module`` to every time step independently: (B, T, *S) -> (B, T, *S').

    The steps are folded into the batch, so ``module`` runs once on (B*T, *S). For ``nn.Linear`` this equals
    applying it to the 3-D tensor directly (Linear acts on the last axis); the wrapper exists for modules that
    need a plain batch axis (convolutions, norms over the batch) and for Keras-style readability.

    Args:
        module: any module taking (N, *S).
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, T, *S) -> (B, T, *S')."""
        if x.dim() < 3:
            raise ShapeError(f"TimeDistributed input must be at least 3-D (batch, timesteps, ...), "
                             f"got shape {tuple(x.shape)}")
        batch, steps = x.shape[:2]
        y = self.module(x.reshape(batch * steps, *x.shape[2:]))  # (B*T, *S')
        return y.reshape(batch, steps, *y.shape[1:])

    def count_params(self) -> int:
        """Trainable scalars of the wrapped module (the wrapper adds none)."""
        return sum(p.numel() for p in self.module.parameters() if p.requires_grad)

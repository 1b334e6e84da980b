"""Shared machinery of the recurrent layers: input checks, step masks, states, Keras-style return structures.

Every recurrent layer here is batch-first: inputs are (B, T, F), per-step outputs (B, T, U), states (B, U).
Internally the layers run time-major (T, B, ...) so that one time step is a contiguous slice.

References:
    Keras 3 ``keras/src/layers/rnn/rnn.py`` and ``keras/src/backend/torch/rnn.py`` (flags, masking, stateful);
    PyTorch ``torch.nn.modules.rnn`` (parameter layout, ``num_layers`` with dropout between layers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.errors import ShapeError

INITS = ("keras", "torch")


def check_sequence_input(x: Tensor, features: int, name: str) -> None:
    """Raise :class:`ShapeError` unless ``x`` is (B, T, features) with B, T >= 1."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} input must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise ShapeError(f"{name} input must be 3-D (batch, timesteps, features), got shape {tuple(x.shape)}")
    if x.shape[2] != features:
        raise ShapeError(
            f"{name} expects {features} features per step (input_size={features}), got shape {tuple(x.shape)}"
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ShapeError(f"{name} input needs at least one sequence and one step, got shape {tuple(x.shape)}")


def resolve_step_mask(step_mask: Tensor | None, lengths: Tensor | None, batch: int, steps: int,
                      device: torch.device) -> Tensor | None:
    """Turn ``step_mask`` (B, T) bool, True = real step, or ``lengths`` (B,) int into a (B, T) bool mask."""
    if step_mask is not None and lengths is not None:
        raise ValueError("pass either step_mask or lengths, not both")
    if lengths is not None:
        lengths = torch.as_tensor(lengths, device=device)
        if lengths.shape != (batch,):
            raise ShapeError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
        if bool((lengths < 0).any()) or bool((lengths > steps).any()):
            raise ValueError(f"lengths must lie in [0, {steps}], got {lengths.tolist()}")
        return torch.arange(steps, device=device).unsqueeze(0) < lengths.unsqueeze(1)
    if step_mask is None:
        return None
    if step_mask.shape != (batch, steps):
        raise ShapeError(f"step_mask must have shape ({batch}, {steps}) (batch, timesteps), "
                         f"got {tuple(step_mask.shape)}")
    if step_mask.dtype != torch.bool:
        raise ValueError(f"step_mask must be a bool tensor (True = real step), got dtype {step_mask.dtype}")
    return step_mask.to(device)


def padding_step_mask(x: Tensor, mask_value: float = 0.0) -> Tensor:
    """Keras ``Masking(mask_value)``: a step is padding when every feature equals ``mask_value``.

    Args:
        x: (B, T, F) padded sequences.
        mask_value: the padding value.

    Returns:
        (B, T) bool, True = real step.
    """
    return (x != mask_value).any(dim=-1)


def init_recurrent_weights_(weight_ih: Tensor, weight_hh: Tensor, biases: Sequence[Tensor | None], init: str,
                            hidden_size: int, forget_block: int | None = None) -> None:
    """Initialise one cell in place, Keras' way or torch's way.

    ``keras``: ``glorot_uniform`` on the input kernel, ``orthogonal`` on the recurrent kernel, zero biases, and
    with ``forget_block`` set (``unit_forget_bias=True``) that block of the first bias is 1. Our (G*U, F) weight is the
    transpose of Keras' (F, G*U) kernel; Xavier and orthogonal are transpose-invariant in distribution, so the draw
    has the same law as Keras'. ``torch``: every tensor U(-1/sqrt(U), 1/sqrt(U)), as ``torch.nn.LSTM`` does.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    with torch.no_grad():
        if init == "torch":
            bound = 1.0 / math.sqrt(hidden_size)
            for p in (weight_ih, weight_hh, *biases):
                if p is not None:
                    p.uniform_(-bound, bound)
            return
        nn.init.xavier_uniform_(weight_ih)
        nn.init.orthogonal_(weight_hh)
        for b in biases:
            if b is not None:
                b.zero_()
        if forget_block is not None and biases and biases[0] is not None:
            biases[0][forget_block * hidden_size:(forget_block + 1) * hidden_size] = 1.0


class RecurrentLayer(nn.Module):
    """Base of :class:`~torchworks.nn.lstm.LSTM` and :class:`~torchworks.nn.gru.GRU` (not used directly).

    Subclasses set ``state_names`` (Keras order, hidden state first), build ``self.cells`` and may override
    ``_fused_layer`` with a fast path for unmasked, unrecorded runs.
    """

    state_names: tuple[str, ...] = ("h",)
    record_names: tuple[str, ...] = ()

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float, return_sequences: bool,
                 return_state: bool, stateful: bool, go_backwards: bool, zero_output_for_mask: bool) -> None:
        super().__init__()
        for label, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive int, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.input_size, self.hidden_size, self.num_layers, self.dropout = input_size, hidden_size, num_layers, dropout
        self.return_sequences, self.return_state = return_sequences, return_state
        self.stateful, self.go_backwards, self.zero_output_for_mask = stateful, go_backwards, zero_output_for_mask
        self.fused = True  # tests flip this to compare the fast path with the cell-by-cell loop
        self._states: tuple[Tensor, ...] | None = None

    def reset_parameters(self, init: str | None = None) -> None:
        """Re-draw every layer's weights with ``init`` ("keras" or "torch"; default: the constructor's)."""
        for cell in self.cells:
            cell.reset_parameters(init or self.init)

    # ---- states -------------------------------------------------------------------------------------------
    def count_params(self) -> int:
        """Number of trainable scalars (Keras' ``count_params`` convention)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def reset_state(self, states: Sequence[Tensor] | None = None) -> None:
        """Forget the carried state of a ``stateful`` layer (next call starts from zeros), or set it to ``states``."""
        self._states = None if states is None else tuple(s.detach() for s in states)

    reset_states = reset_state  # Keras' compatibility alias

    @property
    def states(self) -> tuple[Tensor, ...] | None:
        """The carried state of a stateful layer, shaped like ``initial_state`` (None before the first call)."""
        return self._states

    def _initial_states(self, initial_state: Sequence[Tensor] | None, x: Tensor) -> list[tuple[Tensor, ...]]:
        batch, n, layers = x.shape[0], len(self.state_names), self.num_layers
        shape = (batch, self.hidden_size) if layers == 1 else (layers, batch, self.hidden_size)
        if initial_state is None and self.stateful and self._states is not None:
            initial_state = self._states
            if initial_state[0].shape != shape:
                raise ShapeError(f"a stateful {type(self).__name__} keeps a fixed batch size: its state has shape "
                                 f"{tuple(initial_state[0].shape)}, the input batch needs {shape}; call reset_state()")
        if initial_state is None:
            zero = x.new_zeros(self.hidden_size).expand(batch, self.hidden_size)
            return [(zero,) * n for _ in range(layers)]
        if isinstance(initial_state, Tensor) or len(initial_state) != n:
            raise ValueError(f"initial_state must be a list of {n} tensors {list(self.state_names)}")
        for name, s in zip(self.state_names, initial_state, strict=True):
            if tuple(s.shape) != shape:
                raise ShapeError(f"initial state {name} must have shape {shape}, got {tuple(s.shape)}")
        if layers == 1:
            return [tuple(initial_state)]
        return [tuple(s[k] for s in initial_state) for k in range(layers)]

    # ---- running ------------------------------------------------------------------------------------------
    def _fused_layer(self, cell: nn.Module, seq: Tensor, state: tuple[Tensor, ...]):
        """Fast path for one layer without mask or record; None means 'not available, use the loop'."""
        return None

    def _loop_layer(self, cell: nn.Module, seq: Tensor, state: tuple[Tensor, ...], mask: Tensor | None,
                    record: bool) -> tuple[Tensor, Tensor, tuple[Tensor, ...], dict[str, Tensor] | None]:
        """Cell-by-cell recurrence over time-major ``seq`` (T, B, F); handles masks and recording."""
        projected = cell.project_inputs(seq)  # (T, B, G*U): every step's input matmul in one call
        outputs, prev_out, recs = [], None, []
        for t in range(seq.shape[0]):
            new_state, extras = cell.step(projected[t], state, record)
            out = new_state[0]
            if mask is not None:
                # Keras: a masked step keeps the state; its output repeats the previous output (zeros before the
                # first real step), or is zero when zero_output_for_mask (what Bidirectional asks for).
                m = mask[t].unsqueeze(1)  # (B, 1)
                new_state = tuple(torch.where(m, n, s) for n, s in zip(new_state, state, strict=True))
                fallback = torch.zeros_like(out) if self.zero_output_for_mask or prev_out is None else prev_out
                out = torch.where(m, out, fallback)
            state, prev_out = new_state, out
            outputs.append(out)
            if record:
                recs.append({**extras, **dict(zip(self.state_names, state, strict=True))})
        rec = {k: torch.stack([r[k] for r in recs], dim=1) for k in recs[0]} if record else None  # (B, T, U)
        return torch.stack(outputs), outputs[-1], state, rec

    def forward(self, x: Tensor, initial_state: Sequence[Tensor] | None = None, step_mask: Tensor | None = None,
                lengths: Tensor | None = None, record: bool = False):
        """Run the layer; see the subclass docstring for the returned structure."""
        name = type(self).__name__
        check_sequence_input(x, self.input_size, name)
        batch, steps, _ = x.shape
        mask = resolve_step_mask(step_mask, lengths, batch, steps, x.device)
        states = self._initial_states(initial_state, x)
        seq = x.transpose(0, 1)  # (T, B, F)
        mask_tm = None if mask is None else mask.t()  # (T, B)
        if self.go_backwards:  # Keras: read the sequence backwards and return outputs in that reversed order
            seq = seq.flip(0)
            mask_tm = None if mask_tm is None else mask_tm.flip(0)
        finals, records = [], []
        for k, cell in enumerate(self.cells):
            if k > 0 and self.dropout > 0 and self.training:
                seq = F.dropout(seq, self.dropout, training=True)
            fast = None if (mask_tm is not None or record or not self.fused) else self._fused_layer(cell, seq,
                                                                                                   states[k])
            if fast is not None:
                seq, final = fast
                last, rec = final[0], None  # h_T itself, so a many-to-one model sends no gradient into seq
            else:
                seq, last, final, rec = self._loop_layer(cell, seq, states[k], mask_tm, record)
            finals.append(final)
            records.append(rec)
        if self.num_layers == 1:
            final_states = finals[0]
        else:
            final_states = tuple(torch.stack(s) for s in zip(*finals, strict=True))  # each (L, B, U)
        if self.stateful:
            self._states = tuple(s.detach() for s in final_states)
        output = seq.transpose(0, 1) if self.return_sequences else last  # (B, T, U) or (B, U)
        result = (output, *final_states) if self.return_state else output
        if not record:
            return result
        if self.num_layers == 1:
            return result, records[0]
        return result, {k: torch.stack([r[k] for r in records]) for k in records[0]}  # each (L, B, T, U)

    def extra_repr(self) -> str:
        flags = [f for f in ("return_sequences", "return_state", "stateful", "go_backwards") if getattr(self, f)]
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, dropout={self.dropout}"
                + "".join(f", {f}=True" for f in flags))

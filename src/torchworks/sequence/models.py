"""Sequence models of the recipes, registered in ``MODELS``: an LSTM network, a memoryless MLP, a forecaster.

* ``seq_lstm``: (Bidirectional) stacked LSTM + a Dense head, many-to-one (last step) or many-to-many
  (``TimeDistributed(Dense)`` on every step), the Keras layouts the seed note teaches.
* ``seq_mlp``: the same input/output contract without memory. Many-to-many, it sees one step at a time (so it
  cannot tell ``3,0,1,2`` from ``4,0,1,2`` at the last step); many-to-one, it sees the flattened sequence.
* ``seq_forecaster``: LSTM over a window of a (multivariate) series -> the next ``horizon`` values of the
  target columns. It carries the scaler fitted on the training part as buffers, so a saved forecaster
  predicts from raw values with no side files (``save_model``/``load_model`` restore identical predictions).

All inputs are batch-first (B, T, F) float.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.core.registry import MODELS
from torchworks.nn.recurrent import LSTM, Bidirectional, TimeDistributed


class SequenceNet(nn.Module):
    """LSTM (optionally bidirectional, stacked) followed by a linear head.

    Args:
        input_size: F, features per step.
        hidden_size: U, LSTM units per direction.
        output_size: outputs per prediction (classes for a classifier, 1 for a scalar regression).
        num_layers: stacked LSTM layers.
        many_to_many: return a prediction per step (B, T, O) instead of one per sequence (B, O).
        bidirectional: wrap the LSTM in ``Bidirectional(merge_mode="concat")``.
        dropout: dropout between stacked layers (training only).
        forget_bias: initial value of the forget-gate bias (Keras' ``unit_forget_bias`` sets 1). Long lags
            need more: with f = sigmoid(b) the gradient through k steps shrinks like f^k at the start
            (0.73^50 ~ 1e-7 for b = 1, 0.98^50 ~ 0.4 for b = 4), so the network never sees the signal.
        input_bias: initial input-gate bias. A negative value (chrono initialisation uses -forget_bias) keeps
            a long run of identical inputs from filling the cell until tanh saturates.

    References:
        C. Tallec & Y. Ollivier, "Can Recurrent Neural Networks Warp Time?", ICLR 2018 (chrono initialisation).
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, num_layers: int = 1,
                 many_to_many: bool = False, bidirectional: bool = False, dropout: float = 0.0,
                 forget_bias: float = 1.0, input_bias: float = 0.0) -> None:
        super().__init__()
        lstm = LSTM(input_size, hidden_size, num_layers=num_layers, dropout=dropout, return_sequences=many_to_many)
        if bidirectional:
            lstm = Bidirectional(lstm)
        with torch.no_grad():
            for layer in (lstm.forward_layer, lstm.backward_layer) if bidirectional else (lstm,):
                for cell in layer.cells:
                    cell.bias[:hidden_size] = input_bias  # gate blocks i, f, g, o
                    cell.bias[hidden_size:2 * hidden_size] = forget_bias
        self.rnn = lstm
        width = hidden_size * (2 if bidirectional else 1)
        dense = nn.Linear(width, output_size)
        self.head = TimeDistributed(dense) if many_to_many else dense
        self.many_to_many, self.bidirectional = many_to_many, bidirectional

    @property
    def lstm(self) -> LSTM:
        """The (forward) LSTM layer, e.g. for ``record=True`` introspection."""
        return self.rnn.forward_layer if self.bidirectional else self.rnn

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, T, F) -> (B, T, O) if many_to_many else (B, O)."""
        return self.head(self.rnn(x))

    def count_params(self) -> int:
        """Trainable scalars (the LSTM counted as Keras does: one bias per gate)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class StepMLP(nn.Module):
    """A memoryless multilayer perceptron with the recurrent models' input/output contract.

    Args:
        input_size: F.
        hidden: widths of the hidden layers (tanh).
        output_size: outputs per prediction.
        many_to_many: map every step on its own, (B, T, F) -> (B, T, O); otherwise flatten
            the whole sequence (``seq_len`` steps) and predict once, (B, T, F) -> (B, O).
        seq_len: T, needed when not many_to_many.
    """

    def __init__(self, input_size: int, hidden: Sequence[int], output_size: int, many_to_many: bool = True,
                 seq_len: int | None = None) -> None:
        super().__init__()
        if not many_to_many and not seq_len:
            raise ValueError("a many-to-one StepMLP needs seq_len (it flattens the whole sequence)")
        width = input_size if many_to_many else input_size * seq_len
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        layers.append(nn.Linear(width, output_size))
        self.net = nn.Sequential(*layers)
        self.many_to_many, self.seq_len = many_to_many, seq_len

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, T, F) -> (B, T, O) if many_to_many else (B, O)."""
        if x.dim() != 3:
            raise ShapeError(f"StepMLP input must be 3-D (batch, timesteps, features), got {tuple(x.shape)}")
        if self.many_to_many:
            return self.net(x)  # Linear acts on the last axis: each step alone, no memory
        if x.shape[1] != self.seq_len:
            raise ShapeError(f"this StepMLP was built for {self.seq_len} steps, got {tuple(x.shape)}")
        return self.net(x.flatten(1))

    def count_params(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def mlp_hidden_for_params(target: int, input_size: int, output_size: int) -> int:
    """Width H of a one-hidden-layer MLP (F -> H -> O) whose parameter count is closest to ``target``.

    The count is H (F + 1) + O (H + 1); solving for H and rounding gives the nearest width.
    """
    h = round((target - output_size) / (input_size + 1 + output_size))
    return max(1, h)


class Forecaster(nn.Module):
    """Window of a series -> the next ``horizon`` values of its target columns, in original units.

    ``forward`` works in scaled units; :meth:`predict` takes and returns raw values. With ``delta=True`` the
    network predicts the change from the window's last target value (so an untrained network already equals
    the persistence forecast and training learns only the correction).

    Args:
        n_features: F, columns in the window.
        horizon: H, steps ahead.
        target_index: column indices (into the F features) that are forecast.
        hidden_size: LSTM units; num_layers stacked layers; dropout between them.
        delta: predict differences from the last observed target value.
        window: W it was trained on, and columns: the CSV columns of the F features (target first); both
            are metadata saved with the model so a loaded forecaster knows what to read.
    """

    def __init__(self, n_features: int, horizon: int, target_index: Sequence[int] = (0,), hidden_size: int = 32,
                 num_layers: int = 1, dropout: float = 0.0, delta: bool = True, window: int | None = None,
                 columns: Sequence[str] | None = None) -> None:
        super().__init__()
        self.n_features, self.horizon = n_features, horizon
        self.window, self.columns = window, list(columns) if columns is not None else None
        self.target_index = [int(i) for i in target_index]
        if not self.target_index or any(not 0 <= i < n_features for i in self.target_index):
            raise ValueError(f"target_index must hold column indices in [0, {n_features}), got {target_index}")
        self.delta = delta
        self.lstm = LSTM(n_features, hidden_size, num_layers=num_layers, dropout=dropout)
        self.head = nn.Linear(hidden_size, horizon * len(self.target_index))
        if delta:  # start exactly at persistence: the head's output is the correction
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        # The scaler fitted on the training part travels with the weights (see the module docstring).
        self.register_buffer("center", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))

    def set_scaler(self, center: Tensor, scale: Tensor) -> None:
        """Stores the per-feature scaler: scaled = (raw - center) / scale."""
        self.center.copy_(torch.as_tensor(center, dtype=self.center.dtype))
        self.scale.copy_(torch.as_tensor(scale, dtype=self.scale.dtype))

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, W, F) scaled window -> (B, H, K) scaled forecast of the K target columns."""
        if x.dim() != 3 or x.shape[2] != self.n_features:
            raise ShapeError(f"Forecaster input must be (batch, window, {self.n_features}), got {tuple(x.shape)}")
        y = self.head(self.lstm(x)).view(x.shape[0], self.horizon, len(self.target_index))  # (B, H, K)
        if self.delta:
            y = y + x[:, -1:, self.target_index]  # last observed target, broadcast over the horizon
        return y

    @torch.no_grad()
    def predict(self, window: Tensor) -> Tensor:
        """window: (B, W, F) or (W, F) raw values -> (B, H, K) or (H, K) raw forecast."""
        single = window.dim() == 2
        x = window.unsqueeze(0) if single else window
        x = (x.to(self.center.dtype) - self.center) / self.scale
        y = self(x) * self.scale[self.target_index] + self.center[self.target_index]
        return y[0] if single else y


@MODELS.register()
def seq_lstm(**kw) -> SequenceNet:
    """``SequenceNet``: LSTM(+Bidirectional) + Dense; defaults 1 layer, 16 units, many-to-one."""
    return SequenceNet(**{"hidden_size": 16, **kw})


@MODELS.register()
def seq_mlp(**kw) -> StepMLP:
    """``StepMLP``: memoryless baseline with one hidden layer of 32 by default."""
    return StepMLP(**{"hidden": (32,), **kw})


@MODELS.register()
def seq_forecaster(**kw) -> Forecaster:
    """``Forecaster``: LSTM(32) window -> horizon model with its scaler in buffers."""
    return Forecaster(**kw)

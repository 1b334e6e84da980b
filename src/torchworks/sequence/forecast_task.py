"""``seq_forecast``: an LSTM forecaster of a CSV series as an engine :class:`Task`.

The series is split in time (train / val / test rows), scaled with statistics of the training rows only,
and cut into windows (:mod:`torchworks.sequence.windowing`). The loss is the MSE in scaled units; validation
also reports the MAE in original units. Two variants reuse the same task:

* ``fold``/``folds``: time-ordered k-fold cross-validation over the train+val origins (the test rows stay
  unseen); fold i trains on the origins before its validation block.
* ``finalize``: train on every window of the whole series (no held-out rows), the model one deploys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from torchworks.core.checkpoint import build_model
from torchworks.core.registry import TASKS
from torchworks.engine.task import Task
from torchworks.sequence.memory_task import TensorDictDataset
from torchworks.sequence.series import Series, SeriesError, read_series
from torchworks.sequence.windowing import Scaler, chronological_split, make_windows, time_series_folds, window_starts


@dataclass
class ForecastConfig:
    """Settings of a forecasting run.

    Attributes:
        csv: the CSV file.
        target: the column to forecast; features: extra input columns (multivariate input).
        date_column: None: detect (Date, Month, ...).
        window: W input steps; horizon: H steps ahead (direct multi-output forecast).
        fractions: chronological (train, val, test) fractions of the rows.
        scaler: "minmax" or "standard", fitted on the training rows.
        hidden_size, num_layers, dropout: the LSTM.
        delta: predict the change from the last observed value (starts at persistence) instead of the level.
        lr: Adam learning rate; weight_decay its L2 penalty.
        folds, fold: time-ordered cross-validation (folds >= 2 and 0 <= fold < folds) or off (folds = 0).
        finalize: train on all windows of the series (no validation or test).
    """

    csv: str = ""
    target: str = "Close"
    features: list[str] = field(default_factory=list)
    date_column: str | None = None
    window: int = 30
    horizon: int = 1
    fractions: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15])
    scaler: Literal["minmax", "standard"] = "minmax"
    hidden_size: int = 32
    num_layers: int = 1
    dropout: float = 0.0
    delta: bool = True
    lr: float = 3e-3
    weight_decay: float = 0.0
    folds: int = 0
    fold: int = 0
    finalize: bool = False

    def __post_init__(self) -> None:
        if not self.csv:
            raise ValueError("task.csv must name the CSV file to forecast")
        if self.folds and not 0 <= self.fold < self.folds:
            raise ValueError(f"fold must lie in [0, {self.folds}), got {self.fold}")


class ForecastTask(Task):
    """Trains ``seq_forecaster`` on windows of one series; see the module docstring for the splits."""

    def __init__(self, cfg: ForecastConfig, data_dir: str | None = None, series: Series | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.series = series or read_series(cfg.csv, [cfg.target, *cfg.features], cfg.date_column)
        values, W, H = self.series.values, cfg.window, cfg.horizon
        n = len(values)
        if cfg.finalize:
            self.monitor = "train/loss"  # nothing is held out: "best" and early stopping follow the training loss
            self.split = chronological_split(n, W, H, (1.0, 0.0, 0.0), self.series.source)
            self.starts = {"train": window_starts(0, n, W, H), "val": np.empty(0, int), "test": np.empty(0, int)}
        else:
            self.split = chronological_split(n, W, H, tuple(cfg.fractions), self.series.source)
            s = self.split
            self.starts = {"train": window_starts(0, s.train_end, W, H),
                           "val": window_starts(s.train_end, s.val_end, W, H),
                           "test": window_starts(s.val_end, n, W, H)}
            if cfg.folds:
                pool = window_starts(0, s.val_end, W, H)
                train_i, val_i = time_series_folds(len(pool), cfg.folds, gap=H - 1)[cfg.fold]
                self.starts["train"], self.starts["val"] = pool[train_i], pool[val_i]
        # Scaling sees only rows the training windows cover (inputs and targets), never later ones.
        fit_end = int(self.starts["train"].max()) + H
        self.scaler = Scaler.fit(values[:fit_end], cfg.scaler)
        self.scaled = self.scaler.transform(values)
        self.targets = [0]  # the target column comes first; features are inputs only
        self.model = build_model("seq_forecaster", **self.model_kwargs())
        self.model.set_scaler(torch.as_tensor(self.scaler.center), torch.as_tensor(self.scaler.scale))

    def model_kwargs(self) -> dict:
        c = self.cfg
        return {"n_features": self.series.values.shape[1], "horizon": c.horizon, "target_index": self.targets,
                "hidden_size": c.hidden_size, "num_layers": c.num_layers, "dropout": c.dropout, "delta": c.delta,
                "window": c.window, "columns": list(self.series.columns)}

    def windows(self, split: str, scaled: bool = True) -> tuple[Tensor, Tensor]:
        """``(x (M, W, F), y (M, H, 1))`` of a split, scaled or in original units."""
        values = self.scaled if scaled else self.series.values
        return make_windows(values, self.starts[split], self.cfg.window, self.cfg.horizon, self.targets)

    def _dataset(self, split: str) -> TensorDictDataset | None:
        if len(self.starts[split]) == 0:
            return None
        x, y = self.windows(split)
        return TensorDictDataset({"x": x, "y": y})

    def train_dataset(self):
        return self._dataset("train")

    def val_dataset(self):
        return self._dataset("val")

    def test_dataset(self):
        return self._dataset("test")

    def training_step(self, batch, opt=None):
        return {"loss": F.mse_loss(self.model(batch["x"]), batch["y"])}

    @torch.no_grad()
    def validation_step(self, batch):
        pred = self.model(batch["x"])
        scale = self.model.scale[self.targets]  # MAE back in original units
        return {"loss": F.mse_loss(pred, batch["y"]), "mae": ((pred - batch["y"]).abs() * scale).mean()}

    @torch.no_grad()
    def predict(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(pred, true)`` of a split in original units, each (M, H, 1)."""
        if len(self.starts[split]) == 0:
            raise SeriesError(f"the {split} split holds no windows")
        self.eval()
        x_raw, y_raw = self.windows(split, scaled=False)
        return self.model.predict(x_raw).double().numpy(), y_raw.double().numpy()

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def trainable_modules(self):
        return [self.model]

    def export_model(self):
        return self.model, {"name": "seq_forecaster", "kwargs": self.model_kwargs()}


@TASKS.register("seq_forecast", config=ForecastConfig)
def seq_forecast(cfg: ForecastConfig, data_dir: str | None = None) -> ForecastTask:
    """Builds the forecasting task (``data_dir`` is unused: ``csv`` names the file)."""
    return ForecastTask(cfg, data_dir=data_dir)

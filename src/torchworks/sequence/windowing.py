"""Windows of a series for supervised forecasting: chronological splits, train-only scaling, k folds in time.

A window starting its forecast at row t has inputs rows [t - W, t) (all F columns) and targets rows
[t, t + H) (the K target columns). A window belongs to the split that holds *all* its target rows; windows
whose targets straddle a split boundary are dropped, so no target of a later split is ever trained on.
Inputs of validation/test windows may reach back into earlier splits: that history is known at forecast time.

Scaling is fitted on the training rows only (rows [0, train_end)); fitting it on everything would leak the
test period's level and range into training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from torchworks.sequence.series import SeriesError


@dataclass
class Scaler:
    """Per-column affine scaling: scaled = (raw - center) / scale.

    Attributes:
        center, scale: (F,) float64.
        kind: "minmax" (to [0, 1] on the fitted rows) or "standard" (zero mean, unit variance).
    """

    center: np.ndarray
    scale: np.ndarray
    kind: str = "minmax"

    @classmethod
    def fit(cls, values: np.ndarray, kind: str = "minmax") -> Scaler:
        """Fits on ``values`` (N, F); constant columns get scale 1 (they would divide by zero)."""
        values = np.asarray(values, dtype=np.float64)
        if kind == "minmax":
            center, scale = values.min(0), values.max(0) - values.min(0)
        elif kind == "standard":
            center, scale = values.mean(0), values.std(0)
        else:
            raise ValueError(f"scaler kind must be 'minmax' or 'standard', got {kind!r}")
        return cls(center, np.where(scale > 0, scale, 1.0), kind)

    def transform(self, values: np.ndarray, columns: slice | list[int] | None = None) -> np.ndarray:
        """(..., F) raw -> scaled; ``columns`` picks the scaler entries when values hold only some columns."""
        c, s = (self.center, self.scale) if columns is None else (self.center[columns], self.scale[columns])
        return (np.asarray(values, dtype=np.float64) - c) / s

    def inverse_transform(self, values: np.ndarray, columns: slice | list[int] | None = None) -> np.ndarray:
        """(..., F) scaled -> raw (the inverse of :meth:`transform`)."""
        c, s = (self.center, self.scale) if columns is None else (self.center[columns], self.scale[columns])
        return np.asarray(values, dtype=np.float64) * s + c


@dataclass
class Split:
    """Row boundaries of the chronological splits: train [0, train_end), val [train_end, val_end),
    test [val_end, n)."""

    n: int
    train_end: int
    val_end: int


def chronological_split(n: int, window: int, horizon: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                        source: str = "series") -> Split:
    """Splits ``n`` rows in time order and checks that each split holds at least one window.

    Args:
        n: rows.
        window: W input steps; horizon: H steps ahead.
        fractions: (train, val, test), summing to 1; val may be 0 (then it is empty).
        source: name for messages.

    Raises:
        SeriesError: too few rows for the window and horizon (the message says how many are needed).
    """
    if window < 1 or horizon < 1:
        raise SeriesError(f"window and horizon must be >= 1, got window={window}, horizon={horizon}")
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6 or fractions[0] <= 0:
        raise ValueError(f"fractions must be (train > 0, val >= 0, test >= 0) summing to 1, got {fractions}")
    train_end = round(n * fractions[0])
    val_end = round(n * (fractions[0] + fractions[1]))
    need = {"train": window + horizon, "val": horizon if fractions[1] else 0, "test": horizon if fractions[2] else 0}
    have = {"train": train_end, "val": val_end - train_end, "test": n - val_end}
    short = [k for k in need if have[k] < need[k]]
    if short:
        smallest = min(fractions[i] for i, k in enumerate(need) if need[k])
        required = max(int(np.ceil((window + horizon) / fractions[0])), int(np.ceil(horizon / smallest)))
        raise SeriesError(f"{source} has {n} rows, too few for window={window} and horizon={horizon}: the "
                          f"{'/'.join(short)} split would hold no complete window (train needs >= {need['train']} "
                          f"rows, val/test >= {horizon} each); use at least {required} rows, or a smaller "
                          "window/horizon")
    return Split(n, train_end, val_end)


def window_starts(lo: int, hi: int, window: int, horizon: int) -> np.ndarray:
    """Forecast origins t whose target rows [t, t + H) lie in [lo, hi) and whose inputs start at >= 0."""
    return np.arange(max(lo, window), hi - horizon + 1)


def make_windows(values: np.ndarray, starts: np.ndarray, window: int, horizon: int,
                 targets: list[int]) -> tuple[Tensor, Tensor]:
    """Cuts windows at the given forecast origins.

    Args:
        values: (N, F) series (raw or scaled).
        starts: (M,) forecast origins t.
        window: W; horizon: H; targets: the K target column indices.

    Returns:
        ``(x, y)``: x (M, W, F) float32 rows [t - W, t); y (M, H, K) float32 rows [t, t + H) of the targets.
    """
    values = np.asarray(values)
    starts = np.asarray(starts, dtype=np.int64)
    if len(starts) and (starts.min() < window or starts.max() + horizon > len(values)):
        raise SeriesError(f"window origins must lie in [{window}, {len(values) - horizon}]")
    idx_in = starts[:, None] + np.arange(-window, 0)[None, :]  # (M, W)
    idx_out = starts[:, None] + np.arange(horizon)[None, :]  # (M, H)
    x = torch.as_tensor(values[idx_in], dtype=torch.float32)
    y = torch.as_tensor(values[idx_out][..., targets], dtype=torch.float32)
    return x, y


def time_series_folds(n_origins: int, k: int, gap: int = 0,
                      min_train: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window k-fold split of time-ordered samples (scikit-learn's ``TimeSeriesSplit`` scheme).

    The samples are cut into k + 1 consecutive blocks; fold i trains on blocks 0..i and validates on block
    i + 1, so validation always lies after training and nothing is shuffled.

    Args:
        n_origins: samples in time order.
        k: folds (>= 2).
        gap: training samples dropped just before each validation block; pass H - 1 for forecast windows,
            whose H target rows would otherwise overlap the first validation targets.
        min_train: optional minimum training size of the first fold.

    Returns:
        k pairs ``(train_indices, val_indices)``.
    """
    if k < 2:
        raise ValueError(f"k-fold cross-validation needs k >= 2, got {k}")
    block = n_origins // (k + 1)
    if block < 1 or (min_train is not None and n_origins - k * block < min_train):
        raise SeriesError(f"{n_origins} samples are too few for {k} time-ordered folds")
    first = n_origins - k * block
    if first - gap < 1:
        raise SeriesError(f"{n_origins} samples are too few for {k} time-ordered folds with a gap of {gap}")
    return [(np.arange(0, first + i * block - gap), np.arange(first + i * block, first + (i + 1) * block))
            for i in range(k)]


def kfold_indices(n: int, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffled k-fold split for independent samples (the memory tasks); every sample validates once."""
    if not 2 <= k <= n:
        raise ValueError(f"k must lie in [2, {n}], got {k}")
    order = np.random.default_rng(seed).permutation(n)
    folds = np.array_split(order, k)
    return [(np.sort(np.concatenate(folds[:i] + folds[i + 1:])), np.sort(folds[i])) for i in range(k)]

"""Error metrics and the baselines a forecaster must beat, on exactly the windows the model is scored on.

* persistence (naive): every step ahead repeats the last observed value, y_hat[t + h] = y[t - 1];
* seasonal naive: the value one season earlier, y_hat[t + h] = y[t + h - m * ceil((h + 1) / m)], i.e. the
  last observed season repeated (with m = 1 it equals persistence);
* drift: the line through the first and the last observed value extended, y_hat[t + h] = y[t - 1] +
  (h + 1) (y[t - 1] - y[0]) / (t - 1) (persistence plus the average change so far);
* ARIMA (optional, statsmodels): one model fitted on the training rows, then filtered through later rows with
  its parameters fixed, forecasting H steps from every test origin.

References:
    R. J. Hyndman & G. Athanasopoulos, "Forecasting: Principles and Practice", 3rd ed., section 5.2 (simple
    forecasting methods) and 5.8 (evaluating point forecast accuracy).
"""

from __future__ import annotations

import numpy as np


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    """Root mean squared error over all entries (original units)."""
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(true)) ** 2)))


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute error over all entries (original units)."""
    return float(np.mean(np.abs(np.asarray(pred) - np.asarray(true))))


def persistence(values: np.ndarray, starts: np.ndarray, horizon: int) -> np.ndarray:
    """Naive forecasts: (M, H, K) from series ``values`` (N, K) at forecast origins ``starts`` (M,)."""
    last = np.asarray(values)[np.asarray(starts) - 1]  # (M, K)
    return np.repeat(last[:, None, :], horizon, axis=1)


def seasonal_naive(values: np.ndarray, starts: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Seasonal-naive forecasts (M, H, K): the last observed value at the same phase of the season.

    Origins with fewer than ``season`` rows of history fall back to persistence for the missing lags.
    """
    values, starts = np.asarray(values), np.asarray(starts)
    if season < 1:
        raise ValueError(f"season must be >= 1, got {season}")
    h = np.arange(horizon)
    lag = season * np.ceil((h + 1) / season).astype(np.int64)  # whole seasons back from t + h
    idx = starts[:, None] + h[None, :] - lag[None, :]  # (M, H), always < t
    idx = np.where(idx >= 0, idx, starts[:, None] - 1)
    return values[idx]


def drift(values: np.ndarray, starts: np.ndarray, horizon: int) -> np.ndarray:
    """Drift (linear-trend) forecasts (M, H, K): the last value plus h + 1 times the mean step of the history.

    Args:
        values: (N, K) series.
        starts: (M,) forecast origins; origin t has seen rows [0, t).
        horizon: H.
    """
    values, starts = np.asarray(values, dtype=np.float64), np.asarray(starts)
    last = values[starts - 1]  # (M, K)
    steps = np.maximum(starts - 1, 1)[:, None]  # one row of history has no slope: t = 1 gives slope 0
    slope = (last - values[0][None, :]) / steps  # (M, K)
    h = np.arange(1, horizon + 1, dtype=np.float64)
    return last[:, None, :] + h[None, :, None] * slope[:, None, :]


def arima_forecasts(values: np.ndarray, train_end: int, starts: np.ndarray, horizon: int,
                    order: tuple[int, int, int] = (2, 1, 2)) -> np.ndarray | None:
    """ARIMA(p, d, q) fitted on rows [0, train_end), forecasting ``horizon`` steps from each origin.

    Args:
        values: (N,) one series (the target column).
        train_end: rows used for fitting the parameters.
        starts: (M,) forecast origins (all >= train_end).
        horizon: H.
        order: (p, d, q).

    Returns:
        (M, H, 1) forecasts, or None when statsmodels is not installed.
    """
    try:
        from statsmodels.tsa.arima.model import ARIMA
    except ImportError:
        return None
    import warnings

    values = np.asarray(values, dtype=np.float64).reshape(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on short or trending series
        fit = ARIMA(values[:train_end], order=order).fit()
        # Same parameters, state filtered through every row once; a dynamic prediction from t uses rows < t only.
        full = fit.apply(values[: int(np.max(starts)) + horizon])
        out = np.empty((len(starts), horizon))
        for i, t in enumerate(np.asarray(starts)):
            out[i] = full.predict(start=int(t), end=int(t) + horizon - 1, dynamic=True)
    return out[..., None]

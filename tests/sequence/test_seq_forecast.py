"""Forecasting end to end through the engine on a small synthetic CSV, and the diagnostics around it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchworks.core.checkpoint import load_model
from torchworks.sequence import baselines as bl
from torchworks.sequence.forecast_task import ForecastConfig, ForecastTask
from torchworks.sequence.forecasting import evaluate_pretrained, run_forecast


def test_task_scales_with_training_rows_only_and_windows_split_in_time(sine_csv):
    task = ForecastTask(ForecastConfig(csv=str(sine_csv), target="Value", features=["Other"], window=10,
                                       horizon=3))
    s = task.split
    assert (s.train_end, s.val_end) == (280, 340)
    train_values = task.series.values[:280]
    np.testing.assert_allclose(task.scaler.center, train_values.min(0))
    assert task.starts["train"].max() + 3 <= 280 and task.starts["val"].min() >= 280
    assert task.starts["test"].min() >= 340 and task.starts["test"].max() + 3 == 400
    x, y = task.windows("test", scaled=False)
    assert x.shape[1:] == (10, 2) and y.shape[1:] == (3, 1)
    t0 = int(task.starts["test"][0])
    assert y[0, :, 0].tolist() == pytest.approx(task.series.values[t0:t0 + 3, 0].tolist())


def test_lstm_beats_persistence_on_a_predictable_series_and_reloads_identically(sine_csv, tmp_path):
    report = run_forecast(sine_csv, "Value", horizon=3, window=20, steps=250, out_dir=tmp_path, lr=0.01)
    lstm, naive = report.errors["lstm"][0], report.errors["persistence"][0]
    # A noisy sine is predictable from its recent shape; repeating the last value is not (RMSE ~ 1.6).
    assert lstm < 0.5 * naive, report.lines()
    assert report.season == 7 and {"seasonal_naive(m=7)", "drift"} <= set(report.errors)
    assert report.verdict == "beats" and report.comparisons[report.best].p < 1e-6
    assert report.figure.is_file() and (tmp_path / "curves.png").is_file()
    model = load_model(report.model_path, expect="seq_forecaster")
    task = ForecastTask(ForecastConfig(csv=str(sine_csv), target="Value", window=20, horizon=3))
    x_raw, y_raw = task.windows("test", scaled=False)
    pred = model.predict(x_raw).double().numpy()
    assert bl.rmse(pred, y_raw.double().numpy()) == pytest.approx(lstm, rel=1e-6)  # same predictions after load
    again = evaluate_pretrained(sine_csv, str(report.model_path), out_dir=tmp_path / "again")
    assert again.errors == report.errors  # the saved file carries window, columns and scaler


def test_repeats_cv_finalize_and_early_stopping(sine_csv, tmp_path):
    report = run_forecast(sine_csv, "Value", horizon=1, window=10, steps=60, out_dir=tmp_path, repeats=2,
                          folds=2, finalize=True, hidden_size=8, patience=1, lr=1e-9)
    text = "\n".join(report.lines())
    assert "2 runs: LSTM test RMSE" in text and "+-" in text and (tmp_path / "runs.png").is_file()
    assert len(report.run_verdicts) == 2 and f"over the 2 seeds the LSTM beats {report.best} in " in text
    assert "2-fold time-ordered CV" in text and (tmp_path / "cv" / "fold1" / "metrics.csv").is_file()
    assert "final model on all 400 rows" in text and (tmp_path / "final" / "model.safetensors").is_file()
    # lr ~ 0: the validation loss cannot improve after the first evaluation, so patience 1 stops the run.
    assert "early stopping ended 2 of 2 run(s)" in text
    final = load_model(tmp_path / "final" / "model.safetensors")
    assert final.predict(torch.zeros(10, 1)).shape == (1, 1)

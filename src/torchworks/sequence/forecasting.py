"""``torchworks forecast``: train an LSTM forecaster through the engine and judge it against simple forecasts.

:func:`run_forecast` reads and checks the series (bad input fails before any training), trains ``seq_forecast``
(``repeats`` times with different seeds if asked, all curves in one figure with a fit verdict), scores the test
windows in original units against persistence, seasonal-naive and drift forecasts (and ARIMA when statsmodels
is installed and asked for), names the best simple one and whether the LSTM beats it, ties with it or does not
beat it (:mod:`torchworks.sequence.forecast_compare`), plots predictions vs truth, saves the model, and
optionally runs time-ordered k-fold cross-validation and a final fit on all data that forecasts past the end of
the series.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from torchworks.sequence import baselines as bl
from torchworks.sequence import diagnostics as dg
from torchworks.sequence import forecast_compare as fc
from torchworks.sequence.series import read_series
from torchworks.sequence.windowing import chronological_split

_TRAINER = {"batch_size": 32, "log_every": 5, "threads": 1, "progress": False, "tensorboard": False}


def forecast_config(csv: str | Path, target: str = "Close", horizon: int = 1, window: int = 30, *,
                    steps: int = 600, out_dir: str | Path = "runs/seq_forecast", seed: int = 0,
                    patience: int | None = None, **task: Any) -> dict[str, Any]:
    """Plain-data run config of ``seq_forecast`` (``task`` holds further :class:`ForecastConfig` fields)."""
    return {
        "task": {"name": "seq_forecast", "csv": str(csv), "target": target, "horizon": horizon, "window": window,
                 **task},
        # Evaluations on logging steps, so early stopping on the training loss (finalize) always has a value.
        "trainer": {**_TRAINER, "max_steps": steps, "eval_every": max(5, steps // 100 * 5),
                    "early_stopping_patience": patience, "plots": True},
        "seed": seed,
        "out_dir": str(out_dir),
    }


@dataclass
class ForecastReport:
    """Results of :func:`run_forecast`.

    Attributes:
        errors: method -> (RMSE, MAE) on the test windows ("lstm" is the first run's model).
        comparisons: baseline -> the LSTM against it (Diebold-Mariano); best: the best simple forecast.
        run_verdicts: with several seeds, each run's verdict against ``best``.
        reading: what reading the CSV decided (order, season, skipped rows); notes: everything else.
    """

    source: str
    target: str
    window: int
    horizon: int
    season: int
    n_rows: int
    n_test: int
    errors: dict[str, tuple[float, float]]
    comparisons: dict[str, fc.Comparison] = field(default_factory=dict)
    best: str = "persistence"
    lstm_rmse_runs: list[float] = field(default_factory=list)
    run_verdicts: list[str] = field(default_factory=list)
    figure: Path | None = None
    model_path: Path | None = None
    reading: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """"beats", "ties" or "does NOT beat": the LSTM against the best simple forecast."""
        return self.comparisons[self.best].verdict

    def lines(self) -> list[str]:
        head = (f"{Path(self.source).name} [{self.target}]: {self.n_rows} rows, window {self.window}, horizon "
                f"{self.horizon}, {self.n_test} test windows (chronological last part), season {self.season}")
        out = [head, *self.reading, *fc.table(self.errors, self.comparisons, self.best),
               fc.headline(self.comparisons[self.best])]
        if len(self.run_verdicts) > 1:
            n = self.run_verdicts.count
            out.append(f"over the {len(self.run_verdicts)} seeds the LSTM beats {self.best} in {n('beats')}, ties "
                       f"with it in {n('ties')} and does NOT beat it in {n('does NOT beat')}")
        out.append(fc.TIE_RULE)
        out += self.notes
        if self.figure:
            out.append(f"figure: {self.figure}")
        if self.model_path:
            out.append(f"model: {self.model_path}")
        return out


def run_forecast(csv: str | Path, target: str = "Close", horizon: int = 1, window: int = 30, *,
                 steps: int = 600, out_dir: str | Path = "runs/seq_forecast", seed: int = 0, repeats: int = 1,
                 folds: int = 0, finalize: bool = False, patience: int | None = None, season: int | None = None,
                 arima: bool = False, restore_best: bool = True, **task: Any) -> ForecastReport:
    """Trains, evaluates and reports an LSTM forecaster of one CSV column.

    Args:
        csv: the CSV file; target: the column to forecast; task["features"]: extra input columns.
        horizon: H steps ahead; window: W input steps.
        steps: training steps per run; patience: early stopping after this many evaluations without
            improvement of the validation loss (None: off).
        out_dir: where runs, figures and ``model.safetensors`` go.
        seed: seed of the first run; repeats: runs with seeds seed, seed + 1, ... (curves in one figure).
        folds: time-ordered cross-validation folds over train+val (0: none).
        finalize: also retrain on all rows and forecast the H values after the series ends.
        season: seasonal period of the seasonal-naive baseline (default: guessed from the date spacing, or
            from the autocorrelation when the file has no dates; the report says which).
        arima: also fit statsmodels' ARIMA(2, 1, 2) on the training rows (skipped if not installed).
        restore_best: score (and save) the weights of the best validation evaluation (``best.ckpt``), not
            the last step's; with early stopping the last weights are ``patience`` evaluations past the best.
        **task: other :class:`~torchworks.sequence.forecast_task.ForecastConfig` fields.

    Raises:
        SeriesError: missing column, NaNs, non-numbers, dates out of order or too few rows (before any training).
        ConfigError: ``season`` < 1.
    """
    from torchworks.core.checkpoint import save_model
    from torchworks.engine.run import train

    out_dir = Path(out_dir)
    series = read_series(csv, [target, *task.get("features", [])], task.get("date_column"))
    fractions = tuple(task.get("fractions", (0.7, 0.15, 0.15)))
    split = chronological_split(len(series.values), window, horizon, fractions, Path(csv).name)
    season = _season(series, season)
    cfg = forecast_config(csv, target, horizon, window, steps=steps, out_dir=out_dir, seed=seed, patience=patience,
                          **task)
    runs, test_rmse, curves, preds = [], [], [], []
    for r in range(repeats):
        run_cfg = {**cfg, "seed": seed + r, "out_dir": str(out_dir if repeats == 1 else out_dir / f"run{r}")}
        run = train(run_cfg, overwrite=True)
        if restore_best and run.best_checkpoint is not None:
            _load_best(run)
        pred, true = run.task.predict("test")
        runs.append(run)
        preds.append(pred)
        test_rmse.append(bl.rmse(pred, true))
        curves.append(dg.read_curves(run.metrics_csv))
    task0 = runs[0].task
    report, base = score_test_windows(series, task0.starts["test"], preds[0], true, horizon, window, season,
                                      split.train_end, arima, out_dir)
    report.lstm_rmse_runs = test_rmse
    if repeats > 1:
        report.run_verdicts = [fc.compare(p, {report.best: base[report.best]}, true, horizon)[report.best].verdict
                               for p in preds]
    report.model_path = save_model(out_dir / "model.safetensors", task0.model, spec=task0.export_model()[1],
                                   extra={"card": _card(report, cfg)})
    verdicts = [dg.diagnose(c.train, c.val) for c in curves if len(c.train) >= 4 and len(c.val) >= 2]
    if verdicts:
        report.notes.append(f"diagnosis: {dg.majority(verdicts)} ({verdicts[0].reason})")
    if repeats > 1:
        m, s = dg.mean_std(test_rmse)
        fig = dg.plot_runs(curves, out_dir / "runs.png",
                           title=f"{repeats} runs: " + ", ".join(f"{v.verdict}" for v in verdicts))
        report.notes.append(f"{repeats} runs: LSTM test RMSE {m:.4f} +- {s:.4f}; curves: {fig}")
    if any(r.stopped_early for r in runs):
        report.notes.append(f"early stopping ended {sum(r.stopped_early for r in runs)} of {repeats} run(s) "
                            f"(at step {runs[0].step} in run 0)")
    if folds:
        report.notes.append(cross_validate(cfg, folds, out_dir / "cv"))
    if finalize:
        report.notes.append(finalize_model(cfg, out_dir / "final", series))
    return report


def _season(series: Any, season: int | None) -> int:
    """The season to use: ``season`` if given (replacing the guess's note), else the one guessed on reading."""
    if season is None:
        return series.season
    if season < 1:
        from torchworks.core.errors import ConfigError

        raise ConfigError(f"season must be >= 1 (1: no seasonal naive), got {season}")
    series.notes = [n for n in series.notes if not n.startswith("season:")]
    series.notes.append(f"season: {season}, as given (the guess was {series.season})")
    return season


def score_test_windows(series: Any, starts: np.ndarray, pred: np.ndarray, true: np.ndarray, horizon: int,
                       window: int, season: int, train_end: int, arima: bool,
                       out_dir: Path) -> tuple[ForecastReport, dict[str, np.ndarray]]:
    """Scores LSTM forecasts and the baselines on the same windows, compares them and plots them.

    Args:
        series: the :class:`~torchworks.sequence.series.Series` (its notes become the report's reading lines).
        starts: (M,) forecast origins of the test windows; pred, true: (M, H, 1) in original units.
        season: seasonal-naive period (1: left out, it would be persistence); train_end: rows ARIMA is fitted on.

    Returns:
        The report and the baselines' forecasts (M, H, 1) by name.
    """
    y = series.values[:, :1]
    base = {"persistence": bl.persistence(y, starts, horizon)}
    notes = []
    if season > 1:
        base[f"seasonal_naive(m={season})"] = bl.seasonal_naive(y, starts, horizon, season)
    else:
        notes.append("seasonal naive left out: with season 1 it is persistence")
    base["drift"] = bl.drift(y, starts, horizon)
    if arima:
        p = bl.arima_forecasts(y[:, 0], train_end, starts, horizon)
        if p is not None:
            base["arima(2,1,2)"] = p
    errors = {"lstm": (bl.rmse(pred, true), bl.mae(pred, true))}
    errors.update({name: (bl.rmse(p, true), bl.mae(p, true)) for name, p in base.items()})
    report = ForecastReport(series.source, series.columns[0], window, horizon, season, len(series.values),
                            len(starts), errors, comparisons=fc.compare(pred, base, true, horizon),
                            best=fc.best_simple(errors), reading=[*series.notes, *notes])
    report.figure = plot_predictions(series, starts, pred, horizon, out_dir / "predictions.png",
                                     persistence=base["persistence"])
    return report, base


def evaluate_pretrained(csv: str | Path, name: str, target: str | None = None, season: int | None = None,
                        out_dir: str | Path = "runs/seq_forecast") -> ForecastReport:
    """Scores a shipped (or saved) forecaster on the test split of ``csv`` against the baselines; no training.

    The model carries its window, horizon and input columns; the CSV must hold those columns.

    Raises:
        ConfigError: ``target`` differs from the column the model forecasts.
        SeriesError: the CSV lacks a column, has gaps, or is too short.
    """
    import torch

    from torchworks.core.errors import ConfigError
    from torchworks.sequence import pretrained
    from torchworks.sequence.windowing import make_windows, window_starts

    model = pretrained.load(name)
    if not getattr(model, "columns", None) or not getattr(model, "window", None):
        raise ConfigError(f"{name} is not a forecaster saved with its window and columns")
    if target is not None and target != model.columns[0]:
        raise ConfigError(f"{name} forecasts column {model.columns[0]!r}, not {target!r}")
    series = read_series(csv, model.columns)
    W, H = model.window, model.horizon
    split = chronological_split(len(series.values), W, H, (0.7, 0.15, 0.15), Path(csv).name)
    starts = window_starts(split.val_end, len(series.values), W, H)
    x, y = make_windows(series.values, starts, W, H, [0])
    with torch.no_grad():
        pred = model.predict(x).double().numpy()
    report, _ = score_test_windows(series, starts, pred, y.double().numpy(), H, W, _season(series, season),
                                   split.train_end, False, Path(out_dir))
    report.notes.append(f"pretrained model {name} (no training)")
    return report


def _load_best(run: Any) -> None:
    from torchworks.core.checkpoint import load_weights
    from torchworks.engine.checkpointing import read_training_checkpoint

    load_weights(run.task, read_training_checkpoint(run.best_checkpoint)["task"], source=str(run.best_checkpoint))


def cross_validate(cfg: dict[str, Any], folds: int, out_dir: Path) -> str:
    """Time-ordered k-fold CV over the train+val rows; returns a line with the validation RMSE mean +- std."""
    from torchworks.engine.run import train

    lstm, naive = [], []
    for i in range(folds):
        fold_cfg = {**cfg, "task": {**cfg["task"], "folds": folds, "fold": i}, "out_dir": str(out_dir / f"fold{i}")}
        run = train(fold_cfg, overwrite=True)
        if run.best_checkpoint is not None:
            _load_best(run)
        task = run.task
        pred, true = task.predict("val")
        y = task.series.values[:, :1]
        lstm.append(bl.rmse(pred, true))
        naive.append(bl.rmse(bl.persistence(y, task.starts["val"], task.cfg.horizon), true))
    (m, s), (pm, ps) = dg.mean_std(lstm), dg.mean_std(naive)
    return (f"{folds}-fold time-ordered CV (validation RMSE): LSTM {m:.4f} +- {s:.4f}, persistence "
            f"{pm:.4f} +- {ps:.4f}")


def finalize_model(cfg: dict[str, Any], out_dir: Path, series: Any) -> str:
    """Retrains on every window of the series, saves it and forecasts the horizon after the last row."""
    import torch

    from torchworks.core.checkpoint import save_model
    from torchworks.engine.run import train

    # Nothing is held out, so there is nothing to stop early on: train the full budget.
    final_cfg = {**cfg, "task": {**cfg["task"], "finalize": True}, "out_dir": str(out_dir),
                 "trainer": {**cfg["trainer"], "early_stopping_patience": None}}
    task = train(final_cfg, overwrite=True).task
    path = save_model(out_dir / "model.safetensors", task.model, spec=task.export_model()[1])
    window = torch.as_tensor(series.values[-task.cfg.window:], dtype=torch.float32)
    ahead = task.model.predict(window)[:, 0].tolist()
    return (f"final model on all {len(series.values)} rows: {path}; next {len(ahead)} value(s) after "
            f"{series.dates[-1]}: {', '.join(f'{v:.4g}' for v in ahead)}")


def _card(report: ForecastReport, cfg: dict[str, Any]) -> dict[str, Any]:
    return {"data": report.source, "target": report.target, "recipe": cfg["task"], "steps": cfg["trainer"]["max_steps"],
            "test_rmse_mae": {k: list(v) for k, v in report.errors.items()},
            "vs_best_simple": {"baseline": report.best, "verdict": report.verdict,
                               "diebold_mariano_p": report.comparisons[report.best].p}}


def plot_predictions(series: Any, starts: np.ndarray, pred: np.ndarray, horizon: int, path: Path,
                     persistence: np.ndarray | None = None) -> Path:
    """Truth over the test period with the 1-step and H-step-ahead forecasts placed at their target times."""
    from matplotlib.figure import Figure

    lo = int(starts[0]) - 1
    hi = int(starts[-1]) + horizon
    t = np.arange(lo, hi)
    fig = Figure(figsize=(10, 4.2))
    ax = fig.subplots()
    ax.plot(t, series.values[lo:hi, 0], color="black", linewidth=1.2, label="truth")
    ax.plot(starts, pred[:, 0, 0], color="tab:blue", linewidth=1, label="LSTM, 1 step ahead")
    if horizon > 1:
        ax.plot(starts + horizon - 1, pred[:, -1, 0], color="tab:green", linewidth=1, alpha=0.8,
                label=f"LSTM, {horizon} steps ahead")
    if persistence is not None:
        ax.plot(starts + horizon - 1, persistence[:, -1, 0], color="tab:orange", linewidth=0.8, linestyle=":",
                label=f"persistence, {horizon} step(s) ahead")
    ticks = np.linspace(lo, hi - 1, 6).astype(int)
    ax.set_xticks(ticks, [series.dates[i] for i in ticks], fontsize="small")
    ax.set_ylabel(series.columns[0])
    ax.set_title(f"{Path(series.source).name}: test period, predictions vs truth")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path

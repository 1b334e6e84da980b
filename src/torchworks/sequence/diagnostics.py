"""Reading learning curves the way the seed note teaches: repeated runs in one figure and a fit verdict.

The verdict rule (:func:`diagnose`), on one run's training-loss curve and validation-loss curve:

1. **overfit** when the validation loss ended clearly above its own minimum,
   ``val[-1] > (1 + rise) * min(val)``, while the training loss kept near its best,
   ``smooth(train)[-1] <= (1 + rise) * min(smooth(train))``: the network still improves on the training data
   but has got worse on data it does not see.
2. **underfit** when (not overfit) the training loss was still falling at the end: its mean over the last
   quarter of the points is more than ``slope`` below its mean over the quarter before (more training helps),
   or when the validation loss never dropped, ``val[-1] >= (1 - slope) * val[0]`` (nothing was learnt; for
   a forecaster that starts at persistence on a random walk this is also what "nothing left to learn" looks
   like, so read it together with the baseline comparison).
3. **good fit** otherwise: both curves have levelled off and validation is at (or near) its best.

Defaults ``rise = 0.1`` and ``slope = 0.05``. ``smooth`` is a moving average over 5 points, since training
losses are logged per batch and jitter.

References:
    J. Brownlee, "How to Diagnose Overfitting and Underfitting of LSTM Models" (machinelearningmastery.com):
    the good-fit / underfit / overfit curve shapes and the multiple-runs plot.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VERDICTS = ("good fit", "underfit", "overfit")


@dataclass
class Curves:
    """One run's loss curves: ``train`` at ``train_steps`` and ``val`` at ``val_steps`` (lists of floats)."""

    train_steps: list[int]
    train: list[float]
    val_steps: list[int]
    val: list[float]


@dataclass
class Diagnosis:
    """A verdict (one of :data:`VERDICTS`) and the numbers that decided it."""

    verdict: str
    reason: str


def _smooth(values: Sequence[float], k: int = 5) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if len(v) < k:
        return v
    return np.convolve(v, np.ones(k) / k, mode="valid")


def diagnose(train: Sequence[float], val: Sequence[float], rise: float = 0.1, slope: float = 0.05) -> Diagnosis:
    """Classifies one run's curves as good fit / underfit / overfit by the rule in the module docstring.

    Args:
        train: training losses in time order (>= 4 points).
        val: validation losses in time order (>= 2 points).
        rise: relative rise of the validation loss above its minimum that counts as overfitting.
        slope: relative drop over the last quarter that counts as still learning.

    Raises:
        ValueError: too few points, or non-finite losses.
    """
    if len(train) < 4 or len(val) < 2:
        raise ValueError(f"diagnosis needs >= 4 training and >= 2 validation points, got {len(train)} and {len(val)}")
    if not all(math.isfinite(v) for v in [*train, *val]):
        raise ValueError("losses must be finite to diagnose a run (it diverged)")
    tr, va = _smooth(train), np.asarray(val, dtype=np.float64)
    if va[-1] > (1 + rise) * va.min() and tr[-1] <= (1 + rise) * tr.min():
        return Diagnosis("overfit", f"val loss ended at {va[-1]:.4g}, {va[-1] / va.min() - 1:.0%} above its minimum "
                                    f"{va.min():.4g} (step {int(va.argmin())} of {len(va)}) while train kept at "
                                    f"{tr[-1]:.4g}")
    q = max(1, len(tr) // 4)
    last, before = tr[-q:].mean(), tr[-2 * q:-q].mean() if len(tr) >= 2 * q else tr[:q].mean()
    if last < (1 - slope) * before:
        return Diagnosis("underfit", f"train loss still falling: last-quarter mean {last:.4g} is "
                                     f"{1 - last / before:.0%} below the quarter before ({before:.4g})")
    if va[-1] >= (1 - slope) * va[0]:
        return Diagnosis("underfit", f"val loss never dropped: {va[0]:.4g} -> {va[-1]:.4g}")
    return Diagnosis("good fit", f"both curves levelled off; val {va[-1]:.4g} within {rise:.0%} of its minimum "
                                 f"{va.min():.4g}, train {tr[-1]:.4g}")


def majority(diagnoses: Sequence[Diagnosis]) -> str:
    """The most common verdict of repeated runs (ties: the worse, overfit > underfit > good fit)."""
    counts = Counter(d.verdict for d in diagnoses)
    return max(VERDICTS, key=lambda v: (counts[v], VERDICTS.index(v)))


def read_curves(metrics_csv: str | Path, metric: str = "loss") -> Curves:
    """The ``train/<metric>`` and ``val/<metric>`` curves of an engine ``metrics.csv``."""
    from torchworks.engine.logging import read_csv

    rows, _ = read_csv(metrics_csv)
    tr = [(int(r["step"]), float(r[f"train/{metric}"])) for r in rows if f"train/{metric}" in r]
    va = [(int(r["step"]), float(r[f"val/{metric}"])) for r in rows if f"val/{metric}" in r]
    return Curves([s for s, _ in tr], [v for _, v in tr], [s for s, _ in va], [v for _, v in va])


def plot_runs(runs: Sequence[Curves], path: str | Path, title: str = "", log: bool = True) -> Path:
    """All runs' train (blue) and validation (orange) curves in one figure, the note's "multiple runs" plot."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for i, c in enumerate(runs):
        ax.plot(c.train_steps, c.train, color="tab:blue", alpha=0.6, linewidth=1, label="train" if i == 0 else None)
        ax.plot(c.val_steps, c.val, color="tab:orange", alpha=0.8, linewidth=1.5, marker="o", markersize=2.5,
                label="validation" if i == 0 else None)
    values = [v for c in runs for v in (*c.train, *c.val) if v > 0]
    if log and values and max(values) / min(values) > 30:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title or f"{len(runs)} runs")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0

"""Decisions the engine takes from evaluation results: which checkpoint is best, and when to stop early.

Both keep their state as plain data (``state_dict``/``load_state_dict``) so it is saved in every checkpoint and
a resumed run stops at the same evaluation an uninterrupted run would have.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


class BestMetric:
    """Tracks the best value of one metric.

    Args:
        monitor: metric name, e.g. ``"val/loss"``.
        mode: "min" if smaller is better, "max" if larger is better.
        min_delta: how much better than the best a value must be to count as an improvement.
    """

    def __init__(self, monitor: str, mode: str = "min", min_delta: float = 0.0) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"monitor_mode must be 'min' or 'max', got {mode!r}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta!r}")
        self.monitor = monitor
        self.mode = mode
        self.min_delta = float(min_delta)
        self.best: float | None = None
        self.best_step: int | None = None

    def is_improvement(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than ``min_delta`` (NaN never does)."""
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, value: float, step: int) -> bool:
        """Records ``value`` seen at ``step``; returns True if it is the new best."""
        if not self.is_improvement(value):
            return False
        self.best, self.best_step = float(value), int(step)
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "mode": self.mode, "best": self.best, "best_step": self.best_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        # A changed monitor or mode makes the old best meaningless: start over rather than compare apples
        # with pears.
        if state.get("monitor") != self.monitor or state.get("mode") != self.mode:
            return
        self.best = state.get("best")
        self.best_step = state.get("best_step")


class EarlyStopping:
    """Stops training after ``patience`` evaluations in a row without improvement.

    Patience counts evaluations, not steps, so it does not depend on ``eval_every``. Only evaluations that
    actually report the monitored metric count.

    Args:
        monitor: metric name, e.g. ``"val/loss"``.
        mode: "min" or "max".
        patience: evaluations without improvement tolerated before stopping.
        min_delta: smallest change that counts as an improvement.
    """

    def __init__(self, monitor: str, mode: str, patience: int, min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience!r}")
        self.tracker = BestMetric(monitor, mode, min_delta)
        self.patience = patience
        self.wait = 0
        self.stopped_step: int | None = None

    @property
    def monitor(self) -> str:
        return self.tracker.monitor

    def update(self, value: float, step: int) -> bool:
        """Feeds one evaluation's value; returns True when training should stop now."""
        if self.tracker.update(value, step):
            self.wait = 0
        else:
            self.wait += 1
        if self.wait >= self.patience:
            self.stopped_step = int(step)
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {**self.tracker.state_dict(), "wait": self.wait, "patience": self.patience,
                "stopped_step": self.stopped_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.tracker.load_state_dict(state)
        if self.tracker.best is not None:
            self.wait = int(state.get("wait", 0))
        # A resumed run that had stopped early may have been given more patience or steps: it continues,
        # and stops again only if the metric still does not improve.
        self.stopped_step = None


def describe(metrics: Mapping[str, float], limit: int = 4) -> str:
    """Short ``name=value`` text for progress output."""
    items = list(metrics.items())[:limit]
    return " ".join(f"{k}={v:.4g}" for k, v in items)

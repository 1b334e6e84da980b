"""The fit verdict on constructed curves (one per rule branch), and the multiple-runs figure."""

from __future__ import annotations

import numpy as np
import pytest

from torchworks.sequence.diagnostics import Curves, Diagnosis, diagnose, majority, mean_std, plot_runs

STEPS = np.arange(1, 101)


def test_converged_curves_are_a_good_fit():
    train = 0.1 + np.exp(-STEPS / 8)
    val = 0.12 + np.exp(-STEPS[::10] / 8)
    assert diagnose(train, val).verdict == "good fit"


def test_validation_rising_while_training_falls_is_overfit():
    train = 0.05 + np.exp(-STEPS / 10)
    v = STEPS[::10]
    val = 0.3 + 0.002 * (v - 30) ** 2 / 10  # U shape: minimum near step 30, ends 0.3 + 0.098
    d = diagnose(train, val)
    assert d.verdict == "overfit" and "above its minimum" in d.reason


def test_still_falling_training_loss_is_underfit():
    train = 2.0 - 0.015 * STEPS  # a straight line down: stopping now wastes the signal
    val = 2.1 - 0.015 * STEPS[::10]
    d = diagnose(train, val)
    assert d.verdict == "underfit" and "still falling" in d.reason


def test_flat_validation_loss_is_underfit():
    train = 1.0 + 0.01 * np.sin(STEPS)
    val = np.full(10, 1.0)
    d = diagnose(train, val)
    assert d.verdict == "underfit" and "never dropped" in d.reason


def test_rule_thresholds_are_respected():
    train = 0.05 + np.exp(-STEPS / 10)
    val = np.array([1.0, 0.5, 0.3, 0.30, 0.31, 0.32])  # 6.7 % above the minimum: below rise = 10 %
    assert diagnose(train, val).verdict == "good fit"
    assert diagnose(train, val, rise=0.05).verdict == "overfit"


def test_bad_curves_raise():
    with pytest.raises(ValueError, match=">= 4 training"):
        diagnose([1.0, 0.5], [1.0, 0.5])
    with pytest.raises(ValueError, match="finite"):
        diagnose([1.0, 0.5, np.nan, 0.2], [1.0, 0.5])


def test_majority_and_ties_prefer_the_worse_verdict():
    g, o, u = Diagnosis("good fit", ""), Diagnosis("overfit", ""), Diagnosis("underfit", "")
    assert majority([g, g, o]) == "good fit"
    assert majority([g, o]) == "overfit" and majority([g, u]) == "underfit"


def test_plot_runs_writes_one_figure(tmp_path):
    runs = [Curves(list(range(10)), list(np.linspace(1, 0.1, 10) + 0.01 * s), [0, 5, 9], [1.0, 0.4, 0.3])
            for s in range(3)]
    path = plot_runs(runs, tmp_path / "runs.png", title="3 runs")
    assert path.is_file() and path.stat().st_size > 5000
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0) and mean_std([4.0]) == (4.0, 0.0)

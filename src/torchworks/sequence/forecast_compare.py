"""Does the LSTM beat the best simple forecast? Per-window losses, the Diebold-Mariano test, the headline.

The simple forecasts are persistence, seasonal naive and drift (:mod:`torchworks.sequence.baselines`); the
best of them is the one with the lowest test RMSE. The LSTM "beats" it or "does NOT beat" it only when the
Diebold-Mariano test says the difference is unlikely to be noise; otherwise the two "tie".

Tie rule (stated in every report): the loss of a test window is its squared error averaged over the H steps;
the mean loss difference is divided by its standard error (autocovariances up to lag H - 1, since windows
H steps long overlap), scaled by the Harvey-Leybourne-Newbold small-sample factor and read against Student's
t with n - 1 degrees of freedom. p >= 0.05 (two-sided) is a tie. A fixed relative margin (say 1 %) would
call 22 noisy monthly windows a win and 6,000 hourly ones a tie for the same difference; the test scales
with how many windows there are and how much their errors vary.

References:
    F. X. Diebold & R. S. Mariano, "Comparing Predictive Accuracy", J. Business & Economic Statistics 13
    (1995); D. Harvey, S. Leybourne & P. Newbold, "Testing the equality of prediction mean squared errors",
    Int. J. Forecasting 13 (1997); M. Abramowitz & I. Stegun, "Handbook of Mathematical Functions", 26.7.3-4
    (Student's t distribution for integer degrees of freedom).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
SIMPLE = ("persistence", "seasonal_naive", "drift")
TIE_RULE = ("tie rule: 'beats' / 'does NOT beat' need a two-sided Diebold-Mariano test on the per-window squared "
            f"errors (HAC over H-1 lags, Harvey-Leybourne-Newbold correction) with p < {ALPHA}; otherwise 'ties'")


@dataclass
class Comparison:
    """The LSTM against one baseline on the same test windows.

    Attributes:
        baseline: the baseline's name; rmse_lstm, rmse_baseline: test RMSE of each.
        stat: the corrected Diebold-Mariano statistic (negative: the LSTM has the smaller loss).
        p: its two-sided p-value; n: the number of test windows.
    """

    baseline: str
    rmse_lstm: float
    rmse_baseline: float
    stat: float
    p: float
    n: int

    @property
    def verdict(self) -> str:
        """"beats", "ties" or "does NOT beat"."""
        if self.p >= ALPHA:
            return "ties"
        return "beats" if self.stat < 0 else "does NOT beat"

    def short(self) -> str:
        return f"{'loses' if self.verdict == 'does NOT beat' else self.verdict} (p{p_text(self.p, '=')})"


def p_text(p: float, eq: str = " = ") -> str:
    """``" = 0.0013"`` or ``" < 1e-10"`` (smaller p-values are beyond the precision of the t series)."""
    return f"{eq.replace('=', '<')}1e-10" if p < 1e-10 else f"{eq}{p:.2g}"


def window_losses(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(M,) squared error of each test window, averaged over its H steps and K targets; inputs (M, H, K)."""
    err = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return (err ** 2).reshape(len(err), -1).mean(1)


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int = 1) -> tuple[float, float]:
    """``(stat, p)``: the HLN-corrected Diebold-Mariano statistic of mean(loss_a - loss_b) and its two-sided
    p-value (Student t, n - 1 degrees of freedom).

    Args:
        loss_a, loss_b: (n,) per-window losses of two forecasts of the same targets.
        horizon: H; windows H steps long overlap, so autocovariances up to lag H - 1 enter the variance.
    """
    d = np.asarray(loss_a, dtype=np.float64) - np.asarray(loss_b, dtype=np.float64)
    n = len(d)
    if n < 3:
        return 0.0, 1.0  # nothing to test on
    mean = float(d.mean())
    c = d - mean
    gamma = [float(np.dot(c[k:], c[: n - k])) / n for k in range(min(horizon, n))]
    var = gamma[0] + 2 * sum(gamma[1:])
    if var <= 0:  # the rectangular kernel can go negative for H > 1; Bartlett weights cannot
        var = gamma[0] + 2 * sum((1 - k / horizon) * g for k, g in enumerate(gamma[1:], 1))
    if var <= 0:
        return (0.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
    hln = math.sqrt(max(n + 1 - 2 * horizon + horizon * (horizon - 1) / n, 1e-12) / n)
    stat = mean / math.sqrt(var / n) * hln
    return stat, t_two_sided_p(stat, n - 1)


def t_two_sided_p(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with integer ``df`` >= 1 (Abramowitz & Stegun 26.7.3-4, exact)."""
    if not math.isfinite(t):
        return 0.0
    theta = math.atan(abs(t) / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 1:
        total, term = 0.0, math.cos(theta) if df > 1 else 0.0
        for k in range(1, (df - 1) // 2 + 1):  # cos, (2/3) cos^3, (2*4)/(3*5) cos^5, ...
            total += term
            term *= c2 * (2 * k) / (2 * k + 1)
            if term < 1e-18:
                break
        inside = 2 / math.pi * (theta + s * total)
    else:
        total, term = 0.0, 1.0
        for k in range(1, df // 2 + 1):  # 1, (1/2) cos^2, (1*3)/(2*4) cos^4, ...
            total += term
            term *= c2 * (2 * k - 1) / (2 * k)
            if term < 1e-18:
                break
        inside = s * total
    return min(1.0, max(0.0, 1.0 - inside))


def compare(lstm: np.ndarray, baselines: dict[str, np.ndarray], true: np.ndarray,
            horizon: int) -> dict[str, Comparison]:
    """The LSTM's forecasts (M, H, K) against each baseline's, all scored on ``true`` (M, H, K)."""
    loss = window_losses(lstm, true)
    out = {}
    for name, pred in baselines.items():
        other = window_losses(pred, true)
        stat, p = diebold_mariano(loss, other, horizon)
        out[name] = Comparison(name, float(np.sqrt(loss.mean())), float(np.sqrt(other.mean())), stat, p, len(loss))
    return out


def best_simple(errors: dict[str, tuple[float, float]]) -> str:
    """The simple forecast (persistence, seasonal naive, drift) with the lowest RMSE in ``errors``."""
    simple = [k for k in errors if k.split("(")[0] in SIMPLE]
    return min(simple, key=lambda k: errors[k][0])


def headline(comparison: Comparison) -> str:
    """One sentence: the LSTM against the best simple forecast, with both RMSEs and the test's p-value."""
    c = comparison
    numbers = (f"RMSE {c.rmse_lstm:.4g} vs {c.rmse_baseline:.4g}, ratio {c.rmse_lstm / c.rmse_baseline:.3f}; "
               f"Diebold-Mariano p{p_text(c.p)} over {c.n} test windows")
    if c.verdict == "ties":
        return (f"the LSTM ties with the best simple forecast, {c.baseline} ({numbers}: the difference is within "
                "noise)")
    return f"the LSTM {c.verdict} the best simple forecast, {c.baseline} ({numbers})"


def table(errors: dict[str, tuple[float, float]], comparisons: dict[str, Comparison], best: str) -> list[str]:
    """Lines ``model  RMSE  MAE  RMSE / best simple  LSTM vs it`` for the LSTM and every baseline."""
    base = errors[best][0]
    width = max(16, *(len(k) + 2 for k in errors))
    lines = [f"{'model':<{width}}{'RMSE':>12}{'MAE':>12}{'RMSE / best simple':>21}   LSTM vs it"]
    for name, (r, a) in errors.items():
        mark = comparisons[name].short() if name in comparisons else ""
        if name == best:
            mark += "   <- best simple forecast"
        lines.append(f"{name:<{width}}{r:>12.4f}{a:>12.4f}{r / base:>21.3f}   {mark}".rstrip())
    return lines

"""Training curves as one PNG: a subplot per metric family, train and validation on the same axes.

A family is the metric name after its ``train/``/``val/`` prefix, so ``train/loss`` and ``val/loss`` share a
subplot while ``val/accuracy`` gets its own. The plot is drawn from ``metrics.csv``, so a resumed run's figure
covers the whole run, not only its last part.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from torchworks.engine.logging import read_csv

_STYLE = {"train": {"alpha": 0.8, "linewidth": 1.0}, "val": {"marker": "o", "markersize": 3, "linewidth": 1.5}}


def metric_families(columns: list[str]) -> dict[str, list[str]]:
    """Groups metric columns by family: ``["train/loss", "val/loss", "val/acc"]`` ->
    ``{"loss": ["train/loss", "val/loss"], "acc": ["val/acc"]}`` (``step``/``epoch`` are not metrics)."""
    families: dict[str, list[str]] = defaultdict(list)
    for col in columns:
        if col in ("step", "epoch"):
            continue
        prefix, sep, rest = col.partition("/")
        families[rest if sep else col].append(col)
    return dict(families)


def plot_curves(csv_path: str | Path, png_path: str | Path, title: str | None = None) -> Path | None:
    """Draws the curves of a metrics CSV into ``png_path``.

    Args:
        csv_path: a ``metrics.csv`` written by :class:`~torchworks.engine.logging.MetricLogger`.
        png_path: the PNG to write.
        title: optional figure title (e.g. the task name).

    Returns:
        ``png_path``, or None when the CSV holds no metric values (nothing to draw).

    Raises:
        ImportError: matplotlib is not installed (it comes with the ``[train]`` extra).
    """
    rows, columns = read_csv(csv_path)
    families = metric_families(columns)
    series = {col: [(r["step"], r[col]) for r in rows if col in r] for fam in families.values() for col in fam}
    families = {f: [c for c in cols if series[c]] for f, cols in families.items()}
    families = {f: cols for f, cols in families.items() if cols}
    if not families:
        return None

    # A bare Figure renders with Agg and touches no global pyplot state: no display needed, and the backend
    # of a notebook that called us is left alone.
    from matplotlib.figure import Figure

    n = len(families)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(4.5 * ncols, 3.2 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, (family, cols) in zip(axes.flat, sorted(families.items()), strict=False):
        values = []
        for col in cols:
            steps, ys = zip(*series[col], strict=True)
            style = _STYLE.get(col.partition("/")[0], {})
            ax.plot(steps, ys, label=col, **style)
            values += [y for y in ys if math.isfinite(y)]
        # Losses that span orders of magnitude are unreadable on a linear axis.
        if values and min(values) > 0 and max(values) / min(values) > 100:
            ax.set_yscale("log")
        ax.set_title(family)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    return png_path

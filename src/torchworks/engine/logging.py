"""Metric logs of a run: ``metrics.csv`` always, TensorBoard events in ``tb/`` when asked for and installed.

The CSV is wide: one row per step that logged anything, columns ``step, epoch`` and then one per metric
(``train/loss``, ``val/loss``, ...) in the order they first appeared; a metric not logged at a step is left
empty. Values are written with ``repr`` so they read back bit-exact. New metrics after the first rows widen the
header (the file is rewritten once per new name, which happens a handful of times per run).

On resume the rows after the resumed step are dropped first: they belong to the part of the old run that the
checkpoint does not contain, and the resumed run logs them again.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torchworks.core.atomic import atomic_path

CSV_NAME = "metrics.csv"
TB_DIR = "tb"


class MetricLogger:
    """Writes scalars to the CSV (and TensorBoard); a disabled logger (ranks other than 0) does nothing.

    Args:
        out_dir: the run directory.
        enabled: False on every rank but 0.
        tensorboard: also write TensorBoard events (skipped with a warning if tensorboard is not installed).
        resume_step: the step a resumed run continues from; None for a fresh run, which starts a new CSV.
    """

    def __init__(self, out_dir: str | Path, *, enabled: bool = True, tensorboard: bool = False,
                 resume_step: int | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.enabled = enabled
        self.csv_path = self.out_dir / CSV_NAME
        self.columns: list[str] = ["step", "epoch"]
        self._pending: dict[str, Any] | None = None
        self._writer: Any = None
        self._tb_dir: Path | None = None
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.csv_path.is_file():
            rows, columns = read_csv(self.csv_path)
            self.columns = columns or self.columns
            self._rewrite([r for r in rows if _as_int(r.get("step")) <= resume_step])
        else:
            self._rewrite([])
        if tensorboard:
            if resume_step is None:  # a fresh run: events of an earlier run in this directory would mix in
                for old in (self.out_dir / TB_DIR).glob("events.out.tfevents.*"):
                    old.unlink()
            self._writer = _tensorboard_writer(self.out_dir / TB_DIR, resume_step)
            self._tb_dir = self.out_dir / TB_DIR if self._writer is not None else None

    @property
    def tensorboard_dir(self) -> Path | None:
        """Where the events go, or None when TensorBoard is off."""
        return self._tb_dir

    def log(self, metrics: Mapping[str, float], step: int, epoch: int) -> None:
        """Adds ``metrics`` to the row of ``step`` (rows of the same step are merged)."""
        if not self.enabled or not metrics:
            return
        if self._pending is not None and self._pending["step"] != step:
            self.flush()
        if self._pending is None:
            self._pending = {"step": step, "epoch": epoch}
        self._pending["epoch"] = epoch
        for name, value in metrics.items():
            self._pending[name] = float(value)
            if self._writer is not None:
                self._writer.add_scalar(name, float(value), step)

    def flush(self) -> None:
        """Writes the pending row; called before every checkpoint so the log never lags behind one."""
        if not self.enabled:
            return
        if self._pending is not None:
            row, self._pending = self._pending, None
            new = [k for k in row if k not in self.columns]
            if new:
                rows, _ = read_csv(self.csv_path)
                self.columns += new
                self._rewrite([*rows, row])
            else:
                with self.csv_path.open("a", newline="", encoding="utf-8") as fh:
                    csv.writer(fh).writerow(_cells(row, self.columns))
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flushes and closes."""
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _rewrite(self, rows: list[Mapping[str, Any]]) -> None:
        with atomic_path(self.csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(self.columns)
            writer.writerows(_cells(r, self.columns) for r in rows)


def read_csv(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Reads a metrics CSV into rows of ``{column: float | int}`` (empty cells omitted) and its columns."""
    path = Path(path)
    if not path.is_file():
        return [], []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = list(reader.fieldnames or [])
        rows = []
        for raw in reader:
            row: dict[str, Any] = {}
            for key, cell in raw.items():
                if key is None or cell in (None, ""):
                    continue
                row[key] = int(cell) if key in ("step", "epoch") else float(cell)
            rows.append(row)
    return rows, columns


def _cells(row: Mapping[str, Any], columns: list[str]) -> list[str]:
    out = []
    for col in columns:
        value = row.get(col)
        if value is None:
            out.append("")
        elif isinstance(value, float):
            out.append(repr(value) if math.isfinite(value) else str(value))
        else:
            out.append(str(value))
    return out


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _tensorboard_writer(log_dir: Path, resume_step: int | None) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is an optional extra
        warnings.warn("tensorboard is not installed; logging to metrics.csv only "
                      "(pip install tensorboard, or set trainer.tensorboard=false)", stacklevel=3)
        return None
    # purge_step hides events an interrupted run wrote after the checkpoint we resume from.
    purge = resume_step + 1 if resume_step is not None else None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge)

"""Reading time series from CSV files, with the checks a forecasting run needs before it trains.

Only the standard library's ``csv`` is used (no pandas). A series comes back in chronological order: files
that list the newest row first (NSE-TATAGLOBAL.csv does) are reversed when their date column says so, since
every split and window downstream assumes time runs forward.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from torchworks.core.errors import DataError

_DATE_NAMES = ("date", "month", "time", "datetime", "timestamp", "day", "period")
_MISSING = {"", "na", "nan", "null", "none", "?", "n/a", "#n/a"}


class SeriesError(DataError):
    """A series that cannot be forecast as asked (missing column, NaNs, too short); a ``ValueError``."""


@dataclass
class Series:
    """A numeric (multivariate) series in time order.

    Attributes:
        values: (N, F) float64, one column per requested feature.
        columns: the F column names; the first ``n_targets`` are forecast.
        dates: the N date strings (or row numbers as strings when the file has no date column).
        source: where it came from (for messages and reports).
        season: the seasonal period guessed from the dates (12 monthly, 5 trading days, 7 daily, 24 hourly,
            1 unknown) for the seasonal-naive baseline.
    """

    values: np.ndarray
    columns: list[str]
    dates: list[str]
    source: str
    season: int = 1


def read_series(path: str | Path, columns: list[str] | str, date_column: str | None = None) -> Series:
    """Reads numeric ``columns`` of a CSV into a chronological :class:`Series`.

    Args:
        path: the CSV file (header row first).
        columns: column name(s); the first is the forecast target, the others are extra input features.
        date_column: the date column; default: the first column whose name looks like a date
            (Date, Month, time, ...), if any.

    Raises:
        FileNotFoundError: no such file.
        SeriesError: a column is absent (the message lists the available ones), a value is missing/NaN or not
            a number (the message gives the row), or the file has no data rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no CSV file at {path}")
    columns = [columns] if isinstance(columns, str) else list(columns)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        rows = [r for r in reader if any(cell.strip() for cell in r)]
    if not header:
        raise SeriesError(f"{path} is empty: expected a header row and data rows")
    lower = {h.lower(): i for i, h in enumerate(header)}
    index = []
    for name in columns:
        i = header.index(name) if name in header else lower.get(name.lower())
        if i is None:
            raise SeriesError(f"{path.name} has no column {name!r}; available columns: {', '.join(header)}")
        index.append(i)
    if date_column is None:
        date_i = next((i for i, h in enumerate(header) if h.lower() in _DATE_NAMES), None)
    elif date_column in header:
        date_i = header.index(date_column)
    else:
        raise SeriesError(f"{path.name} has no date column {date_column!r}; available columns: {', '.join(header)}")
    if not rows:
        raise SeriesError(f"{path} has a header but no data rows")
    values = np.empty((len(rows), len(index)))
    for r, row in enumerate(rows):
        for j, i in enumerate(index):
            cell = row[i].strip() if i < len(row) else ""
            values[r, j] = _number(cell, path, r + 2, header[i])
    dates = [row[date_i].strip() for row in rows] if date_i is not None else [str(r) for r in range(len(rows))]
    if date_i is not None and len(dates) > 1 and dates[0] > dates[-1] and _iso_like(dates[0]):
        values, dates = values[::-1].copy(), dates[::-1]  # newest-first file: put time forward
    return Series(values, [header[i] for i in index], dates, str(path), guess_season(dates))


def _number(cell: str, path: Path, line: int, column: str) -> float:
    if cell.lower() in _MISSING:
        raise SeriesError(f"{path.name} line {line}: column {column!r} is missing a value ({cell!r}); fill or "
                          "drop the gaps first (forecasting needs an evenly spaced series without NaNs)")
    try:
        value = float(cell.replace(",", "")) if re.fullmatch(r"[-+0-9.,eE]+", cell) else float(cell)
    except ValueError:
        raise SeriesError(f"{path.name} line {line}: column {column!r} holds {cell!r}, not a number") from None
    if not math.isfinite(value):
        raise SeriesError(f"{path.name} line {line}: column {column!r} is {cell!r}; a finite number is needed")
    return value


def _iso_like(date: str) -> bool:
    return bool(re.match(r"^\d{4}-\d{2}", date))


def guess_season(dates: list[str]) -> int:
    """Seasonal period from ISO-like date strings: 12 (YYYY-MM), 24 (hourly), 5 (weekdays only), 7 (daily), else 1."""
    sample = dates[: min(len(dates), 60)]
    if not sample or not all(_iso_like(d) for d in sample):
        return 1
    if all(re.fullmatch(r"\d{4}-\d{2}", d) for d in sample):
        return 12
    if all(re.search(r"[ T]\d{2}:\d{2}", d) for d in sample):
        return 24
    import datetime as dt

    try:
        days = [dt.date.fromisoformat(d[:10]) for d in sample]
    except ValueError:
        return 1
    weekend = sum(d.weekday() >= 5 for d in days)
    return 5 if weekend == 0 and len(days) >= 10 else 7

"""Reading time series from CSV files, with the checks a forecasting run needs before it trains.

Only the standard library's ``csv`` is used (no pandas). A series comes back in chronological order: files
that list the newest row first (NSE-TATAGLOBAL.csv does) are reversed when their parsed dates say so (ISO,
US ``8/1/1994``, ``Jan-1-1995``, ... see :mod:`torchworks.sequence.dates`), since every split and window
downstream assumes time runs forward. What was decided (order, season, skipped rows) is kept as notes.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from torchworks.core.errors import DataError
from torchworks.sequence.dates import DateInfo, parse_dates, season_from_values

_DATE_NAMES = ("date", "datetime", "timestamp", "time", "month", "day", "period", "ds", "week", "quarter", "year")
_PART_NAMES = {"year": "year", "quarter": "quarter", "qtr": "quarter", "month": "month", "day": "day",
               "hour": "hour"}
_MISSING = {"", "na", "nan", "null", "none", "?", "n/a", "#n/a"}


class SeriesError(DataError):
    """A series that cannot be forecast as asked (missing column, NaNs, too short); a ``ValueError``."""


@dataclass
class Series:
    """A numeric (multivariate) series in time order.

    Attributes:
        values: (N, F) float64, one column per requested feature.
        columns: the F column names; the first ``n_targets`` are forecast.
        dates: the N date strings as written in the file (or row numbers when it has no date column).
        source: where it came from (for messages and reports).
        season: the seasonal period guessed for the seasonal-naive baseline: from the date spacing (monthly 12,
            quarterly 4, weekly 52, daily 7, trading days 5, hourly 24, half-hourly 48, yearly 1), or without
            dates from the autocorrelation of the first 70 % of the rows.
        notes: what reading decided on the user's behalf (order, season, skipped rows), one line each.
    """

    values: np.ndarray
    columns: list[str]
    dates: list[str]
    source: str
    season: int = 1
    notes: list[str] = field(default_factory=list)


def read_series(path: str | Path, columns: list[str] | str, date_column: str | None = None) -> Series:
    """Reads numeric ``columns`` of a CSV into a chronological :class:`Series`.

    The date column is the one named ``date_column``, else the first whose name looks like a date (Date,
    Month, time, year, ...; separate year/quarter/month/day/hour columns are combined), else the first column
    whose cells all parse as dates. Files listing the newest row first are reversed. Incomplete rows at either
    end of the file (an empty or half-written last line) are skipped; a missing value inside the series is an
    error. Each such decision is one line of :attr:`Series.notes`.

    Args:
        path: the CSV file (header row first).
        columns: column name(s); the first is the forecast target, the others are extra input features.
        date_column: the date column; default: found as described above.

    Raises:
        FileNotFoundError: no such file.
        SeriesError: not a text CSV, a column is absent (the message lists the available ones), a value is
            missing/NaN or not a number (the message gives the line), the dates are out of order, or the file
            has no data rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no CSV file at {path}")
    columns = [columns] if isinstance(columns, str) else list(columns)
    header, lines, rows = _read_rows(path)
    lower = {h.lower(): i for i, h in enumerate(header)}
    index = []
    for name in columns:
        i = header.index(name) if name in header else lower.get(name.lower())
        if i is None:
            raise SeriesError(f"{path.name} has no column {name!r}; available columns: {', '.join(header)}")
        index.append(i)
    notes: list[str] = []
    lines, rows = _skip_incomplete_ends(path, header, index, lines, rows, notes)
    values = np.empty((len(rows), len(index)))
    for r, row in enumerate(rows):
        for j, i in enumerate(index):
            values[r, j] = _number(row[i].strip() if i < len(row) else "", path, lines[r], header[i])
    dates, info = _dates(path, header, index, rows, date_column, notes)
    season = 1
    if info is not None:
        if info.descending:
            values, dates = values[::-1].copy(), dates[::-1]  # every split and window assumes time runs forward
        notes.append(info.order_note())
        season = info.season
        if info.regular < 0.9:
            notes.append(f"dates: only {100 * info.regular:.0f} % of the steps are {info.step}; the gaps are "
                         "forecast across as if the rows were evenly spaced")
        notes.append(f"season: {season}, guessed from the dates (rows {info.step} apart: {info.cycle}); "
                     "override with --season M")
    else:
        season, why = season_from_values(values[: max(2, int(0.7 * len(values))), 0])
        notes.append(f"season: {season}, guessed from the values without dates ({why}, first 70 % of rows); "
                     "override with --season M")
    return Series(values, [header[i] for i in index], dates, str(path), season, notes)


def _read_rows(path: Path) -> tuple[list[str], list[int], list[list[str]]]:
    """Header, the file line of each non-blank data row, and the rows."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            lines, rows = [], []
            for row in reader:
                if row:  # a blank line has no cells; ",," has empty ones and counts as an incomplete row
                    lines.append(reader.line_num)
                    rows.append(row)
    except UnicodeDecodeError:
        raise SeriesError(f"{path} is not a text CSV file (it is not UTF-8 text; is it an image or a "
                          "spreadsheet?)") from None
    except csv.Error as exc:
        raise SeriesError(f"{path} is not a readable CSV file: {exc}") from None
    if not header:
        raise SeriesError(f"{path} is empty: expected a header row and data rows")
    if not rows:
        raise SeriesError(f"{path} has a header but no data rows")
    return header, lines, rows


def _skip_incomplete_ends(path: Path, header: list[str], index: list[int], lines: list[int],
                          rows: list[list[str]], notes: list[str]) -> tuple[list[int], list[list[str]]]:
    """Drops rows lacking a needed value at the start and end of the file, with a note naming them."""
    def incomplete(row: list[str]) -> bool:
        return any(i >= len(row) or row[i].strip().lower() in _MISSING for i in index)

    lo, hi = 0, len(rows)
    while lo < hi and incomplete(rows[hi - 1]):
        hi -= 1
    while lo < hi and incomplete(rows[lo]):
        lo += 1
    if lo == hi:
        raise SeriesError(f"{path.name}: no row has a value in every column of {', '.join(header[i] for i in index)}")
    for where, skipped in (("end", range(hi, len(rows))), ("start", range(lo))):
        if skipped:
            what = ", ".join(f"line {lines[k]} {','.join(rows[k])!r}" for k in list(skipped)[:3])
            more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
            notes.append(f"skipped {len(skipped)} incomplete row(s) at the {where} of the file ({what}{more}): "
                         f"a value of {'/'.join(header[i] for i in index)} is missing")
    keep = [k for k in range(lo, hi) if any(cell.strip() for cell in rows[k])]
    if len(keep) < hi - lo:
        empty = sorted(set(range(lo, hi)) - set(keep))
        shown = ", ".join(str(lines[k]) for k in empty[:5]) + (" ..." if len(empty) > 5 else "")
        notes.append(f"ignored {len(empty)} empty row(s) inside the file (line {shown})")
    return [lines[k] for k in keep], [rows[k] for k in keep]


def _dates(path: Path, header: list[str], index: list[int], rows: list[list[str]], date_column: str | None,
           notes: list[str]) -> tuple[list[str], DateInfo | None]:
    """The date strings of the rows and what they say (None: no usable date column; then row numbers)."""
    def cells(i: int) -> list[str]:
        return [row[i].strip() if i < len(row) else "" for row in rows]

    def parse(name: str, strings: list[str], digits_ok: bool = True) -> DateInfo | None:
        try:
            return parse_dates(strings, digits_ok)
        except ValueError as exc:
            raise SeriesError(f"{path.name} column {name!r}: {exc}") from None

    row_numbers = [str(r) for r in range(len(rows))]
    if date_column is not None:
        if date_column not in header:
            raise SeriesError(f"{path.name} has no date column {date_column!r}; available columns: "
                              f"{', '.join(header)}")
        strings = cells(header.index(date_column))
        info = parse(date_column, strings)
        if info is None:
            raise SeriesError(f"{path.name} column {date_column!r} holds no dates in a known format (first "
                              f"value {strings[0]!r})")
        return strings, info
    lower = [h.lower() for h in header]
    parts = {_PART_NAMES[h]: i for i, h in enumerate(lower) if h in _PART_NAMES and i not in index}
    if "year" in parts and len(parts) > 1:
        combined = _combine_parts(rows, parts)
        if combined is not None:
            names = "+".join(header[i] for i in parts.values())
            info = parse(names, combined)
            if info is not None:
                notes.append(f"dates: built from the columns {names}")
                return combined, info
    named = next((i for i, h in enumerate(lower) if h in _DATE_NAMES and i not in index), None)
    if named is not None:
        strings = cells(named)
        info = parse(header[named], strings)
        if info is not None:
            return strings, info
        notes.append(f"dates: column {header[named]!r} holds no dates in a known format (first value "
                     f"{strings[0]!r}): rows taken in file order")
        return row_numbers, None
    for i in range(len(header)):
        if i in index:
            continue
        strings = cells(i)
        info = parse(header[i], strings, digits_ok=False)
        if info is not None:
            return strings, info
    notes.append("dates: no date column found: rows taken in file order (name it with date_column / a Date header)")
    return row_numbers, None


def _combine_parts(rows: list[list[str]], parts: dict[str, int]) -> list[str] | None:
    """ISO strings from separate year / quarter / month / day / hour columns (None if any is not an integer)."""
    out = []
    for row in rows:
        try:
            v = {k: int(float(row[i])) for k, i in parts.items()}
        except (ValueError, IndexError):
            return None
        month = v.get("month", 3 * v["quarter"] - 2 if "quarter" in v else 1)
        s = f"{v['year']:04d}-{month:02d}-{v.get('day', 1):02d}"
        out.append(s + (f" {v['hour']:02d}:00" if "hour" in v else ""))
    return out


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


def guess_season(dates: list[str]) -> int:
    """Seasonal period implied by the spacing of date strings (1 when they are not dates); see
    :mod:`torchworks.sequence.dates`."""
    try:
        info = parse_dates(list(dates))
    except ValueError:
        return 1
    return 1 if info is None else info.season

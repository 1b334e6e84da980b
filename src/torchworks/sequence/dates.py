"""The date column of a series: which format it is in, which way time runs, and the seasonal period it implies.

A format is accepted only when it parses every date of the column. When several do (``3/1/1994`` is 1 March
in the US and 3 January elsewhere), the reading whose steps are the most regular wins, with steps measured on
the calendar (a month is one step whether it has 28 or 31 days); on a tie the US month-first reading wins.
Monthly US dates read day-first break their rhythm at every new year (``12/1/1980`` -> ``1/1/1981`` is a jump
of 355 days), so more than a year of rows settles the question.

The season follows from the usual step: monthly 12, quarterly 4, half-yearly 2, weekly 52, daily 7 (5 when fewer
than 1 in 20 dates falls on a weekend: trading days), and sub-daily steps the number of steps per day (hourly 24,
half-hourly 48); yearly and irregular steps have none (1). Files without dates fall back to
:func:`season_from_values`.

References:
    R. J. Hyndman & G. Athanasopoulos, "Forecasting: Principles and Practice", 3rd ed., section 2.1
    (frequency of a time series: the number of observations before the seasonal pattern repeats).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

# strptime formats tried on a date column, in this order; ISO (date, date + time) is tried first separately.
_FORMATS = ("%Y-%m", "%Y/%m/%d", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m", "%Y%m%d", "%Y",
            "%m/%d/%Y", "%d/%m/%Y", "%m/%d/%y", "%d/%m/%y", "%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M",
            "%m-%d-%Y", "%d-%m-%Y", "%d.%m.%Y", "%d.%m.%Y %H:%M",
            "%b-%d-%Y", "%b %d %Y", "%b %d, %Y", "%d-%b-%Y", "%d %b %Y", "%d-%b-%y", "%b-%Y", "%b %Y", "%Y %b",
            "%Y-%b", "%b-%y")
_DIGITS_ONLY = {"%Y", "%Y%m%d"}  # also parse plain numbers: used only on columns named like dates
_QUARTER = re.compile(r"^(\d{4})\s*[-/ ]?\s*Q([1-4])$", re.IGNORECASE)
_SECONDS_PER_DAY = 86400


@dataclass
class DateInfo:
    """What the date column says about a series.

    Attributes:
        times: the parsed dates, in file order.
        fmt: the format that parsed them ("ISO 8601", a strptime pattern, or "YYYY-Qn").
        descending: the file lists the newest row first.
        step: the usual step between rows, e.g. "1 month", "30 min", "1 day".
        season: the seasonal period implied by the step (1 when there is none).
        regular: the share of steps equal to the usual one.
        cycle: what the season repeats ("a yearly cycle", "a daily cycle", ...).
    """

    times: list[dt.datetime]
    fmt: str
    descending: bool
    step: str
    season: int
    regular: float
    cycle: str = ""

    def order_note(self) -> str:
        """One line saying which order was used, for the report."""
        first, last = (self.times[-1], self.times[0]) if self.descending else (self.times[0], self.times[-1])
        span = f"{_show(first)} .. {_show(last)}"
        fmt = self.fmt
        for code, shown in (("%Y", "YYYY"), ("%y", "YY"), ("%m", "MM"), ("%d", "DD"), ("%b", "Mon"), ("%H", "hh"),
                            ("%M", "mm"), ("%S", "ss")):
            fmt = fmt.replace(code, shown)
        if self.descending:
            return f"order: newest row first in the file (dates read as {fmt}): reversed to {span}"
        return f"order: oldest row first, as in the file (dates read as {fmt}): {span}"


def parse_dates(strings: list[str], digits_ok: bool = True) -> DateInfo | None:
    """Parses a date column and reads its order and spacing; None when no known format fits every entry.

    Args:
        strings: the column's cells in file order (stripped).
        digits_ok: also try formats made of digits only (``1700``, ``19580329``); off for columns found by
            content rather than by name, where numbers are far more likely values than years.

    Raises:
        ValueError: the dates parse but go both up and down, or repeat (the message names the first such row).
    """
    if len(strings) < 2:
        return None
    readings = list(_readings(strings, digits_ok))
    best: DateInfo | None = None
    for fmt, times in readings:
        descending = _direction(times)
        if descending is None:
            continue
        step, season, regular, cycle = spacing(times[::-1] if descending else times)
        info = DateInfo(times, fmt, descending, step, season, regular, cycle)
        if best is None or regular > best.regular + 1e-12:  # ties keep the earlier (US month-first) reading
            best = info
    if best is None and readings:
        raise ValueError(_disorder(strings, readings[0][1]))
    return best


def spacing(times: list[dt.datetime]) -> tuple[str, int, float, str]:
    """``(step, season, regular, cycle)`` of increasing ``times``: the usual calendar step, its seasonal
    period, the share of steps equal to it, and the cycle the season stands for."""
    steps = Counter(_step(a, b) for a, b in zip(times, times[1:], strict=False))
    (kind, size), count = steps.most_common(1)[0]
    regular = count / max(1, len(times) - 1)
    if kind == "month":
        name = {1: "1 month", 3: "1 quarter", 6: "half a year", 12: "1 year"}.get(size, f"{size} months")
        if size in (1, 2, 3, 4, 6):
            return name, 12 // size, regular, "a yearly cycle"
        return name, 1, regular, "no calendar cycle"
    if size == _SECONDS_PER_DAY and len(times) >= 10 and sum(t.weekday() >= 5 for t in times) < 0.05 * len(times):
        # Trading days (a few special weekend sessions allowed; calendar days have 2 in 7 on weekends):
        # Friday -> Monday is the usual weekend gap, not an irregularity.
        trading = sum(1 for a, b in zip(times, times[1:], strict=False) if (b - a).days in (1, 3))
        return "1 trading day", 5, trading / max(1, len(times) - 1), "a weekly cycle"
    if size == _SECONDS_PER_DAY:
        return "1 day", 7, regular, "a weekly cycle"
    if size == 7 * _SECONDS_PER_DAY:
        return "1 week", 52, regular, "a yearly cycle"
    if 0 < size < _SECONDS_PER_DAY and _SECONDS_PER_DAY % size == 0:
        return _duration(size), _SECONDS_PER_DAY // size, regular, "a daily cycle"
    return _duration(size), 1, regular, "no calendar cycle"


def season_from_values(values: np.ndarray, candidates: tuple[int, ...] = (4, 7, 12, 24, 48, 52)) -> tuple[int, str]:
    """Seasonal period of a series without dates, from the autocorrelation of its first differences.

    A candidate period m counts when the autocorrelation at lag m passes the seasonality test of the M4
    competition's benchmarks (|r_m| > 1.645 sqrt((1 + 2 sum_{k<m} r_k^2) / n), a 90 % one-sided Bartlett
    bound); of those, the one with the largest r_m wins. Differencing first keeps a trend from posing as a
    season.

    Args:
        values: (N,) the series (use the training rows only).
        candidates: the calendar periods considered.

    Returns:
        ``(season, reason)``; season 1 when no candidate passes.

    References:
        S. Makridakis et al., "The M4 Competition" (2020), benchmark code ``seasonality_test``.
    """
    x = np.diff(np.asarray(values, dtype=np.float64).reshape(-1))
    n = len(x)
    x = x - x.mean()
    denom = float(np.dot(x, x))
    usable = [m for m in candidates if 3 * m <= n]
    if denom == 0 or not usable:
        return 1, "too few rows (or a constant series) to test any period"
    r = np.array([1.0] + [float(np.dot(x[:-k], x[k:])) / denom for k in range(1, max(usable) + 1)])
    passing = []
    for m in usable:
        limit = 1.645 * math.sqrt((1 + 2 * float(np.sum(r[1:m] ** 2))) / n)
        if r[m] > limit:
            passing.append((r[m], m, limit))
    if not passing:
        return 1, f"no autocorrelation peak at lags {', '.join(map(str, usable))} of the differenced series"
    rm, m, limit = max(passing)
    return m, f"autocorrelation {rm:.2f} at lag {m} of the differenced series (> {limit:.2f}, M4 seasonality test)"


def _readings(strings: list[str], digits_ok: bool):
    """Yields ``(format name, parsed dates)`` for every format that parses all of ``strings``."""
    head = strings[:50]
    iso = _parse_all(head, dt.datetime.fromisoformat)
    if iso is not None and all(re.match(r"^\d{4}-\d{2}-\d{2}", s) for s in head):
        full = _parse_all(strings, dt.datetime.fromisoformat)
        if full is not None:
            yield "ISO 8601", full
    if all(_QUARTER.match(s) for s in strings):
        yield "YYYY-Qn", [dt.datetime(int(m[1]), 3 * int(m[2]) - 2, 1) for m in map(_QUARTER.match, strings)]
    for fmt in _FORMATS:
        if fmt in _DIGITS_ONLY and not digits_ok:
            continue
        if _parse_all(head, lambda s, f=fmt: dt.datetime.strptime(s, f)) is None:
            continue
        full = _parse_all(strings, lambda s, f=fmt: dt.datetime.strptime(s, f))
        if full is not None:
            yield fmt, full


def _parse_all(strings: list[str], parse) -> list[dt.datetime] | None:
    out = []
    for s in strings:
        try:
            out.append(parse(s))
        except ValueError:
            return None
    return out


def _direction(times: list[dt.datetime]) -> bool | None:
    """False: increasing, True: decreasing (newest first), None: neither (out of order or repeated)."""
    if all(a < b for a, b in zip(times, times[1:], strict=False)):
        return False
    if all(a > b for a, b in zip(times, times[1:], strict=False)):
        return True
    return None


def _disorder(strings: list[str], times: list[dt.datetime]) -> str:
    ascending = times[-1] >= times[0]
    for i in range(1, len(times)):
        if times[i] == times[i - 1]:
            return (f"dates repeat: data rows {i} and {i + 1} are both {strings[i]}; one row per time step is "
                    "needed (does the file hold several series, one after the other or interleaved?)")
        if (times[i] < times[i - 1]) if ascending else (times[i] > times[i - 1]):
            return (f"dates are out of order: data row {i + 1} ({strings[i]}) comes after row {i} "
                    f"({strings[i - 1]}); sort the file by date (either direction), or keep one series if it "
                    "holds several")
    return "the dates cannot order the rows"


def _step(a: dt.datetime, b: dt.datetime) -> tuple[str, int]:
    """The calendar step from a to b: ("month", k) when they fall on the same day of the month (or both on
    its last day) at the same time, else ("seconds", s)."""
    same_day = a.day == b.day or (_last_day(a) and _last_day(b))
    months = 12 * (b.year - a.year) + b.month - a.month
    if same_day and a.time() == b.time() and months > 0:
        return "month", months
    return "seconds", round((b - a).total_seconds())


def _last_day(t: dt.datetime) -> bool:
    return (t + dt.timedelta(days=1)).month != t.month


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("min", 60)):
        if seconds % size == 0 and seconds >= size:
            k = seconds // size
            return f"{k} {unit}" + ("s" if k > 1 and unit != "min" else "")
    return f"{seconds} s"


def _show(t: dt.datetime) -> str:
    return t.isoformat(sep=" ") if t.time() != dt.time() else t.date().isoformat()

"""Forecasting is judged against the best simple forecast: season from the date spacing, time order from parsed
dates, incomplete end rows skipped, the drift baseline, the Diebold-Mariano tie rule and the headline wording.

Every CSV is small, synthetic and written here; nothing trains except one short CLI run.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from torchworks.cli import sequence_cmd
from torchworks.core.errors import ConfigError
from torchworks.sequence import baselines as bl
from torchworks.sequence import forecast_compare as fc
from torchworks.sequence.forecasting import run_forecast, score_test_windows
from torchworks.sequence.series import SeriesError, read_series


def _write(tmp_path: Path, dates: list[str], values, name: str = "s.csv", header: str = "Date,Value",
           tail: str = "") -> Path:
    path = tmp_path / name
    path.write_text(header + "\n" + "".join(f"{d},{v}\n" for d, v in zip(dates, values, strict=True)) + tail)
    return path


def _months(n: int, fmt: str = "{y:04d}-{m:02d}-01", start: int = 1980) -> list[str]:
    return [fmt.format(y=start + i // 12, m=i % 12 + 1) for i in range(n)]


def _steps(n: int, delta: dt.timedelta, fmt: str, start=dt.datetime(2021, 3, 1)) -> list[str]:
    return [(start + i * delta).strftime(fmt) for i in range(n)]


def _weekdays(n: int) -> list[str]:
    days, d = [], dt.date(2018, 1, 1)
    while len(days) < n:
        if d.weekday() < 5:
            days.append(d.isoformat())
        d += dt.timedelta(days=1)
    return days


# ---- the season guess ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dates, season, step", [
    (_months(40), 12, "1 month"),  # 1980-01-01 style: the issue saw 7 here
    (_months(40, "{m}/1/{y}"), 12, "1 month"),
    ([f"{1990 + i // 4}-Q{i % 4 + 1}" for i in range(30)], 4, "1 quarter"),
    (_months(90, "{y:04d}-{m:02d}-01")[::3], 4, "1 quarter"),
    (_steps(200, dt.timedelta(minutes=30), "%d/%m/%Y %H:%M"), 48, "30 min"),
    (_steps(100, dt.timedelta(hours=1), "%Y-%m-%d %H:%M"), 24, "1 hour"),
    (_steps(60, dt.timedelta(days=1), "%Y-%m-%d"), 7, "1 day"),
    (_weekdays(60), 5, "1 trading day"),
    (_steps(80, dt.timedelta(weeks=1), "%Y-%m-%d"), 52, "1 week"),
    ([str(1900 + i) for i in range(50)], 1, "1 year"),
])
def test_season_follows_the_date_spacing_and_the_note_says_how_to_override(tmp_path, dates, season, step):
    s = read_series(_write(tmp_path, dates, range(len(dates))), "Value")
    assert s.season == season
    note = next(n for n in s.notes if n.startswith("season:"))
    assert note.startswith(f"season: {season}, guessed from the dates (rows {step} apart")
    assert "override with --season M" in note


def test_a_given_season_replaces_the_guess_and_says_so(tmp_path):
    from torchworks.sequence.forecasting import _season

    s = read_series(_write(tmp_path, _months(40), range(40)), "Value")
    assert _season(s, None) == 12
    assert _season(s, 4) == 4
    assert [n for n in s.notes if n.startswith("season:")] == ["season: 4, as given (the guess was 12)"]


def test_month_end_dates_count_as_monthly(tmp_path):
    ends = [(dt.date(2000 + (i + 1) // 12, (i + 1) % 12 + 1, 1) - dt.timedelta(days=1)).isoformat() for i in range(30)]
    assert ends[1] == "2000-02-29"
    assert read_series(_write(tmp_path, ends, range(30)), "Value").season == 12


def test_without_dates_the_season_comes_from_the_autocorrelation(tmp_path):
    rng = np.random.default_rng(1)
    t = np.arange(120)
    seasonal = 50 + 0.3 * t + 8 * np.sin(2 * np.pi * t / 12) + rng.standard_normal(120)
    path = tmp_path / "nodates.csv"
    path.write_text("Sales\n" + "".join(f"{v:.3f}\n" for v in seasonal))
    s = read_series(path, "Sales")
    assert s.season == 12 and s.dates[:2] == ["0", "1"]
    assert any(n.startswith("season: 12, guessed from the values without dates (autocorrelation") for n in s.notes)
    assert any(n.startswith("dates: no date column found") for n in s.notes)
    path.write_text("Sales\n" + "".join(f"{v:.3f}\n" for v in np.cumsum(rng.standard_normal(120))))
    assert read_series(path, "Sales").season == 1  # a random walk has no season


# ---- the order ------------------------------------------------------------------------------------------

def test_newest_first_us_dates_are_reversed_and_the_order_is_said(tmp_path):
    dates = _months(30, "{m}/1/{y}", start=1992)[::-1]  # 6/1/1994 first ... 1/1/1992 last, as in the issue
    s = read_series(_write(tmp_path, dates, range(30)), "Value")
    assert s.values[:, 0].tolist() == list(range(29, -1, -1))  # time runs forward: the file's last row first
    assert s.dates[0] == "1/1/1992" and s.dates[-1] == "6/1/1994"
    assert "order: newest row first in the file (dates read as MM/DD/YYYY): reversed to 1992-01-01 .. 1994-06-01" \
        in s.notes


def test_day_first_dates_are_read_day_first_and_ambiguity_goes_to_the_regular_reading(tmp_path):
    days = _steps(40, dt.timedelta(days=1), "%d/%m/%Y", start=dt.datetime(2021, 1, 1))  # 13/01/2021 is day first
    s = read_series(_write(tmp_path, days, range(40), name="d.csv"), "Value")
    assert s.season == 7 and any("dates read as DD/MM/YYYY" in n for n in s.notes)
    # 1/1/1980, 2/1/1980, ... parse both ways; only month-first gives an even step across the new year.
    s = read_series(_write(tmp_path, _months(26, "{m}/1/{y}"), range(26), name="m.csv"), "Value")
    assert s.season == 12 and any("oldest row first, as in the file (dates read as MM/DD/YYYY)" in n
                                  for n in s.notes)


def test_iso_newest_first_and_out_of_order_dates(tmp_path):
    s = read_series(_write(tmp_path, ["2018-09-28", "2018-09-27", "2018-09-26"], [1, 2, 3]), "Value")
    assert s.values[:, 0].tolist() == [3, 2, 1]
    with pytest.raises(SeriesError, match=r"dates are out of order: data row 3 \(2001-03-01\) comes after row 2"):
        read_series(_write(tmp_path, ["2001-01-01", "2001-04-01", "2001-03-01", "2001-05-01"], range(4)), "Value")
    with pytest.raises(SeriesError, match=r"dates repeat: data rows 2 and 3 are both 2001-02-01"):
        read_series(_write(tmp_path, ["2001-01-01", "2001-02-01", "2001-02-01", "2001-03-01"], range(4)), "Value")


def test_year_and_quarter_columns_are_combined(tmp_path):
    path = tmp_path / "macro.csv"
    path.write_text("year,quarter,gdp\n" + "".join(f"{1959 + i // 4},{i % 4 + 1},{100 + i}\n" for i in range(24)))
    s = read_series(path, "gdp")
    assert s.season == 4 and s.dates[:2] == ["1959-01-01", "1959-04-01"]


# ---- incomplete rows ------------------------------------------------------------------------------------

def test_incomplete_trailing_rows_are_skipped_with_a_note(tmp_path):
    path = _write(tmp_path, _months(24), range(24), tail="1982-01-01,\n,\n")
    s = read_series(path, "Value")
    assert len(s.values) == 24 and s.values[-1, 0] == 23
    assert "skipped 2 incomplete row(s) at the end of the file (line 26 '1982-01-01,', line 27 ','): a value of " \
        "Value is missing" in s.notes
    # newest-first: the newest (first) row is the half-written one
    path = _write(tmp_path, _months(24)[::-1], range(24), header="Date,Value\n1982-01-01,NA")
    s = read_series(path, "Value")
    assert len(s.values) == 24 and any("at the start of the file (line 2 '1982-01-01,NA')" in n for n in s.notes)


def test_a_gap_inside_the_series_is_still_an_error(tmp_path):
    values = [str(v) for v in range(24)]
    values[10] = ""
    with pytest.raises(SeriesError, match="line 12: column 'Value' is missing a value"):
        read_series(_write(tmp_path, _months(24), values), "Value")


# ---- baselines and the tie rule -------------------------------------------------------------------------

def test_drift_extends_the_line_through_the_first_and_last_value():
    y = np.array([1.0, 2.0, 4.0, 7.0, 11.0])[:, None]
    d = bl.drift(y, np.array([3, 5]), 2)
    # origin 3: last 4, slope (4 - 1) / 2 = 1.5; origin 5: last 11, slope (11 - 1) / 4 = 2.5
    np.testing.assert_allclose(d[:, :, 0], [[5.5, 7.0], [13.5, 16.0]])
    line = 3.0 + 0.5 * np.arange(40.0)[:, None]
    starts = np.arange(5, 35)
    truth = line[starts[:, None] + np.arange(3)]
    assert bl.rmse(bl.drift(line, starts, 3), truth) < 1e-12  # exact on a straight line
    assert bl.rmse(bl.persistence(line, starts, 3), truth) > 0.5


def test_student_t_p_values_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 9, 21, 58, 1001):
        for t in (0.0, 0.3, 1.0, 2.1, -2.1, 4.0, 9.0):
            assert fc.t_two_sided_p(t, df) == pytest.approx(2 * stats.t.sf(abs(t), df), abs=1e-10)


def test_diebold_mariano_at_horizon_1_is_the_paired_t_test():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    a, b = rng.gamma(2.0, size=40), rng.gamma(2.2, size=40)
    stat, p = fc.diebold_mariano(a, b, horizon=1)
    ref = stats.ttest_rel(a, b)
    assert stat == pytest.approx(ref.statistic, rel=1e-9) and p == pytest.approx(ref.pvalue, rel=1e-7)


def _dm_reference(d, h, weights):
    n = len(d)
    c = d - d.mean()
    gamma = [np.dot(c[k:], c[:n - k]) / n for k in range(h)]
    var = gamma[0] + 2 * sum(w * g for w, g in zip(weights, gamma[1:], strict=True))
    return d.mean() / np.sqrt(var / n) * np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)


def test_diebold_mariano_horizon_uses_the_overlap_autocovariance():
    smooth = np.array([0.5, 0.6, 0.7, 0.4, 0.3, 0.5, 0.8, 0.9, 0.6, 0.4, 0.2, 0.3])  # overlapping windows: smooth
    assert fc.diebold_mariano(smooth, np.zeros(12), horizon=3)[0] == pytest.approx(_dm_reference(smooth, 3, [1, 1]))
    # Where the rectangular kernel gives a negative variance, Bartlett weights (1 - k/H) are used instead.
    jumpy = np.array([0.5, -0.2, 0.9, 0.1, -0.4, 0.7, 0.3, 0.2, -0.1, 0.6])
    assert fc.diebold_mariano(jumpy, np.zeros(10), horizon=3)[0] == pytest.approx(
        _dm_reference(jumpy, 3, [2 / 3, 1 / 3]))


def test_tie_rule_the_issues_near_equal_rmse_ties_and_a_clear_gap_does_not():
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((300, 1, 1)) * 5.58
    base = np.zeros_like(truth)
    near = base + rng.standard_normal(truth.shape) * 0.05  # RMSE within 0.1 % of the baseline's
    c = fc.compare(near, {"persistence": base}, truth, 1)["persistence"]
    assert abs(c.rmse_lstm / c.rmse_baseline - 1) < 0.003 and c.verdict == "ties" and c.p >= 0.05
    good = truth * 0.5
    c = fc.compare(good, {"persistence": base}, truth, 1)["persistence"]
    assert c.verdict == "beats" and c.p < 1e-6 and c.stat < 0
    c = fc.compare(base, {"drift": good}, truth, 1)["drift"]
    assert c.verdict == "does NOT beat" and c.stat > 0
    assert fc.diebold_mariano(np.ones(10), np.ones(10)) == (0.0, 1.0)  # identical forecasts tie


# ---- the headline -------------------------------------------------------------------------------------------

def _seasonal_series(tmp_path: Path) -> tuple:
    t = np.arange(120)
    y = 100 + 20 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(0).standard_normal(120)
    s = read_series(_write(tmp_path, _months(120), [f"{v:.4f}" for v in y]), "Value")
    starts = np.arange(100, 120)
    true = s.values[starts][:, None, :]
    return s, starts, true


def test_headline_names_the_best_simple_forecast_not_persistence(tmp_path):
    s, starts, true = _seasonal_series(tmp_path)
    # Wine-sales case of the issue: an LSTM far better than persistence but worse than seasonal naive.
    lstm = (0.5 * bl.persistence(s.values, starts, 1) + 0.5 * true) + 3.0
    report, _ = score_test_windows(s, starts, lstm, true, 1, 12, s.season, 84, False, tmp_path)
    assert report.best == "seasonal_naive(m=12)" and set(report.errors) == {
        "lstm", "persistence", "seasonal_naive(m=12)", "drift"}
    assert report.errors["lstm"][0] < report.errors["persistence"][0]
    text = report.lines()
    assert any(ln.startswith("the LSTM does NOT beat the best simple forecast, seasonal_naive(m=12) (RMSE ")
               for ln in text), text
    assert not any("beats persistence" in ln for ln in text)
    assert "season: 12, guessed from the dates" in "\n".join(text) and fc.TIE_RULE in text


def test_headline_says_beats_and_ties(tmp_path):
    s, starts, true = _seasonal_series(tmp_path)
    report, base = score_test_windows(s, starts, true + 0.01, true, 1, 12, s.season, 84, False, tmp_path)
    assert report.verdict == "beats" and any(
        ln.startswith("the LSTM beats the best simple forecast, seasonal_naive(m=12) (RMSE 0.01 vs") for ln in
        report.lines())
    tie = base["seasonal_naive(m=12)"] + np.where(np.arange(20) % 2, 0.01, -0.01)[:, None, None]
    report, _ = score_test_windows(s, starts, tie, true, 1, 12, s.season, 84, False, tmp_path)
    line = next(ln for ln in report.lines() if ln.startswith("the LSTM"))
    assert report.verdict == "ties"
    assert line.startswith("the LSTM ties with the best simple forecast, seasonal_naive(m=12)") and "p = " in line


def test_season_1_leaves_seasonal_naive_out(tmp_path):
    s, starts, true = _seasonal_series(tmp_path)
    report, _ = score_test_windows(s, starts, true, true, 1, 12, 1, 84, False, tmp_path)
    assert "seasonal_naive(m=1)" not in report.errors and report.best in ("persistence", "drift")
    assert "seasonal naive left out: with season 1 it is persistence" in report.lines()


# ---- the CLI --------------------------------------------------------------------------------------------

def test_cli_prints_order_season_skipped_rows_and_the_headline(tmp_path, capsys):
    t = np.arange(60)
    y = 100 + 10 * np.sin(2 * np.pi * t / 12) + t
    dates = _months(60, "{m}/1/{y}", start=1990)
    path = _write(tmp_path, dates[::-1], [f"{v:.2f}" for v in y[::-1]], tail="1/1/1985,\n")
    code = sequence_cmd.main(["forecast", "--csv", str(path), "--column", "Value", "--window", "6", "--steps", "10",
                              "--hidden", "4", "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0
    assert "order: newest row first in the file (dates read as MM/DD/YYYY): reversed to 1990-01-01 .. 1994-12-01" \
        in out
    assert "season: 12, guessed from the dates (rows 1 month apart: a yearly cycle); override with --season M" in out
    assert "skipped 1 incomplete row(s) at the end of the file (line 62 '1/1/1985,')" in out
    headline = next(ln for ln in out.splitlines() if ln.startswith("the LSTM "))
    assert any(w in headline for w in ("beats the best", "ties with the best", "does NOT beat the best"))
    assert fc.TIE_RULE in out


def test_bad_season_and_non_text_files_are_one_line_errors(sine_csv, tmp_path, capsys):
    code = sequence_cmd.main(["forecast", "--csv", str(sine_csv), "--column", "Value", "--season", "0",
                              "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "season must be >= 1" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()  # nothing written before the input is known to be good
    with pytest.raises(ConfigError, match="season must be >= 1"):
        run_forecast(sine_csv, "Value", season=0, out_dir=tmp_path / "o")
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(SeriesError, match="is not a text CSV file"):
        read_series(png, "Value")
    assert sequence_cmd.main(["forecast", "--csv", str(png), "--column", "Value"]) == 2
    err = capsys.readouterr().err
    assert "CSV" in err and err.count("\n") == 1 and "Traceback" not in err

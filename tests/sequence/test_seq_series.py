"""CSV series: chronological order, and bad input reported as DataError with the offending detail."""

from __future__ import annotations

import numpy as np
import pytest

from torchworks.core.errors import DataError
from torchworks.sequence import baselines as bl
from torchworks.sequence.series import SeriesError, guess_season, read_series


def _csv(tmp_path, text, name="s.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_newest_first_files_are_put_in_time_order(tmp_path):
    p = _csv(tmp_path, "Date,Open,Close\n2018-09-28,1,10\n2018-09-27,2,20\n2018-09-26,3,30\n")
    s = read_series(p, ["Close", "Open"])
    assert s.dates == ["2018-09-26", "2018-09-27", "2018-09-28"]
    assert s.values.tolist() == [[30, 3], [20, 2], [10, 1]]
    assert s.columns == ["Close", "Open"]


def test_missing_column_lists_the_available_ones(tmp_path):
    p = _csv(tmp_path, "Date,Open,Close\n2018-09-28,1,10\n")
    with pytest.raises(SeriesError, match=r"no column 'Price'; available columns: Date, Open, Close") as info:
        read_series(p, "Price")
    assert isinstance(info.value, DataError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("cell, match", [("NA", "missing a value"), ("", "missing a value"), ("nan", "missing"),
                                         ("abc", "not a number"), ("inf", "finite")])
def test_gaps_and_garbage_name_the_line(tmp_path, cell, match):
    p = _csv(tmp_path, f"Month,Sales\n1960-01,5\n1960-02,{cell}\n1960-03,7\n")
    with pytest.raises(SeriesError, match=rf"line 3: column 'Sales'.*{match}"):
        read_series(p, "Sales")


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_series(tmp_path / "nope.csv", "x")
    with pytest.raises(SeriesError, match="no data rows"):
        read_series(_csv(tmp_path, "A,B\n"), "A")


def test_season_guess():
    assert guess_season(["1949-01", "1949-02", "1949-03"]) == 12
    weekdays = [f"2018-09-{d:02d}" for d in (3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 17, 18)]
    assert guess_season(weekdays) == 5
    assert guess_season([f"1981-01-{d:02d}" for d in range(1, 15)]) == 7
    assert guess_season(["a", "b"]) == 1


def test_real_series_load_in_order():
    from torchworks.data import dataset_path

    try:
        root = dataset_path("stockprice_tataglobal")
    except Exception:
        pytest.skip("stockprice_tataglobal not available locally")
    s = read_series(root / "NSE-TATAGLOBAL.csv", "Close")
    assert len(s.values) == 2035 and s.dates[0] < s.dates[-1] and s.season == 5


def test_persistence_and_seasonal_naive_values():
    y = np.arange(30.0)[:, None]
    starts = np.array([10, 20])
    p = bl.persistence(y, starts, 3)
    assert p[:, :, 0].tolist() == [[9, 9, 9], [19, 19, 19]]
    sn = bl.seasonal_naive(y, starts, 5, season=4)
    # h = 0..4 -> rows t-4, t-3, t-2, t-1, then t (= t+4-4 is not known yet) -> wraps to t-4 again
    assert sn[0, :, 0].tolist() == [6, 7, 8, 9, 6]
    periodic = np.tile([1.0, 5.0, 2.0], 20)[:, None]
    st = np.arange(9, 50)
    truth = periodic[st[:, None] + np.arange(4)]
    assert bl.rmse(bl.seasonal_naive(periodic, st, 4, 3), truth) == 0.0
    assert bl.rmse(bl.persistence(periodic, st, 4), truth) > 1.0
    assert bl.mae(np.array([1.0, 3.0]), np.array([2.0, 2.0])) == 1.0
    assert bl.rmse(np.array([0.0, 4.0]), np.array([0.0, 0.0])) == pytest.approx(np.sqrt(8))

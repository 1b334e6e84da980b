"""Windowing, scaling fitted on training rows only, chronological splits and time-ordered folds."""

from __future__ import annotations

import numpy as np
import pytest

from torchworks.core.errors import DataError, TorchworksError
from torchworks.sequence.windowing import (
    Scaler,
    chronological_split,
    kfold_indices,
    make_windows,
    time_series_folds,
    window_starts,
)


def test_windows_of_a_ramp_hold_the_exact_rows():
    values = np.stack([np.arange(20.0), 100 + np.arange(20.0)], axis=1)  # (20, 2)
    x, y = make_windows(values, np.array([3, 10]), window=3, horizon=2, targets=[1])
    assert x.shape == (2, 3, 2) and y.shape == (2, 2, 1)
    assert x[0, :, 0].tolist() == [0, 1, 2] and x[1, :, 1].tolist() == [107, 108, 109]
    assert y[0, :, 0].tolist() == [103, 104] and y[1, :, 0].tolist() == [110, 111]


def test_window_origins_respect_the_split_they_belong_to():
    s = chronological_split(100, window=10, horizon=5, fractions=(0.6, 0.2, 0.2))
    assert (s.train_end, s.val_end) == (60, 80)
    train = window_starts(0, s.train_end, 10, 5)
    val = window_starts(s.train_end, s.val_end, 10, 5)
    test = window_starts(s.val_end, 100, 10, 5)
    assert train[0] == 10 and train[-1] + 5 == 60  # last train target row is 59
    assert val[0] == 60 and val[-1] + 5 == 80
    assert test[0] == 80 and test[-1] + 5 == 100


def test_scaler_is_fitted_on_training_rows_only_and_inverts():
    values = np.concatenate([np.linspace(0, 10, 70), np.linspace(50, 60, 30)])[:, None]
    sc = Scaler.fit(values[:70])
    assert sc.center[0] == 0 and sc.scale[0] == 10  # the later jump to 50..60 is not seen
    scaled = sc.transform(values)
    assert scaled[:70].min() == 0 and scaled[:70].max() == 1 and scaled[70:].min() == pytest.approx(5.0)
    np.testing.assert_allclose(sc.inverse_transform(scaled), values)
    st = Scaler.fit(values[:70], "standard")
    np.testing.assert_allclose(st.transform(values[:70]).mean(), 0, atol=1e-12)
    const = Scaler.fit(np.ones((5, 1)))
    assert const.scale[0] == 1.0  # no division by zero


def test_too_few_rows_is_a_data_error_that_says_how_many():
    with pytest.raises(DataError, match=r"has 20 rows, too few for window=30.*at least") as info:
        chronological_split(20, window=30, horizon=1)
    assert isinstance(info.value, ValueError) and isinstance(info.value, TorchworksError)
    with pytest.raises(DataError, match="val/test"):
        chronological_split(60, window=10, horizon=20, fractions=(0.8, 0.1, 0.1))


def test_time_series_folds_expand_and_never_look_back():
    folds = time_series_folds(50, k=4, gap=2)
    assert len(folds) == 4
    for i, (tr, va) in enumerate(folds):
        assert tr.max() + 2 < va.min()  # validation after training, with the gap purged
        assert len(va) == 10
        if i:
            assert len(tr) > len(folds[i - 1][0])
    assert folds[-1][1][-1] == 49
    with pytest.raises(ValueError, match="k >= 2"):
        time_series_folds(50, k=1)


def test_kfold_indices_partition_the_samples():
    folds = kfold_indices(23, 5, seed=1)
    vals = np.concatenate([v for _, v in folds])
    assert sorted(vals.tolist()) == list(range(23))
    for tr, va in folds:
        assert not set(tr) & set(va) and len(tr) + len(va) == 23

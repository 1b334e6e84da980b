"""Single-threaded and seeded: the sequence suite shares 2 cores with other work and must be reproducible."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread_seeded():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def sine_csv(tmp_path):
    """A 400-row daily CSV: a period-20 sine plus small noise in 'Value', and a second column 'Other'."""
    import datetime as dt

    import numpy as np

    rng = np.random.default_rng(0)
    t = np.arange(400)
    value = 10 + 3 * np.sin(2 * np.pi * t / 20) + 0.05 * rng.standard_normal(400)
    other = np.cos(2 * np.pi * t / 20)
    path = tmp_path / "sine.csv"
    day0 = dt.date(2000, 1, 1)
    lines = ["Date,Value,Other"] + [f"{day0 + dt.timedelta(days=i)},{v:.6f},{o:.6f}" for i, (v, o) in
                                    enumerate(zip(value, other, strict=True))]
    path.write_text("\n".join(lines) + "\n")
    return path

"""The photo-size benchmark times real API calls and refuses a method that touches known pixels."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "inpainting"))
import bench_photo_sizes as bench  # noqa: E402


def test_quick_run_writes_a_row_per_method(tmp_path):
    out = tmp_path / "doc.md"
    out.write_text("# Results\n")
    assert bench.main(["--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Results\n") and "<!-- photo_sizes:start -->" in text
    for name in ("telea", "ns", "lama_small (4.8 M), fp32", "lama_small (4.8 M), bf16"):
        assert "| 512x512 | " in text and f"| {name} | " in text


def test_hole_covers_a_few_percent_and_the_check_catches_a_pipeline_that_leaks(monkeypatch):
    import torchworks.inpainting as api

    mask = bench.hole(400, 300)
    assert mask.shape == (300, 400) and 0.01 < (mask > 0).mean() < 0.2
    img = bench.photo(400, 300)
    sec, n = bench.time_one("telea", img, mask, 1)
    assert sec >= 0 and 0 < n <= int(np.count_nonzero(mask))

    def leaky(image, mask, method, **kw):  # a pipeline that broke its bit-exact promise
        out = image.copy()
        out[0, 0] = 255 - out[0, 0]
        return out

    mask[:20, :20] = 0
    monkeypatch.setattr(api, "inpaint", leaky)
    with pytest.raises(AssertionError, match="outside the dilated hole"):
        bench.time_one("telea", img, mask, 1)

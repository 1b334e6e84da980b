"""issue 20's long-run script: the smoothed training curves it draws, and which runs it finds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "inpainting"))
import train_scenes as ts  # noqa: E402


def _metrics(path: Path, rows: list[tuple[int, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("step,epoch,train/l1_hole\n" + "".join(f"{s},0,{v}\n" for s, v in rows))


def test_series_is_a_trailing_mean_over_the_window(tmp_path):
    _metrics(tmp_path / "m.csv", [(50, 4.0), (100, 2.0), (150, 6.0), (200, 0.0)])
    steps, values = ts._series(tmp_path / "m.csv", "train/l1_hole", 2)
    assert steps == [50, 100, 150, 200]
    assert values == pytest.approx([4.0, 3.0, 4.0, 3.0])  # (4), (4+2)/2, (2+6)/2, (6+0)/2


def test_curves_draw_the_runs_found_and_refuse_an_empty_folder(tmp_path):
    results = tmp_path / "results"
    for model, seed in (("lama", 0), ("relama", 1)):
        _metrics(ts.run_dir(results, ts.SCENES128, ts.run_id("scenes", model, seed)) / "metrics.csv",
                 [(50 * k, 0.2 - 0.01 * k) for k in range(1, 9)])
    png = ts.curves(results, tmp_path / "out" / "c.png")
    from PIL import Image

    assert Image.open(png).size == (1100, 380)
    with pytest.raises(SystemExit, match="no metrics.csv"):
        ts.curves(tmp_path / "empty", tmp_path / "x.png")

"""The speed benchmark's machinery: interleaved timing, paired ratios, the report, and the reference import."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "inpainting"
sys.path[:0] = [str(BENCH), str(BENCH.parent)]
_spec = importlib.util.spec_from_file_location("tw_inpaint_bench_speed", BENCH / "bench_speed.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

from _common import read_section  # noqa: E402
from lama_reference import find_source, reference_generator_class  # noqa: E402


def test_interleaved_times_rotate_the_order_and_time_each_call():
    log: list[str] = []
    ticks = iter(range(1000))
    candidates = {n: (lambda n=n: log.append(n)) for n in ("a", "b", "c")}
    times = bench.interleaved_times(candidates, repeats=3, warmup=1, clocks={"t": lambda: float(next(ticks))})
    assert log == ["a", "b", "c", "a", "b", "c", "b", "c", "a", "c", "a", "b"]  # warm-up, then rotated rounds
    assert times == {"t": {"a": [1.0, 1.0, 1.0], "b": [1.0, 1.0, 1.0], "c": [1.0, 1.0, 1.0]}}


def test_paired_ratio_is_the_median_of_per_repeat_ratios():
    # per-repeat ratios 0.5, 2.0, 1.0: median 1.0, although the medians of the series give 4 / 2 = 2
    assert bench.paired_ratio([1.0, 4.0, 5.0], [2.0, 2.0, 5.0]) == 1.0
    with pytest.raises(ValueError, match="equally long"):
        bench.paired_ratio([1.0], [1.0, 2.0])


def test_plan_cells():
    cells = bench.plan_cells(["lama_fourier", "lama_small"], [256, 512], [1, 2])
    assert cells == [("lama_fourier", 256, 1), ("lama_fourier", 512, 1), ("lama_small", 256, 1),
                     ("lama_small", 512, 1), ("lama_fourier", 256, 2), ("lama_fourier", 512, 2)]
    assert len(bench.plan_cells(["a", "b"], [1], [1, 2], small_one_thread=False)) == 4


def _row(model="lama_tiny", ratio=0.95):
    times = {c: {k: [0.1, 0.1] for k in ("ours", "reference", "relama", "channels_last", "bf16")}
             for c in ("wall", "cpu")}
    ratios = {"reference": 1 / ratio, "relama": 1.08, "channels_last": 0.9, "bf16": 0.7}
    return {"model": model, "size": 256, "threads": 1, "repeats": 2, "load_before": 3.0, "load_after": 5.0,
            "compile": "", "ref_max_abs_diff": 0.0, "channels_last_max_abs_diff": 1e-7, "bf16_max_abs_diff": 0.004,
            "times": times, "median_s": {"ours": 0.1, "reference": 0.105}, "median_cpu_s": {},
            "ratio_vs_ours_wall": ratios, "ratio_vs_ours_cpu": ratios, "ours_over_reference_wall": ratio,
            "ours_over_reference_cpu": ratio}


def test_report_states_the_verdict_and_the_ratios(tmp_path):
    meta = {"command": "python bench_speed.py", "date": "2026-01-01", "seconds": 10.0, "machine": "m",
            "torch": "2", "reference": "786f593", "load_min": 3.0, "load_max": 5.0}
    md = bench.report([_row()], meta)
    assert "| lama_tiny | 256 | 1 | 2 | 100 | 105 | **0.950 / 0.950** | 1.08 / 1.08 | 0.90 / 0.90 | 0.70 / 0.70 | - |" \
        in md
    assert "at least as fast as the reference in every row" in md and "lama_tiny +" in md
    assert "above 1 in at least one row (worst 1.020)" in bench.report([_row(), _row(ratio=1.02)], meta)


def test_an_oversubscribed_row_is_withdrawn_and_left_out_of_the_findings():
    # the 2-thread row spends 8.6x the CPU time of the 1-thread row on the same forward: threads spun waiting
    one, two = _row(), _row()
    two.update(threads=2, load_before=5.0, load_after=5.0, median_cpu_s={"ours": 7.64},
               ratio_vs_ours_cpu={**two["ratio_vs_ours_cpu"], "relama": 1.24, "bf16": 1.26})
    one["median_cpu_s"] = {"ours": 0.89}
    assert bench.withdrawn([one, two]) == {("lama_tiny", 256, 2): pytest.approx(7.64 / 0.89)}
    two["median_cpu_s"] = {"ours": 1.2}  # 1.35x: the cost of a second thread, kept
    assert bench.withdrawn([one, two]) == {}
    two["median_cpu_s"] = {"ours": 7.64}
    meta = {"command": "c", "date": "d", "seconds": 1.0, "machine": "m", "cores": 2, "torch": "t", "reference": "r",
            "load_min": 3.0, "load_max": 5.0}
    md = bench.report([one, two], meta)
    assert "| lama_tiny | 256 | 2 |" not in md and "costs x1.08-x1.08 the CPU time" in md
    assert "bf16 autocast x0.70-x0.70" in md and "load average 3.0-5.0 on 2 cores" in md
    assert ("Withdrawn pending a re-run on a quiet machine: lama_tiny 256 px 2 threads (its CPU time per forward was "
            "8.6x that of the 1-thread row, load average 5.0-5.0") in md
    assert "ReLaMa x1.24 and bf16 x1.26, measure contention" in md


@pytest.mark.skipif(find_source() is None, reason="no advimman/lama checkout or mirror (TORCHWORKS_LAMA_REF)")
def test_reference_imports_from_a_temporary_copy_and_one_cell_times(tmp_path):
    with reference_generator_class() as ref_cls:
        copy_dir = Path(sys.modules["saicinpainting"].__file__).parents[1]
        assert copy_dir.exists() and str(copy_dir) in sys.path
        row = bench.time_cell("lama_tiny", ref_cls, 32, 1, repeats=1)
    assert not copy_dir.exists() and str(copy_dir) not in sys.path  # deleted on exit, nothing vendored
    assert not any(k.startswith("saicinpainting") for k in sys.modules)
    assert row["ref_max_abs_diff"] == 0.0  # same weights, same output: equal architecture
    assert row["bf16_max_abs_diff"] < 0.05 and row["channels_last_max_abs_diff"] < 1e-5
    assert set(row["times"]["wall"]) == {"ours", "reference", "relama", "channels_last", "bf16", "bf16_cl"}
    assert row["bf16_cl_max_abs_diff"] < 0.05 and row["bf16_cl_over_reference_cpu"] > 0
    assert all(len(v) == 1 for v in row["times"]["cpu"].values())
    assert torch.get_num_threads() == 1
    path = tmp_path / "doc.md"
    path.write_text("# R\n")
    bench.write_section(path, "speed", bench.report([row], {"command": "c", "date": "d", "seconds": 1.0,
                                                            "machine": "m", "torch": "t", "reference": "r",
                                                            "load_min": 1.0, "load_max": 1.0}))
    assert path.read_text().startswith("# R\n") and "lama_tiny | 32 | 1 | 1" in read_section(path.read_text(), "speed")
    assert f"lama_tiny 32 px 1 thr **x{row['bf16_cl_over_reference_cpu']:.2f}**" in read_section(path.read_text(),
                                                                                                 "speed")

"""bench_vit's report logic: seed repeats grouped under their base run."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "transformer"))
import bench_vit  # noqa: E402


def test_seed_repeats_group_under_their_base_run_in_seed_order():
    results = {"a": {"test_acc": 0.70}, "a_seed2": {"test_acc": 0.72}, "a_seed1": {"test_acc": 0.68},
               "b": {"test_acc": 0.5}, "orphan_seed1": {"test_acc": 0.1}}
    groups = bench_vit.seed_groups(results)
    assert list(groups) == ["a"]  # b has no repeat; orphan has no base run
    assert [k for k, _ in groups["a"]] == [0, 1, 2]
    assert [r["test_acc"] for _, r in groups["a"]] == [0.70, 0.68, 0.72]


def test_seed_verdict_counts_runs_at_goal_and_judges_the_mean():
    assert bench_vit.seed_verdict([90.3, 90.1], 90.2, 90.0) == ": every run meets the 90 % goal."
    text = bench_vit.seed_verdict([70.1, 69.8, 71.0], 70.3, 70.0)
    assert text.startswith(": 2 of 3 runs meet the 70 % goal and the mean meets it")
    assert "the mean misses it" in bench_vit.seed_verdict([70.9, 69.0], 69.95, 70.0)

"""bench_vit's report logic: seed repeats grouped under their base run."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks" / "transformer"))
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


def test_same_seed_recipes_pick_plain_vits_of_one_data_set_and_seed(monkeypatch):
    monkeypatch.setattr(bench_vit, "RUNS", [("v", "ViT", "CIFAR-10", 0.7), ("v_seed1", "ViT", "CIFAR-10", 0.7),
                                            ("w", "ViT", "CIFAR-10", 0.7), ("c_seed1", "CNN", "CIFAR-10", None),
                                            ("f_seed1", "ViT", "Fashion-MNIST", 0.9)])
    results = {"v": {}, "v_seed1": {}, "w": {"config": {"seed": 1}}, "c_seed1": {}, "f_seed1": {}}
    assert [n for n, _ in bench_vit.same_seed_recipes(results, "CIFAR-10", 1)] == ["v_seed1", "w"]
    assert [n for n, _ in bench_vit.same_seed_recipes(results, "CIFAR-10", 0)] == ["v"]
    assert bench_vit.run_seed("x_seed12", {}) == 12 and bench_vit.run_seed("x_seed12", {"config": {"seed": 3}}) == 3

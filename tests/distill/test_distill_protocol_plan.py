"""The protocol's schedule computation, run configs and queue decisions, against hand-computed numbers."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "distill"))

from protocol_plan import Costs, Schedule, compute_schedule, run_config, tiny_schedule  # noqa: E402
from protocol_queue import projected_finish, seed_order  # noqa: E402

COSTS = Costs(step_s={"none": 0.1, "kd": 0.2, "ab": 0.2}, init_step_s={"ab": 0.4}, eval_s=1.0, setup_s=2.0)


def test_schedule_matches_hand_computation():
    # Fixed per run: set-up 2 + 8 evals x 1 s = 10 s; AB has a 9th evaluation (after its init stage) -> 11 s.
    # A = 10 (none) + 10 (kd) + 11 (ab) + 2 seed runs x 10 = 51 s.
    # K = 0.1 + 0.2 + (0.2 + 0.4 / 8) + seeds (0.1 + 1 x mean(0.2, 0.2)) = 0.85 s per step of S.
    # Available: 10 min x 60 x 2 workers x margin 1 = 1200 s -> S = (1200 - 51) / 0.85 = 1351.8 -> 1344 (x8).
    s = compute_schedule(COSTS, 10, 2, main=("none", "kd", "ab"), seed_runs=2, margin=1.0)
    assert s.steps == 1344
    assert s.init_steps == 168  # 30/240 of S
    assert s.milestone_steps == [840, 1008, 1176]  # 150, 180, 210 of 240 epochs
    assert s.epochs == pytest.approx(1344 * 64 / 50_000)
    # The estimate of the planned runs really fits: 51 + 0.85 * 1344 = 1193.4 <= 1200.
    total = sum(COSTS.run_s(m, s.steps) for m in ("none", "kd", "ab")) + 2 * 10 + (0.1 + 0.2) * s.steps
    assert total == pytest.approx(51 + 0.85 * 1344) and total <= 1200


def test_schedule_refuses_a_budget_below_the_fixed_costs():
    with pytest.raises(ValueError, match="budget-minutes"):
        compute_schedule(COSTS, 0.5, 1, main=("none", "kd", "ab"), seed_runs=2)


def test_run_config_follows_the_rescaled_recipe():
    s = Schedule(steps=1344)
    cfg = run_config("ab", 1, s, "out/ab-s1", threads=1)
    task, trainer = cfg["task"], cfg["trainer"]
    assert task["init_steps"] == 168 and trainer["max_steps"] == 1344 + 168
    assert task["total_steps"] == 1344 and task["schedule"] == "step"
    assert task["milestones"] == [0.625, 0.75, 0.875] and task["lr"] == 0.05
    assert trainer["eval_every"] == 168 and trainer["batch_size"] == 64 and cfg["seed"] == 1
    assert task["teacher_ckpt"] == "pretrained:resnet56_cifar10" and task["train_limit"] is None
    kd = run_config("kd", 0, s, "x")["task"]
    assert kd["init_steps"] == 0 and [t["name"] for t in kd["losses"]] == ["ce", "kd"]
    crd = run_config("crd", 0, tiny_schedule(), "x", dataset="synthetic")["task"]
    assert crd["losses"][1]["args"]["k"] == 64 and crd["teacher_ckpt"] is None


def test_projected_finish_is_list_scheduling():
    # Two workers, one busy for 100 s more: 50 -> [50, 100], 80 -> [100, 130], 30 -> [130, 130].
    assert projected_finish(10.0, [100.0], [50.0, 80.0, 30.0], 2) == 140.0
    assert projected_finish(0.0, [], [60.0, 60.0], 1) == 120.0


def _finished(acc, best=None):
    return {"status": "finished", "metrics": {"last_acc": acc, "best_acc": best or acc}}


def test_seed_order_waits_for_the_ranking_then_takes_the_top_four():
    runs = {"none-s0": _finished(0.6), "kd-s0": _finished(0.7), "crd-s0": _finished(0.72),
            "at-s0": _finished(0.65), "sp-s0": _finished(0.65, 0.7), "vid-s0": _finished(0.5)}
    methods = ["none", "kd", "crd", "at", "sp", "vid"]
    assert seed_order({"runs": runs}, methods) == ["none", "crd", "kd", "sp", "at"]
    runs["vid-s0"] = {"status": "running"}
    assert seed_order({"runs": runs}, methods) is None


def test_run_estimates_use_measured_times(tmp_path):
    from protocol_queue import Queue

    runs = {"kd-s0": {"method": "kd", "seed": 0, "status": "finished", "wall_s": 200.0},
            "crd-s0": {"method": "crd", "seed": 0, "status": "interrupted", "segments": [{"wall_s": 150.0}]}}
    state = {"runs": runs, "estimates_s": {"none": 50.0, "kd": 100.0, "crd": 300.0}}
    q = Queue(tmp_path / "state.json", state, tmp_path, workers=2)
    assert q.estimate_s("kd-s1") == 200.0  # its seed-0 twin's measured time
    assert q.estimate_s("crd-s0") == 600.0 and q.estimate_s("none-s1") == 100.0  # plan x 2 (kd took 2x its plan)
    assert q._left_s("crd-s0", started=10.0, now=60.0) == 600.0 - 150.0 - 50.0

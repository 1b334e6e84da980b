"""Several experiment workers sharing one state file: merged writes, job claims, grids waiting for training."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "inpainting"
sys.path.insert(0, str(BENCH))
_spec = importlib.util.spec_from_file_location("tw_inpaint_experiment_w", BENCH / "experiment.py")
exp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(exp)

from experiment_plan import TINY, build_queue  # noqa: E402


def test_two_state_objects_never_lose_each_others_results(tmp_path):
    a, b = exp.State(tmp_path / "s.json", TINY), exp.State(tmp_path / "s.json", TINY)
    a.mark("train/x", status="done", result={"v": 1})
    b.mark("train/y", status="done", result={"v": 2})  # b never saw x: it must re-read before writing
    a.set_calibration("lama", {"sec_per_step": 1.0})
    jobs = json.loads((tmp_path / "s.json").read_text())
    assert {k: v["result"]["v"] for k, v in jobs["jobs"].items()} == {"train/x": 1, "train/y": 2}
    assert jobs["calibration"] == {"lama": {"sec_per_step": 1.0}}
    b.refresh()
    assert b.done("train/x") and b.data["calibration"]["lama"]["sec_per_step"] == 1.0


def test_a_job_run_by_a_live_process_is_not_claimed_and_a_dead_ones_is(tmp_path):
    state = exp.State(tmp_path / "s.json", TINY)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state.mark("train/x", status="running", pid=other.pid, host=socket.gethostname())
        assert not state.claim("train/x")
        state.mark("train/z", status="running", pid=other.pid, host="another-machine")
        assert state.claim("train/z")  # a pid on another host says nothing about this one
    finally:
        other.kill()
        other.wait()
    assert state.claim("train/x")  # its owner died (e.g. the session ended): resume it here
    on_disk = json.loads((tmp_path / "s.json").read_text())["jobs"]["train/x"]
    assert on_disk["status"] == "running" and on_disk["pid"] != other.pid
    state.mark("train/x", status="done")
    assert not state.claim("train/x")


def test_worker_skips_claimed_jobs_and_grid_waits_for_every_training_run(tmp_path, monkeypatch):
    queue = build_queue(TINY, datasets=["faces"], models=["lama", "ce"], seeds=[0])
    state = exp.State(tmp_path / "s.json", TINY)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    calls: list[str] = []

    def run_job(job, p, st, results, threads):
        calls.append(job["id"])
        return {"checkpoint": "c.ckpt", "sec_per_step": 0.5, "step": p.steps, "resumed_from": 0}

    monkeypatch.setattr(exp, "run_job", run_job)
    try:
        state.mark("train/faces-ce-s0", status="running", pid=other.pid, host=socket.gethostname())
        exp.run_queue(TINY, state, queue, tmp_path, threads=1)
    finally:
        other.kill()
        other.wait()
    assert calls == ["classical/faces", "train/faces-lama-s0", "eval/faces-lama-s0"]  # not ce, and no grid yet
    exp.run_queue(TINY, state, queue, tmp_path, threads=1)  # the other worker died: this one takes over
    assert calls[3:] == ["train/faces-ce-s0", "eval/faces-ce-s0", "grid/faces"]


def test_helper_processes_get_the_arguments_without_workers():
    argv = ["--budget-minutes", "30", "--workers", "2", "--seeds", "0", "--workers=3"]
    assert exp._without_workers(argv) == ["--budget-minutes", "30", "--seeds", "0"]


def test_a_failing_job_is_recorded_and_the_queue_goes_on(tmp_path, monkeypatch):
    queue = build_queue(TINY, datasets=["faces"], models=["lama"], seeds=[0, 1])
    state = exp.State(tmp_path / "s.json", TINY)
    calls: list[str] = []

    def run_job(job, p, st, results, threads):
        calls.append(job["id"])
        if job["id"] == "train/faces-lama-s0":
            raise ValueError("no mask with 0 < area <= 0.5")
        return {"checkpoint": "c.ckpt", "sec_per_step": 0.5, "step": p.steps, "resumed_from": 0}

    monkeypatch.setattr(exp, "run_job", run_job)
    ran = exp.run_queue(TINY, state, queue, tmp_path, threads=1)
    # its evaluation waits, the next seed runs, and so does the grid (it shows the last seed's models)
    assert calls == ["classical/faces", "train/faces-lama-s0", "train/faces-lama-s1", "eval/faces-lama-s1",
                     "grid/faces"]
    assert "train/faces-lama-s0" not in ran
    job = json.loads((tmp_path / "s.json").read_text())["jobs"]["train/faces-lama-s0"]
    assert job["status"] == "failed" and "no mask" in job["error"] and job["run"] == exp.RUN_TOKEN
    exp.run_queue(TINY, state, queue, tmp_path, threads=1)  # same run: not retried
    assert calls.count("train/faces-lama-s0") == 1
    monkeypatch.setattr(exp, "RUN_TOKEN", "a-later-run")
    exp.run_queue(TINY, state, queue, tmp_path, threads=1)  # a later run retries it
    assert calls.count("train/faces-lama-s0") == 2

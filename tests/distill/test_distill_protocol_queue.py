"""The protocol queue skips finished runs and resumes an interrupted one from its checkpoint (tiny, synthetic)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "distill"))

import protocol  # noqa: E402
from protocol_queue import Interrupted  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:distill. no teacher_ckpt")  # synthetic data: untrained teacher


def _main(tmp_path, *extra):
    args = ["--tiny", "--data", "synthetic", "--workers", "0", "--results", str(tmp_path / "res"),
            "--runs-dir", str(tmp_path / "runs"), *extra]
    return protocol.main(args)


def _state(tmp_path):
    return json.loads((tmp_path / "res" / "protocol_state.json").read_text())


def test_queue_resumes_an_interrupted_run_then_skips_it(tmp_path, capsys):
    # A budget of ~0 leaves no time for second seeds: they are recorded as skipped, not run.
    with pytest.raises(Interrupted):
        _main(tmp_path, "--only", "kd", "--budget-minutes", "0.001", "--stop-after", "5")
    rec = _state(tmp_path)["runs"]["kd-s0"]
    assert rec["status"] == "interrupted" and "metrics" not in rec and rec["segments"][0]["to_step"] == 5
    assert (tmp_path / "runs" / "kd-s0" / "checkpoints" / "last.ckpt").is_file()

    assert _main(tmp_path, "--only", "kd") == 0  # resumes from the step-4 checkpoint (saved every 2 steps)
    rec = _state(tmp_path)["runs"]["kd-s0"]
    assert rec["status"] == "finished" and rec["attempts"] == 2
    assert [(s["from_step"], s["to_step"]) for s in rec["segments"]] == [(0, 5), (4, 8)]
    assert rec["metrics"]["steps"] == 8 and [e[0] for e in rec["metrics"]["evals"]] == [4, 8]
    assert _state(tmp_path)["runs"]["kd-s1"]["status"] == "skipped"
    assert "resuming kd-s0" in capsys.readouterr().out

    assert _main(tmp_path, "--only", "kd") == 0  # nothing left: the finished run is not redone
    again = _state(tmp_path)["runs"]["kd-s0"]
    assert again["segments"] == rec["segments"] and again["attempts"] == 2
    out = capsys.readouterr().out
    assert "starting" not in out and "resuming" not in out


@pytest.mark.slow
def test_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    with pytest.raises(Interrupted):
        _main(tmp_path / "a", "--only", "none", "--budget-minutes", "0.001", "--stop-after", "3")
    _main(tmp_path / "a", "--only", "none")
    _main(tmp_path / "b", "--only", "none", "--budget-minutes", "0.001")
    a, b = (_state(tmp_path / d)["runs"]["none-s0"]["metrics"] for d in ("a", "b"))
    assert a["last_loss"] == b["last_loss"] and a["evals"] == b["evals"]


@pytest.mark.slow
def test_child_processes_resume_a_killed_run(tmp_path):
    # --stop-after makes the first child stop after 5 steps like a killed one: recorded as failed, with its time.
    _main(tmp_path, "--only", "none", "--workers", "1", "--budget-minutes", "0.001", "--stop-after", "5")
    rec = _state(tmp_path)["runs"]["none-s0"]
    assert rec["status"] == "failed" and rec["segments"][0]["to_step"] == 5
    _main(tmp_path, "--only", "none", "--workers", "1")
    rec = _state(tmp_path)["runs"]["none-s0"]
    spans = [(s["from_step"], s["to_step"]) for s in rec["segments"]]
    assert rec["status"] == "finished" and spans == [(0, 5), (4, 8)]

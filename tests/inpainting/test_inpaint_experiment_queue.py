"""The experiment queue: order, immediate recording, skip on rerun, budget stop, resume from an engine checkpoint."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "inpainting"
sys.path.insert(0, str(BENCH))
_spec = importlib.util.spec_from_file_location("tw_inpaint_experiment", BENCH / "experiment.py")
exp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(exp)

import experiment_plan  # noqa: E402
from experiment_plan import DataSpec, build_queue, train_config  # noqa: E402

from torchworks.data.samples import SAMPLES_DIR  # noqa: E402

# The tiny plan on the two photos shipped in the package (a face and a scene), so that these tests run on a clone
# with no data folder: the queue, its estimates and its report need photos, not particular ones.
_PHOTOS = (str(SAMPLES_DIR / "photos"),)
TINY = replace(experiment_plan.TINY, datasets={
    name: DataSpec(name, (), train_sources=_PHOTOS, test_sources=_PHOTOS) for name in ("faces", "scenes")})


@pytest.fixture(autouse=True)
def _tiny_uses_the_shipped_photos(monkeypatch):
    monkeypatch.setitem(exp.PRESETS, "tiny", TINY)  # what `experiment.py --tiny` runs

MEANS = {"area": 0.3, "psnr_hole": 20.0, "ssim": 0.8, "l1_hole": 0.1, "psnr": 25.0, "n": 2}


def _fake(calls: list[str], interrupt_at: str | None = None):
    def run_job(job, p, state, results, threads):
        on_disk = json.loads(state.path.read_text())["jobs"]
        assert all(on_disk[c]["status"] == "done" for c in calls)  # every earlier job was written at once
        assert on_disk[job["id"]]["status"] == "running"
        calls.append(job["id"])
        if job["id"] == interrupt_at:
            raise KeyboardInterrupt
        if job["kind"] == "train":
            return {"checkpoint": "c.ckpt", "sec_per_step": 0.5, "step": p.steps, "resumed_from": 0}
        if job["kind"] == "classical":
            return {"128": {"telea": {"thin": MEANS}}}
        if job["kind"] == "eval":
            return {"128": {"thin": {**MEANS, "psnr_hole": 21.0 + job["seed"]}}}
        return {"grid": None}

    return run_job


def test_queue_order_and_filters():
    ids = [j["id"] for j in build_queue(TINY, datasets=["faces"], models=["lama", "ce"], seeds=[1])]
    assert ids == ["classical/faces", "train/faces-lama-s1", "eval/faces-lama-s1", "train/faces-ce-s1",
                   "eval/faces-ce-s1", "grid/faces"]
    full = build_queue(TINY)
    assert len(full) == 2 + 2 * 2 * 4 * 2 + 2  # classical + (train, eval) x data x models x seeds + grids
    assert [j["seed"] for j in full if j["kind"] == "train"][:8] == [0] * 8  # seed 0 of everything first
    assert [j["seed"] for j in full if j["kind"] == "grid"] == [TINY.seeds[-1]] * 2  # the latest checkpoints


def test_interrupted_queue_records_done_jobs_and_resumes_where_it_stopped(tmp_path, monkeypatch):
    queue = build_queue(TINY, datasets=["faces"], models=["lama"], seeds=[0, 1])
    state = exp.State(tmp_path / "s.json", TINY)
    calls: list[str] = []
    monkeypatch.setattr(exp, "run_job", _fake(calls, interrupt_at="eval/faces-lama-s0"))
    with pytest.raises(KeyboardInterrupt):
        exp.run_queue(TINY, state, queue, tmp_path, threads=1)
    jobs = json.loads((tmp_path / "s.json").read_text())["jobs"]
    assert {k: v["status"] for k, v in jobs.items()} == {
        "classical/faces": "done", "train/faces-lama-s0": "done", "eval/faces-lama-s0": "interrupted"}
    calls.clear()
    monkeypatch.setattr(exp, "run_job", _fake(calls))
    state = exp.State(tmp_path / "s.json", TINY)  # a new process reads the file back
    ran = exp.run_queue(TINY, state, queue, tmp_path, threads=1)
    assert ran == calls == ["eval/faces-lama-s0", "train/faces-lama-s1", "eval/faces-lama-s1", "grid/faces"]
    calls.clear()
    assert exp.run_queue(TINY, state, queue, tmp_path, threads=1) == [] and calls == []  # all skipped
    recs = exp.records(state, TINY.families)
    assert [(r["method"], r["seed"], r["psnr_hole"]) for r in recs] == [("lama", 0, 21.0), ("lama", 1, 22.0),
                                                                         ("telea", None, 20.0)]


def test_budget_stops_before_a_job_that_would_overrun(tmp_path, monkeypatch, capsys):
    queue = build_queue(TINY, datasets=["faces"], models=["lama"], seeds=[0])
    state = exp.State(tmp_path / "s.json", TINY)
    state.data["calibration"]["lama"] = {"sec_per_step": 100.0, "fwd_s": {"128": 0.01, "256": 0.02},
                                         "threads": 1, "measured": "now"}
    calls: list[str] = []
    monkeypatch.setattr(exp, "run_job", _fake(calls))
    assert exp.run_queue(TINY, state, queue, tmp_path, threads=1, budget_minutes=1.0) == ["classical/faces"]
    assert "stopping" in capsys.readouterr().out
    # the estimate is steps x the measured step time (+ start-up)
    assert exp.estimate(queue[1], TINY, state, tmp_path) == pytest.approx(TINY.steps * 100.0 + 5.0)
    total = exp.dry_run(TINY, state, queue, tmp_path, threads=1, calibrate_missing=False)
    out = capsys.readouterr().out
    assert "3 of 4 jobs left" in out and "100.00 wall s/step" in out and total > 400
    state.data["calibration"]["lama"]["cpu_per_step"] = 10.0
    assert exp.estimate(queue[1], TINY, state, tmp_path, clock="cpu") == pytest.approx(TINY.steps * 10.0 + 5.0)


def test_changed_plan_is_refused_and_report_only_keeps_the_rest_of_the_doc(tmp_path):
    exp.State(tmp_path / "experiment_tiny.json", TINY).save()
    with pytest.raises(SystemExit, match="another plan"):
        exp.State(tmp_path / "experiment_tiny.json", replace(TINY, steps=5))
    doc = tmp_path / "doc.md"
    doc.write_text("# Results\n\nkeep me\n")
    assert exp.main(["--tiny", "--report-only", "--results-dir", str(tmp_path), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# Results\n\nkeep me\n") and "<!-- experiment:start -->" in text
    assert "nothing to report" in text and text.rstrip().endswith("<!-- experiment:end -->")


def test_train_config_is_a_valid_engine_recipe(tmp_path):
    import torchworks.inpainting.task  # noqa: F401  (registers the tasks)
    from torchworks.engine.config import load_run_config

    for model in ("lama", "ce"):
        run_cfg, task_cfg = load_run_config(train_config(TINY, "faces", model, 1, tmp_path, 1))
        assert run_cfg.seed == task_cfg.seed == 1 and run_cfg.trainer.max_steps == TINY.steps
        assert task_cfg.generator == TINY.generators[model][0] and task_cfg.train_masks == "lama_train_large"
    assert task_cfg.objective == "context_encoder"


@pytest.mark.slow
def test_tiny_run_resumes_an_interrupted_training_from_its_checkpoint(tmp_path):
    """Real engine runs: a run stopped at step 2 (its last.ckpt) is resumed, not restarted, by the queue."""
    import torchworks.inpainting.nets  # noqa: F401
    import torchworks.inpainting.task  # noqa: F401
    from torchworks.core.checkpoint import load_checkpoint
    from torchworks.engine.run import train

    out = exp.run_dir(tmp_path, TINY, "faces-lama-s0")
    train(train_config(replace(TINY, steps=2), "faces", "lama", 0, out, 1), overwrite=True)
    queue = build_queue(TINY, datasets=["faces"], models=["lama"], seeds=[0])
    state = exp.State(tmp_path / "s.json", TINY)
    state.mark("train/faces-lama-s0", status="running")  # as a killed process leaves it
    exp.run_queue(TINY, state, queue, tmp_path, threads=1)
    train_res = state.result("train/faces-lama-s0")
    assert train_res["resumed_from"] == 2 and train_res["step"] == TINY.steps
    assert (tmp_path / train_res["checkpoint"]).exists()
    ev = state.result("eval/faces-lama-s0")
    assert set(ev) == {"128", "256"} and set(ev["128"]) == {"thin", "box"} and ev["128"]["thin"]["n"] == 2
    assert state.result("grid/faces")["columns"] == ["original", "masked", "telea", "lama"]
    assert exp.run_queue(TINY, state, queue, tmp_path, threads=1) == []
    # A fresh checkout has the state file but not the checkpoints: the grid retrains its run, same step count.
    (tmp_path / train_res["checkpoint"]).unlink()
    state.mark("grid/faces", status="failed")
    assert exp.run_queue(TINY, state, queue, tmp_path, threads=1) == ["grid/faces"]
    assert state.result("grid/faces")["retrained"] == ["faces-lama-s0"]
    assert load_checkpoint(tmp_path / train_res["checkpoint"])["step"] == TINY.steps


def test_the_general_scene_ab_reports_beside_the_64px_study_not_over_it(tmp_path):
    # both reports go to docs/results/inpainting.md: each preset owns its own marked section
    assert exp.section_name(experiment_plan.CPU64) == "experiment"
    assert exp.section_name(experiment_plan.TINY) == "experiment"  # the test plan writes where the tests read
    assert exp.section_name(experiment_plan.SCENES128) == "experiment-scenes128"
    from _common import write_section

    doc = tmp_path / "doc.md"
    write_section(doc, exp.section_name(experiment_plan.CPU64), "64 px study", heading=None)
    write_section(doc, exp.section_name(experiment_plan.SCENES128), "scenes A/B", heading=None)
    text = doc.read_text()
    assert "64 px study" in text and "scenes A/B" in text

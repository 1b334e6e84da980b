"""benchmarks/_common.py: results-file sections, the machine description and the resumable run store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path[:0] = [str(BENCH), str(BENCH / "inpainting")]

from _common import (  # noqa: E402
    Machine,
    RunStore,
    exclusive,
    read_section,
    replace_section,
    write_section,
)


# --- sections ---------------------------------------------------------------------------------------------------
def test_sections_replace_only_their_own_text(tmp_path):
    doc = "# Title\n\nintro\n\n<!-- speed:start -->\nold speed\n<!-- speed:end -->\n\ntail text\n"
    new = replace_section(doc, "speed", "new speed\n")
    assert new == "# Title\n\nintro\n\n<!-- speed:start -->\nnew speed\n<!-- speed:end -->\n\ntail text\n"
    assert replace_section(new, "speed", "new speed") == new  # idempotent
    both = replace_section(new, "experiment", "exp", heading="## Experiment")
    assert both.startswith(new) and both.endswith("## Experiment\n\n<!-- experiment:start -->\nexp\n"
                                                  "<!-- experiment:end -->\n")
    assert read_section(both, "speed") == "new speed" and read_section(both, "experiment") == "exp"
    assert read_section(both, "masks") is None
    with pytest.raises(ValueError, match="one start and one end"):
        replace_section(doc + "<!-- speed:start -->\n", "speed", "x")
    with pytest.raises(ValueError, match="before the start"):
        replace_section("<!-- a:end -->\n<!-- a:start -->\n", "a", "x")
    path = tmp_path / "r.md"
    path.write_text(doc)
    write_section(path, "experiment", "E")
    write_section(path, "speed", "S")
    text = path.read_text()
    assert text.startswith("# Title\n\nintro\n\n<!-- speed:start -->\nS\n<!-- speed:end -->\n\ntail text\n")
    assert read_section(text, "experiment") == "E"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.md"]  # the temporary file was renamed, not left


def test_a_new_file_gets_its_title_and_a_refused_write_leaves_the_file_alone(tmp_path):
    path = tmp_path / "sub" / "new.md"
    write_section(path, "a", "A", title="# Results")
    assert path.read_text() == "# Results\n\n<!-- a:start -->\nA\n<!-- a:end -->\n"
    write_section(path, "b", "B", title="# ignored once the file exists")
    assert path.read_text().startswith("# Results\n") and "ignored" not in path.read_text()
    broken = path.read_text() + "<!-- a:end -->\n"
    path.write_text(broken)
    with pytest.raises(ValueError, match="section 'a'"):
        write_section(path, "a", "A2")
    assert path.read_text() == broken


# --- machine ----------------------------------------------------------------------------------------------------
def test_machine_reports_measured_cores_threads_and_load_at_both_ends(monkeypatch):
    loads = iter([(0.42, 0.3, 0.2), (3.5, 1.0, 0.5)])
    monkeypatch.setattr(os, "getloadavg", lambda: next(loads))
    m = Machine.measure(threads=3)
    assert (m.cores, m.threads, m.load_start, m.load_end) == (os.cpu_count(), 3, 0.42, None)
    assert "load average 0.4 at the start" in m.describe() and "at the end" not in m.describe()
    m.finish()
    text = m.describe()
    assert f"{os.cpu_count()} cores" in text and "3 torch threads" in text
    assert text.endswith("load average 0.4 at the start, 3.5 at the end")
    assert m.busy == (3.5 > os.cpu_count())
    assert Machine.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert "1 torch thread," in Machine.measure(threads=1).describe()


def test_no_benchmark_hard_codes_the_core_count():
    hard = [f"{p.relative_to(BENCH)}:{i}" for p in BENCH.rglob("*.py") if "distill" not in p.parts
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if any(s in line for s in ("2 cores", "2-core", "two cores", "2 CPU cores", "2 vCPUs"))]
    assert hard == []


SECTIONS = {"inpainting.md": ["classical", "metric-weights", "masks", "large-photos", "photos", "speed", "experiment",
                              "experiment-scenes128"],
            "sequence.md": ["bench_lstm", "bench_forecast"],
            "transformer.md": ["gpt", "translation", "bert", "vit", "bert_long", "precision", "parity"]}


@pytest.mark.parametrize("doc", sorted(p.name for p in (BENCH.parent / "docs" / "results").glob("*.md")))
def test_results_files_hold_each_scripts_section_once_with_the_common_markers(doc):
    import re

    text = (BENCH.parent / "docs" / "results" / doc).read_text()
    names = re.findall(r"<!-- (\S+):start -->", text)
    assert names == re.findall(r"<!-- (\S+):end -->", text)  # same sections, same order: none nested or crossed
    assert len(names) == len(set(names)) and all(read_section(text, n) is not None for n in names)
    assert set(SECTIONS.get(doc, [])) <= set(names)
    assert re.findall(r"<!-- [^>]*(?:: begin|: end|kept by)[^>]*-->", text) == []  # no older marker styles


# --- run store --------------------------------------------------------------------------------------------------
def test_store_marks_claims_and_never_loses_a_concurrent_result(tmp_path):
    a = RunStore(tmp_path / "s.json", {"runs": {}, "note": "n"}, jobs_key="runs", done_status="finished")
    b = RunStore(tmp_path / "s.json", {"runs": {}, "note": "n"}, jobs_key="runs", done_status="finished")
    assert a.claim("x") and a.status("x") == "running"
    a.mark("x", status="finished", result=1)
    b.mark("y", status="failed")  # b never saw x: it must re-read before writing
    assert not b.claim("x")  # finished: never claimed again
    on_disk = json.loads((tmp_path / "s.json").read_text())
    assert on_disk["note"] == "n" and on_disk["runs"]["x"]["result"] == 1 and on_disk["runs"]["y"] == {
        "status": "failed"}
    assert b.done("x") and b.result("x") == 1 and not b.done("y") and b.result("nope") is None
    assert b.claim("y")  # failed jobs can be taken again
    assert b.update(lambda d: d.setdefault("count", 7)) == 7 and RunStore(tmp_path / "s.json", {}).data["count"] == 7


def test_store_skips_a_job_of_a_live_process_and_takes_a_dead_ones(tmp_path):
    store = RunStore(tmp_path / "s.json", {"jobs": {}})
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert store.claim("j")
        store.mark("j", pid=other.pid)  # another live process on this host owns it
        assert not store.claim("j")
    finally:
        other.kill()
        other.wait()
    assert store.claim("j") and store.jobs["j"]["pid"] == os.getpid()


def test_store_check_refuses_a_foreign_file_and_exclusive_refuses_a_second_holder(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"plan": "other", "jobs": {}}))

    def same_plan(data):
        if data["plan"] != "mine":
            raise SystemExit("another plan")

    with pytest.raises(SystemExit, match="another plan"):
        RunStore(path, {"plan": "mine"}, check=same_plan)
    with exclusive(tmp_path / ".lock", "the results folder"):
        with pytest.raises(RuntimeError, match="another process is using the results folder"):
            with exclusive(tmp_path / ".lock", "the results folder"):
                pass


# --- the inpainting experiment's state file stays compatible ----------------------------------------------------
LIVE_QUEUE_FILE = """{
 "calibration": {},
 "jobs": {
  "classical/scenes": {
   "host": "vm",
   "pid": 2695,
   "started": "2026-12-07T17:57:08",
   "status": "running"
  },
  "train/scenes-lama-s0": {
   "host": "vm",
   "pid": 2699,
   "started": "2026-12-07T17:57:10",
   "status": "running"
  }
 },
 "plan_hash": "dfc25afd5285",
 "preset": "scenes128"
}
"""
"""The state file of the issue-20 queue as the previous State class wrote it (a copy; the live one is not touched)."""


def test_state_files_written_by_the_previous_code_are_read_and_rewritten_byte_for_byte(tmp_path):
    from experiment_plan import PRESETS
    from experiment_state import State

    path = tmp_path / "experiment_scenes128.json"
    path.write_text(LIVE_QUEUE_FILE)
    state = State(path, PRESETS["scenes128"])
    assert state.status("train/scenes-lama-s0") == "running" and not state.done("classical/scenes")
    state.save()
    assert path.read_text() == LIVE_QUEUE_FILE
    state.mark("classical/scenes", status="done", result={"64": {}})
    assert json.loads(path.read_text())["jobs"]["classical/scenes"]["status"] == "done"
    assert (tmp_path / "experiment_scenes128.json.lock").exists()  # the lock the old workers take, too
    committed = BENCH / "inpainting" / "results" / "experiment_cpu64.json"
    assert len(State(committed, PRESETS["cpu64"]).jobs) == 52  # the finished experiment still belongs to its plan


def test_classical_run_rewrites_only_its_own_sections_of_the_results_file():
    import classical

    old = ("# Inpainting results\n\n<!-- classical:start -->\nold intro\n<!-- classical:end -->\n\nHand-written "
           "findings.\n\n## Mask generators: coverage (LaMa parity)\n\n<!-- masks:start -->\nold masks\n"
           "<!-- masks:end -->\n\n<!-- speed:start -->\nspeed rows\n<!-- speed:end -->\n")
    new = ("# Inpainting results\n\n<!-- classical:start -->\nnew intro\n<!-- classical:end -->\n\n<!-- masks:start -->"
           "\nnew masks\n<!-- masks:end -->\n\n## Large photos\n\n<!-- large-photos:start -->\nL\n"
           "<!-- large-photos:end -->\n\n<!-- photos:start -->\nP\n<!-- photos:end -->\n")
    merged = classical.merge_sections(old, new)
    assert "Hand-written findings." in merged and read_section(merged, "speed") == "speed rows"
    assert [read_section(merged, n) for n in ("classical", "masks", "large-photos", "photos")] == [
        "new intro", "new masks", "L", "P"]
    assert merged.index("new masks") < merged.index("speed rows") < merged.index(classical.SECTIONS["photos"])


def test_translation_report_rewrites_only_its_section(tmp_path, monkeypatch):
    sys.path.insert(0, str(BENCH / "transformer"))
    import bench_translation

    doc = tmp_path / "transformer.md"
    doc.write_text("# T\n\nkept\n\n<!-- translation:start -->\nold\n<!-- translation:end -->\n\ntail\n")
    monkeypatch.setattr(bench_translation, "DOC", doc)
    rec = json.loads(bench_translation.RESULTS.read_text())
    bench_translation.write_doc(rec)
    text = doc.read_text()
    assert text.startswith("# T\n\nkept\n\n<!-- translation:start -->\n## Translation: Multi30k") and text.endswith(
        "<!-- translation:end -->\n\ntail\n")
    assert f"| test2016 | {rec['final']['test2016_beam1']['bleu']:.2f}" in read_section(text, "translation")
    assert "load average 0.7 on 2 cores" in text  # the sweep's recorded machine, not an assumed one

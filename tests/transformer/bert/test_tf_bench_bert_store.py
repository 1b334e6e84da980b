"""The BERT benchmark's result store: runs that are gone keep their stored numbers, fresh runs replace theirs."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks" / "transformer"))
import bench_bert  # noqa: E402


def test_missing_runs_come_from_the_store_and_fresh_ones_replace_it():
    stored = {"pretrain": {"acc": "old"}, "classify": {"acc": 0.5}, "_tuning": [{"name": "a"}, {"name": "b"}],
              "_total": {"runs": ["x", "y", "z"], "cpu": 30.0}}
    fresh = {"classify": {"acc": 0.9}, "_tuning": [{"name": "a"}], "_total": {"runs": ["x"], "cpu": 5.0}}
    res, reused = bench_bert.merge_with_store(fresh, stored)
    assert reused == ["pretrain"]
    assert res["pretrain"] == {"acc": "old"} and res["classify"] == {"acc": 0.9}
    # a partial re-run must not shrink the tuning table or the CPU total
    assert [r["name"] for r in res["_tuning"]] == ["a", "b"] and res["_total"]["cpu"] == 30.0


def test_a_fresh_total_over_more_runs_wins():
    res, reused = bench_bert.merge_with_store({"_total": {"runs": ["x", "y"], "cpu": 9.0}},
                                              {"_total": {"runs": ["x"], "cpu": 1.0}})
    assert reused == [] and res["_total"]["cpu"] == 9.0


def test_no_runs_and_no_store_leave_the_document_alone(tmp_path, monkeypatch):
    doc = tmp_path / "transformer.md"
    doc.write_text("before\n<!-- bert:start -->\nkept\n<!-- bert:end -->\n")
    monkeypatch.setattr(bench_bert, "STORE", tmp_path / "bert.json")
    monkeypatch.setattr(bench_bert, "ROOT", tmp_path)
    monkeypatch.setattr(sys, "argv", ["bench_bert.py", "--doc", str(doc)])
    monkeypatch.chdir(tmp_path)  # main() changes directory to ROOT; this restores the old one afterwards
    with pytest.raises(SystemExit, match="left as it is"):
        bench_bert.main()
    assert "kept" in doc.read_text() and not (tmp_path / "bert.json").exists()


def test_a_stored_pretraining_entry_renders_with_its_own_times():
    # the long pre-training run's store has the same shape as a bench_pretrain() entry plus "times"
    import json

    p = json.loads(bench_bert.LONG_STORE.read_text())
    text = bench_bert.render({"pretrain": p, "_total": {"runs": ["bert_pretrain_long"], "cpu": p["times"]["cpu"]}})
    assert f"**{p['test']['mlm_acc']:.3f}** | **{p['test']['nsp_acc']:.3f}**" in text
    assert f"Training: {p['times']['cpu'] / 60:.1f} CPU-min" in text
    assert text.startswith("## BERT") and "<!--" not in text  # the markers are the section writer's
    assert f"(bert_pretrain_long): {p['times']['cpu'] / 60:.1f} minutes" in text

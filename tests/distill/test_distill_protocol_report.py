"""The protocol report: Kendall's tau, the markers that keep the rest of the results file, the summary."""

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "distill"))

from protocol_report import (  # noqa: E402
    END,
    PUBLISHED,
    START,
    best_distilled_run,
    kendall_tau_b,
    replace_section,
    report,
    seed_sigma,
    seed_test,
    summarize,
)


def test_kendall_tau_hand_computed():
    # Pairs of x = 1..5 against y = [3, 1, 2, 5, 4]: discordant (1,2), (1,3), (4,5); the other 7 concordant.
    assert kendall_tau_b([1, 2, 3, 4, 5], [3, 1, 2, 5, 4]) == pytest.approx((7 - 3) / 10)
    # Ties: x = [1, 2, 2, 3], y = [1, 3, 2, 2]: C = 3 ((1,2), (1,3), (1,4)), D = 1 ((2,4)), one pair tied in x
    # only ((2,3)), one in y only ((3,4)) -> (3 - 1) / sqrt((3 + 1 + 1) * (3 + 1 + 1)) = 0.4.
    assert kendall_tau_b([1, 2, 2, 3], [1, 3, 2, 2]) == pytest.approx(0.4)
    assert kendall_tau_b([1, 2, 3], [3, 2, 1]) == -1.0
    with pytest.raises(ValueError):
        kendall_tau_b([1], [1])


def test_kendall_tau_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    ours = [70.1, 69.0, 70.1, 68.5, 71.2, 69.9, 69.0, 70.4, 68.8, 71.0, 69.5, 70.0, 69.2]
    published = [PUBLISHED[m] for m in ("kd", "fitnet", "at", "sp", "cc", "vid", "rkd", "pkt", "ab", "ft", "fsp",
                                        "nst", "crd")]
    assert kendall_tau_b(ours, published) == pytest.approx(stats.kendalltau(ours, published).statistic)


def test_replace_section_keeps_the_rest_of_the_file():
    before, after = "# Distillation\n\nintro\n\n", "\n\n## Shipped teacher\n\ncard\n"
    text = before + f"{START}\nold\n{END}" + after
    out = replace_section(text, "new section")
    assert out == before + f"{START}\nnew section\n{END}" + after
    assert replace_section(out, "newer") == before + f"{START}\nnewer\n{END}" + after
    appended = replace_section("# Title\nbody\n", "first")
    assert appended == f"# Title\nbody\n\n{START}\nfirst\n{END}\n"


def _state(tiny=True):
    def run(method, seed, acc, best):
        seg = {"from_step": 0, "to_step": 8, "wall_s": 60.0, "cpu_s": 50.0, "timed_steps": 7,
               "step_cpu_ms": 100.0 + 50 * (method != "none")}
        return {"method": method, "seed": seed, "status": "finished", "segments": [seg], "wall_s": 60.0,
                "cpu_s": 50.0, "metrics": {"last_acc": acc, "best_acc": best, "checkpoint": "x"}}

    runs = {"none-s0": run("none", 0, 0.60, 0.61), "none-s1": run("none", 1, 0.62, 0.62),
            "kd-s0": run("kd", 0, 0.70, 0.70), "kd-s1": run("kd", 1, 0.70, 0.71), "at-s0": run("at", 0, 0.615, 0.62),
            "crd-s0": run("crd", 0, 0.65, 0.66), "vid-s0": {"method": "vid", "seed": 0, "status": "running"}}
    return {"tiny": tiny, "workers": 2, "threads": 1, "budget_minutes": 120, "elapsed_s": 600.0,
            "schedule": {"steps": 8, "batch": 16, "train_limit": 128}, "estimates_s": {}, "runs": runs}


def test_summary_noise_and_best_run():
    state = _state()
    s = summarize(state)
    assert set(s) == {"none", "kd", "at", "crd"}  # the unfinished run is left out
    assert s["none"]["mean_last"] == pytest.approx(61.0) and s["kd"]["step"] == 150.0
    sigma, n = seed_sigma(s)  # pairs (60, 62) and (70, 70): sqrt(mean(4 / 2, 0)) = 1
    assert n == 2 and sigma == pytest.approx(1.0)
    assert best_distilled_run(state) == "kd-s1"  # ties on last accuracy go to the better best accuracy


def test_report_writes_only_its_section(tmp_path):
    state_path = tmp_path / "protocol_state.json"
    state_path.write_text(json.dumps(_state()))
    doc = tmp_path / "distill.md"
    head, tail = "# Distillation\n\ncost table\n", "\n## Shipped teacher\n\nresnet56 card\n"
    doc.write_text(head + f"{START}\nplaceholder\n{END}" + tail)
    report(state_path, doc, export=True)  # a Path; tiny: nothing is exported
    text = doc.read_text()
    assert text.startswith(head + START) and text.endswith(END + tail)
    section = text.split(START)[1].split(END)[0]
    assert "Tiny smoke run" in section and "| KD | 0,1 | 70.00 / 70.00 |" in section
    assert "+9.00" in section  # KD's gain over the mean baseline (61 %)
    # KD and the baseline ran seeds 0 and 1: paired differences 10 and 8 -> t = 9 / (sqrt(2) / sqrt(2)) = 9, df 1,
    # p = 2 atan(1/9) / pi = 0.070: not beyond seed noise despite +9 pp. AT and CRD ran one seed: no verdict.
    assert "within seed noise of the baseline: KD +9.00 (2 seeds each, paired t = 9.0, df 1, p = 0.070)" in section
    assert "beyond seed noise: none." in section
    assert "one seed, no verdict: CRD +4.00, AT +0.50." in section
    assert "after 0.0 epochs" not in section and "after 1.0 epochs" in section  # 8 steps x 16 of 128 images
    assert "tau = " in section and "Shipped student" not in section
    assert not math.isnan(float(section.split("tau = ")[1].split()[0]))


def test_export_ships_the_best_student_with_a_card(tmp_path, monkeypatch):
    import export_teacher
    from protocol_report import export_best

    from torchworks.core.checkpoint import build_model, load_model, save_model

    ckpt = save_model(tmp_path / "last.ckpt", build_model("resnet20", num_classes=10), extra={"step": 8})
    monkeypatch.setattr(export_teacher, "test_accuracy", lambda model: 0.5)  # skip the 10k-image evaluation
    state = _state(tiny=False)
    for rec in state["runs"].values():
        if "metrics" in rec:
            rec["metrics"]["checkpoint"] = str(ckpt)
    out = tmp_path / "pretrained"
    out.mkdir()
    (out / "resnet20_cifar10_at.md").write_text("an earlier export")
    path, card = export_best(state, out_dir=out)
    assert path.name == "resnet20_cifar10_kd.safetensors" and not (out / "resnet20_cifar10_at.md").exists()
    assert "**50.00 %**" in card and "KD from the shipped resnet56" in card
    assert (out / "resnet20_cifar10_kd.md").is_file()
    assert sum(p.numel() for p in load_model(path, expect="resnet20").parameters()) > 0


def _seeds(values, seeds):
    return {"last": list(values), "seeds": list(seeds)}


def test_seed_test_paired_uses_the_t_distribution_of_the_seed_count():
    # Differences 3, 1, 2 -> mean 2, sd 1, t = 2 / (1 / sqrt(3)) = 2 sqrt(3), df 2. For df 2 the t CDF is closed:
    # F(t) = 1/2 + t / (2 sqrt(2 + t^2)), so the two-sided p = 1 - t / sqrt(2 + t^2) = 1 - sqrt(12/14).
    # Listed in different seed orders: paired by seed (s0 74 - 71, s1 70 - 69, s2 72 - 70), not by position.
    method, base = _seeds([72.0, 74.0, 70.0], [2, 0, 1]), _seeds([69.0, 70.0, 71.0], [1, 2, 0])
    r = seed_test(method, base)
    assert r["test"] == "paired" and r["df"] == 2 and r["n"] == r["n_base"] == 3
    assert r["t"] == pytest.approx(2 * math.sqrt(3)) and r["gain"] == pytest.approx(2.0)
    assert r["p"] == pytest.approx(1 - math.sqrt(12 / 14))
    # A normal approximation would call this clear (|z| = 3.46 -> p = 0.0005); with 3 seeds it is not.
    assert r["p"] > 0.05


def test_seed_test_welch_when_the_seeds_differ_and_none_for_one_seed():
    method, base = _seeds([74.0, 76.0, 75.0], [0, 1, 2]), _seeds([70.0, 71.0], [0, 1])
    r = seed_test(method, base)
    va, vb = 1.0 / 3, 0.5 / 2  # sample variances 1 and 0.5 over their seed counts
    assert r["test"] == "Welch" and r["n"] == 3 and r["n_base"] == 2
    assert r["t"] == pytest.approx(4.5 / math.sqrt(va + vb))
    assert r["df"] == pytest.approx((va + vb) ** 2 / (va**2 / 2 + vb**2 / 1))
    assert seed_test(_seeds([66.0], [0]), base) is None  # one seed: no verdict, whatever the gain
    assert seed_test(method, _seeds([70.0], [0])) is None

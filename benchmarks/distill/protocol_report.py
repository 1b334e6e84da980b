"""The protocol's report: a section of ``docs/results/distill.md`` between markers, and the shipped student.

Accuracy is the engine's evaluation on the 10,000 CIFAR-10 test images: "last" at the end of the schedule (the
headline, as RepDistiller's README reports), "best" the maximum over the run's evaluations (selected on test
data, so optimistic). The ranking is compared with RepDistiller's CIFAR-100 resnet56 -> resnet20 column by
Kendall's tau-b.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from protocol_plan import BASELINE, DISTILLED, METHODS_14, TOP_SEEDED, Schedule

START, END = "<!-- protocol:start -->", "<!-- protocol:end -->"
PRETRAINED = Path(__file__).resolve().parents[2] / "src" / "torchworks" / "distill" / "pretrained"

#: CIFAR-100 top-1 (%) of resnet20 distilled from resnet56, last epoch, 240 epochs. The 13 RepDistiller methods
#: and the vanilla student: HobbitLong/RepDistiller README.md, "Benchmark Results on CIFAR-100" table 1
#: (commit 0eb3a95; teacher 72.34). OFD and DKD: Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022,
#: table 1 (also megvii-research/mdistiller README); DIST: Huang et al., "Knowledge Distillation from A Stronger
#: Teacher", NeurIPS 2022, table on CIFAR-100 (same protocol, numbers copied from the papers).
PUBLISHED = {
    "none": 69.06, "kd": 70.66, "fitnet": 69.21, "at": 70.55, "sp": 69.67, "cc": 69.63, "vid": 70.38,
    "rkd": 69.61, "pkt": 70.34, "ab": 69.47, "ft": 69.84, "fsp": 69.95, "nst": 69.60, "crd": 71.16,
    "ofd": 70.98, "dkd": 71.97, "dist": 71.78,
}
LABELS = {"none": "no distillation", "kd": "KD", "fitnet": "FitNet", "at": "AT", "sp": "SP", "cc": "CC",
          "vid": "VID", "rkd": "RKD", "pkt": "PKT", "ab": "AB", "ft": "FT", "fsp": "FSP", "nst": "NST",
          "crd": "CRD", "ofd": "OFD", "dkd": "DKD", "dist": "DIST"}


def kendall_tau_b(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b of two paired samples: (C - D) / sqrt((C + D + T_y)(C + D + T_x)).

    C / D count concordant / discordant pairs, T_x pairs tied in ``x`` only, T_y pairs tied in ``y`` only (pairs
    tied in both count nowhere), which is what ``scipy.stats.kendalltau`` computes by default.
    """
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need two paired samples of length >= 2, got {len(x)} and {len(y)}")
    c = d = tx = ty = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = _sign(x[i] - x[j]), _sign(y[i] - y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif dx == dy:
                c += 1
            else:
                d += 1
    denom = math.sqrt((c + d + tx) * (c + d + ty))
    return (c - d) / denom if denom else float("nan")


def tau_p_value(tau: float, n: int) -> float:
    """Two-sided p-value of tau under independence, normal approximation (no ties): var = 2(2n+5)/(9n(n-1))."""
    z = tau / math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1)))
    return math.erfc(abs(z) / math.sqrt(2))


def _sign(v: float) -> int:
    return (v > 0) - (v < 0)


def replace_section(text: str, section: str) -> str:
    """``text`` with the part between the markers (inclusive) replaced by ``section``; appended if absent."""
    block = f"{START}\n{section.strip()}\n{END}"
    if START in text and END in text and text.index(START) < text.index(END):
        head, rest = text.split(START, 1)
        return head + block + rest.split(END, 1)[1]
    return (text.rstrip("\n") + "\n\n" if text.strip() else "") + block + "\n"


# --- collecting results ---------------------------------------------------------------------------------------------
def summarize(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per method: seeds, last/best accuracy per seed and their means, in-run step CPU ms, wall minutes."""
    out: dict[str, dict[str, Any]] = {}
    for rec in state["runs"].values():
        if rec.get("status") != "finished":
            continue
        s = out.setdefault(rec["method"], {"seeds": [], "last": [], "best": [], "step_ms": [], "wall_min": []})
        s["seeds"].append(rec["seed"])
        s["last"].append(100 * rec["metrics"]["last_acc"])
        s["best"].append(100 * rec["metrics"]["best_acc"])
        s["wall_min"].append(rec.get("wall_s", 0.0) / 60)
        timed = [(g["step_cpu_ms"], g.get("timed_steps", 1)) for g in rec.get("segments", []) if g.get("step_cpu_ms")]
        if timed:
            s["step_ms"].append(sum(v * n for v, n in timed) / sum(n for _, n in timed))
    for s in out.values():
        s["mean_last"], s["mean_best"] = statistics.fmean(s["last"]), statistics.fmean(s["best"])
        s["step"] = statistics.fmean(s["step_ms"]) if s["step_ms"] else None
    return out


def seed_sigma(summary: dict[str, dict[str, Any]]) -> tuple[float | None, int]:
    """Pooled seed standard deviation of last accuracy (pp) over methods run with two seeds, and their count."""
    pairs = [s["last"][:2] for s in summary.values() if len(s["last"]) >= 2]
    if not pairs:
        return None, 0
    return math.sqrt(statistics.fmean((a - b) ** 2 / 2 for a, b in pairs)), len(pairs)


def ranking(summary: dict[str, dict[str, Any]], methods: tuple[str, ...]) -> tuple[float, float, int] | None:
    """tau-b (and its p-value) of our mean last accuracy vs the published column over ``methods`` we ran."""
    ms = [m for m in methods if m in summary]
    if len(ms) < 3:
        return None
    tau = kendall_tau_b([summary[m]["mean_last"] for m in ms], [PUBLISHED[m] for m in ms])
    return tau, tau_p_value(tau, len(ms)), len(ms)


# --- rendering --------------------------------------------------------------------------------------------------
def _pp(v: float | None, signed: bool = False) -> str:
    return "-" if v is None else (f"{v:+.2f}" if signed else f"{v:.2f}")


def _machine() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    import torch

    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"


def render(state: dict[str, Any], summary: dict[str, dict[str, Any]], exported: str | None = None) -> str:
    """The markdown of the protocol section."""
    sched = Schedule(**state["schedule"])
    lines = ["## Benchmark protocol: resnet20 distilled from resnet56 on CIFAR-10", ""]
    if state.get("tiny"):
        lines += ["**Tiny smoke run** (a few steps on a small subset): these numbers only show that the pipeline "
                  "works; they are not results.", ""]
    lines += [
        "Commands: `nice -n 15 python benchmarks/distill/protocol.py` (resumable; `--dry-run` prints the queue and "
        "the estimate), then `python benchmarks/distill/protocol.py report` (this section and the shipped "
        "student). State and per-run records: `benchmarks/distill/results/protocol_state.json`.  ",
        f"Machine: {_machine()}; {max(1, state['workers'])} single-run worker(s) x {state['threads']} thread(s), "
        f"budget {state['budget_minutes']:.0f} min; protocol wall time so far {state.get('elapsed_s', 0) / 60:.0f} "
        "min.", "",
        f"**Schedule.** {sched.describe()}. Rescaling rule: RepDistiller's 240 epochs (lr 0.05, x0.1 at epochs "
        "150/180/210, batch 64, 30 init epochs for AB/FSP/FT) are mapped onto S steps over the full CIFAR-10 "
        "training set: one RepDistiller epoch = S/240 steps, decays at 5/8, 6/8, 7/8 of S, init stage S/8 extra "
        "steps; momentum 0.9, weight decay 5e-4, RepDistiller's loss weights and T=4, CRD with 4096 label-aware "
        "negatives; bf16 autocast, channels-last. S was chosen so that all runs, second seeds included, fit the "
        "budget on the measured per-step costs (`protocol_plan.compute_schedule`). Teacher: the shipped resnet56 "
        "(77.39 % test accuracy, model card in this file). Evaluations every S/8 steps on the 10,000 test images.", "",
    ]
    if not summary:
        return "\n".join(lines + _plan_lines(state))
    base = summary.get(BASELINE)
    base_step = base["step"] if base else None
    sigma, n_pairs = seed_sigma(summary)
    lines += ["| method | seeds | last acc % | best acc % | gain vs no distillation, pp (last) | step CPU ms | "
              "overhead vs plain student step | run wall min | RepDistiller CIFAR-100 % (gain) |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    order = sorted(summary, key=lambda m: (m != BASELINE, -summary[m]["mean_last"]))
    for m in order:
        s = summary[m]
        gain = s["mean_last"] - base["mean_last"] if base and m != BASELINE else None
        over = f"{s['step'] / base_step:.2f}x" if s["step"] and base_step else "-"
        step_txt = f"{s['step']:.0f}" if s["step"] else "-"
        pub = PUBLISHED[m]
        pub_gain = "" if m == BASELINE else f" ({pub - PUBLISHED[BASELINE]:+.2f})"
        src = "" if m in METHODS_14[:-1] or m == BASELINE else "\\*"
        lines.append(f"| {LABELS[m]} | {','.join(map(str, s['seeds']))} | "
                     f"{' / '.join(f'{v:.2f}' for v in s['last'])} | {' / '.join(f'{v:.2f}' for v in s['best'])} | "
                     f"{_pp(gain, True)} | {step_txt} | {over} | "
                     f"{statistics.fmean(s['wall_min']):.1f} | {pub:.2f}{pub_gain}{src} |")
    lines += ["", "Several seeds are listed as `seed 0 / seed 1`; gains use their means. Step CPU ms: median process "
              "CPU time of one engine step (data, forward, backward, SGD) measured inside the run, 1 thread; "
              "every method except the baseline also pays the teacher's forward pass (AB and FSP keep running it "
              "after their init stage, as RepDistiller does). \\*OFD, DKD, DIST: from the DKD and DIST papers on "
              "RepDistiller's protocol, not from RepDistiller itself.", ""]
    lines += _length_lines(summary, sched) + [""]
    lines += _ranking_lines(summary) + _crd_lines(summary, sched) + [""] + _noise_lines(summary, sigma, n_pairs, base)
    if exported:
        lines += ["", exported]
    return "\n".join(lines)


def _plan_lines(state: dict[str, Any]) -> list[str]:
    """The queue and its estimate, for a protocol that has not produced results yet."""
    from protocol_queue import projected_finish

    est, costs = state.get("estimates_s") or {}, state.get("costs")
    lines = ["**Not run yet.** Planned queue and estimate (`protocol.py --dry-run`), from per-step costs measured "
             f"at tiny scale ({costs['note'] if costs else 'no measurement'}):", "",
             "| run | estimated CPU min | step CPU ms | overhead vs plain student step |", "|---|---:|---:|---:|"]
    if not (est and costs):
        return lines[:1]
    base = costs["step_s"][BASELINE]
    for m, v in est.items():
        lines.append(f"| {LABELS[m]} | {v / 60:.1f} | {1e3 * costs['step_s'][m]:.0f} | "
                     f"{costs['step_s'][m] / base:.2f}x |")
    distilled = [est[m] for m in DISTILLED if m in est]
    seeds = [est[BASELINE]] + [statistics.fmean(distilled)] * TOP_SEEDED
    lines.append(f"| second seeds: baseline + top {TOP_SEEDED} (mean distilled cost) | {sum(seeds) / 60:.1f} | | |")
    total = [*est.values(), *seeds]
    wall = projected_finish(0.0, [], total, max(1, state["workers"]))
    lines += ["", f"Estimate: {sum(total) / 60:.0f} CPU min, about **{wall / 60:.0f} min wall** on "
                  f"{max(1, state['workers'])} single-thread workers (CPU time taken as wall time on a dedicated "
                  "core; the second seeds are started only while the measured run times say they fit the "
                  "budget). The first real start measures the costs again and fixes S from that measurement, so "
                  "S and the estimate follow the machine's load at that time. Evaluations take "
                  f"{costs['eval_s']:.1f} s each and the set-up {costs['setup_s']:.1f} s per run."]
    return lines


def _length_lines(summary: dict[str, dict[str, Any]], sched: Schedule) -> list[str]:
    """What a gain measured on this schedule means, next to the published gains after 240 epochs."""
    epochs = sched.epochs
    pub = [PUBLISHED[m] - PUBLISHED[BASELINE] for m in summary if m in DISTILLED]
    base = summary.get(BASELINE)
    best = max((m for m in summary if m in DISTILLED), key=lambda m: summary[m]["mean_last"], default=None)
    if not pub or not base or best is None:
        return []
    gain = summary[best]["mean_last"] - base["mean_last"]
    return [f"**What the gains mean at this length.** Every gain above is measured after {epochs:.1f} epochs "
            f"({100 * epochs / 240:.1f} % of RepDistiller's 240): the students are far from converged (the "
            f"undistilled one ends at {base['mean_last']:.2f} %), so a gain such as {LABELS[best]}'s "
            f"{gain:+.2f} pp says how much faster the teacher makes early training, not how much better the "
            f"converged student is. RepDistiller's gains after 240 epochs are {min(pub):+.2f} to {max(pub):+.2f} pp "
            "over the same methods; whether ours shrink to that size on a full schedule is not measured here."]


def _ranking_lines(summary: dict[str, dict[str, Any]]) -> list[str]:
    out = ["**Ranking vs RepDistiller.** Published numbers are CIFAR-100 (100 classes, 240 epochs, a 72.34 % "
           "teacher); ours are CIFAR-10 (10 classes, JPEG-q75 copy) at a few epochs with a 77.39 % teacher, so only "
           "the order of the methods is compared, by Kendall's tau-b of mean last accuracy against the published "
           "column (p: two-sided, normal approximation)."]
    for label, methods in (("the 13 RepDistiller methods", METHODS_14[:-1]),
                           ("all 16 methods (with OFD, DKD, DIST)", DISTILLED)):
        r = ranking(summary, methods)
        if r:
            out.append(f"- {label}: tau = {r[0]:+.2f} over {r[2]} methods (p = {r[1]:.2f}).")
    ours = [m for m in sorted(summary, key=lambda m: -summary[m]["mean_last"]) if m in DISTILLED]
    theirs = sorted(ours, key=lambda m: -PUBLISHED[m])
    out.append(f"- top 5 here: {', '.join(LABELS[m] for m in ours[:5])}; top 5 published among the same: "
               f"{', '.join(LABELS[m] for m in theirs[:5])}.")
    return out


def _crd_lines(summary: dict[str, dict[str, Any]], sched: Schedule) -> list[str]:
    # CRD's memory banks hold one embedding per training image and refresh an entry only when that image is in a
    # batch, so their age is set by the number of epochs, which this schedule cuts 100-fold.
    crd, base = summary.get("crd"), summary.get(BASELINE)
    if not crd or not base or crd["mean_last"] >= base["mean_last"]:
        return []
    epochs = sched.epochs
    seeds = len(crd["last"])
    verdict = "one seed, no verdict" if seeds < 2 else f"{seeds} seeds; see the seed-noise verdict below"
    return [f"- CRD ends {base['mean_last'] - crd['mean_last']:.2f} pp below the undistilled student ({verdict}). "
            "If that holds, a likely reason is its memory: its two memory banks (one 128-d embedding per training "
            f"image, momentum 0.5) refresh an entry only when that image is drawn: {epochs:.1f} times per entry in "
            "this schedule against 240 in RepDistiller's, so most of the 4096 negatives of every step are stale "
            "or still the random initial vectors (not isolated by a separate run); "
            "the other methods compare the teacher's and the student's features of the same batch and have no "
            "such warm-up."]


ALPHA = 0.05  #: two-sided level of the seed-noise verdicts


def seed_test(method: dict[str, Any], base: dict[str, Any]) -> dict[str, Any] | None:
    """t-test of a method's last accuracy against the baseline's, with the seeds each actually ran.

    Paired (``scipy.stats.ttest_rel`` on the per-seed differences, df = n - 1) when both ran the same seeds:
    seed k gives every method the same student initialisation and batch order, so the pair shares those sources
    of noise. Otherwise Welch's test (``ttest_ind(equal_var=False)``, Welch-Satterthwaite df). None when either
    side has a single seed: it has no spread of its own, so there is no verdict.

    Returns:
        ``{"test", "n", "n_base", "t", "df", "p", "gain"}``; ``gain`` is the difference of the means (pp).
    """
    from scipy import stats

    a, b = method["last"], base["last"]
    if len(a) < 2 or len(b) < 2:
        return None
    gain = statistics.fmean(a) - statistics.fmean(b)
    if sorted(method["seeds"]) == sorted(base["seeds"]):
        by_seed = dict(zip(base["seeds"], b, strict=True))
        diffs = [v - by_seed[s] for s, v in zip(method["seeds"], a, strict=True)]
        r = stats.ttest_rel(diffs, [0.0] * len(diffs))
        test, df = "paired", len(diffs) - 1
    else:
        r = stats.ttest_ind(a, b, equal_var=False)
        va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
        test, df = "Welch", (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return {"test": test, "n": len(a), "n_base": len(b), "t": float(r.statistic), "df": float(df),
            "p": float(r.pvalue), "gain": gain}


def _t_crit(df: float) -> float:
    from scipy import stats

    return float(stats.t.ppf(1 - ALPHA / 2, df))


def _seeds_text(r: dict[str, Any]) -> str:
    n = f"{r['n']} seeds each" if r["n"] == r["n_base"] else f"{r['n']} seeds vs {r['n_base']}"
    return f"{n}, {r['test']} t = {r['t']:.1f}, df {r['df']:.3g}, p = {r['p']:.3f}"


def _noise_lines(summary, sigma, n_pairs, base) -> list[str]:
    acc = (base["mean_last"] if base else 70.0) / 100
    binom = 100 * math.sqrt(acc * (1 - acc) / 10_000)
    b = summary.get(BASELINE)
    spread = f"baseline seeds {' / '.join(f'{v:.2f}' for v in b['last'])}; " if b and len(b["last"]) > 1 else ""
    scale = (f"pooled seed standard deviation {sigma:.2f} pp from {n_pairs} method(s) run twice, "
             if sigma is not None else "")
    clear, within, single = [], [], []
    for m, s in sorted(summary.items(), key=lambda kv: -kv[1]["mean_last"]):
        if m == BASELINE or not base:
            continue
        gain = s["mean_last"] - base["mean_last"]
        r = seed_test(s, base)
        if r is None:
            single.append(f"{LABELS[m]} {gain:+.2f}" + ("" if len(s["last"]) < 2 else
                                                        f" ({len(s['last'])} seeds vs a one-seed baseline)"))
            continue
        (clear if r["p"] < ALPHA else within).append(f"{LABELS[m]} {gain:+.2f} ({_seeds_text(r)})")
    lines = [f"**Seed noise.** {spread}{scale}test-set binomial standard error {binom:.2f} pp. A verdict tests "
             f"the gain in last accuracy over the baseline at the {100 * ALPHA:.0f} % level (two-sided) with the "
             "t distribution of the seeds actually run: a paired t-test on the per-seed differences when the "
             "method and the baseline ran the same seeds (seed k gives every method the same student "
             "initialisation and batch order), Welch's otherwise; no correction for testing several methods. "
             f"With 2 seeds each the paired test has 1 degree of freedom (critical t {_t_crit(1):.1f}), so only "
             "large, consistent gains pass. A method run with one seed has no spread of its own and gets no verdict, "
             "whatever its gain.",
             f"- beyond seed noise: {'; '.join(clear) or 'none'}.",
             f"- within seed noise of the baseline: {'; '.join(within) or 'none'}."]
    if single:
        lines.append(f"- one seed, no verdict: {', '.join(single)}.")
    return lines


# --- export -----------------------------------------------------------------------------------------------------
def best_distilled_run(state: dict[str, Any]) -> str | None:
    """Name of the finished distilled run with the highest last accuracy (then best accuracy)."""
    runs = [(r["metrics"]["last_acc"], r["metrics"]["best_acc"], n) for n, r in state["runs"].items()
            if r.get("status") == "finished" and r["method"] in DISTILLED]
    return max(runs)[2] if runs else None


def export_best(state: dict[str, Any], out_dir: Path = PRETRAINED) -> tuple[Path, str] | None:
    """Ships the best distilled student's last weights with a model card; returns (file, card markdown)."""
    import torch

    from torchworks.core.checkpoint import load_checkpoint, load_model, save_model
    from torchworks.distill.recipes import method_terms

    name = best_distilled_run(state)
    if name is None or state.get("tiny"):
        return None
    rec = state["runs"][name]
    method, ckpt = rec["method"], rec["metrics"]["checkpoint"]
    import export_teacher  # sibling script: float32 test accuracy

    torch.set_num_threads(1)
    model = load_model(ckpt, expect="resnet20")
    acc = export_teacher.test_accuracy(model)
    stem = f"resnet20_cifar10_{method}"
    for old in out_dir.glob("resnet20_cifar10_*"):  # an earlier report may have shipped another method
        if old.stem != stem:
            old.unlink()
    path = save_model(out_dir / f"{stem}.safetensors", model,
                      extra={"card": {"test_acc": acc, "method": method, "data": "cifar10_jpeg_q75",
                                      "step": int(load_checkpoint(ckpt)["step"])}})
    sched = Schedule(**state["schedule"])
    terms = ", ".join(f"{t.weight:g} x {t.name}" + (f" {t.args}" if t.args else "") for t in method_terms(method))
    base = [r["metrics"]["last_acc"] for r in state["runs"].values()
            if r.get("status") == "finished" and r["method"] == BASELINE]
    rows = [
        ("architecture", f"`resnet20` (CIFAR ResNet, {sum(p.numel() for p in model.parameters()) / 1e6:.3f} M "
                         "parameters), {\"num_classes\": 10}"),
        ("data", "CIFAR-10 train split (50,000 images) from the shared JPEG-q75 copy; test on its 10,000 test "
                 "images"),
        ("test accuracy", f"**{100 * acc:.2f} %** top-1, float32, last step (engine's bf16 evaluation "
                          f"{100 * rec['metrics']['last_acc']:.2f} %, best evaluation "
                          f"{100 * rec['metrics']['best_acc']:.2f} %)"
                          + (f"; no-distillation resnet20 on the same schedule {100 * statistics.fmean(base):.2f} %"
                             if base else "")),
        ("recipe", f"{LABELS[method]} from the shipped resnet56 teacher (`pretrained:resnet56_cifar10`, 77.39 %): "
                   f"loss {terms}; {sched.describe()}; SGD momentum 0.9, weight decay 5e-4, bf16 autocast, "
                   f"seed {rec['seed']}"),
        ("training time", f"{rec.get('wall_s', 0) / 60:.1f} min wall, {rec.get('cpu_s', 0) / 60:.1f} CPU min on one "
                          f"core of a 2-core machine shared with the rest of the protocol ({_machine()})"),
        ("file", f"`{path.name}` ({path.stat().st_size / 1e6:.2f} MB); load with "
                 "`torchworks.core.checkpoint.load_model(path)`"),
    ]
    card = [f"# {stem}: resnet20 distilled from resnet56 on CIFAR-10 ({LABELS[method]})", "",
            "The best distilled student of the benchmark protocol (`benchmarks/distill/protocol.py`; highest last "
            "test accuracy), written by `protocol.py report`. Test accuracy is also the selection criterion, so "
            "it is slightly optimistic.", "", "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]]
    (out_dir / f"{stem}.md").write_text("\n".join(card) + "\n")
    return path, "\n".join(card)


def shipped_card(state: dict[str, Any], out_dir: Path = PRETRAINED) -> tuple[Path, str] | None:
    """The card already shipped for the best run's method (``report --no-export``: run checkpoints may be gone)."""
    name = best_distilled_run(state)
    card = out_dir / f"resnet20_cifar10_{state['runs'][name]['method']}.md" if name else None
    if card is None or not card.is_file():
        return None
    return card.with_suffix(".safetensors"), card.read_text().rstrip("\n")


def report(state: dict[str, Any] | Path, out: Path, export: bool = True) -> None:
    """Writes the protocol section of ``out`` (the rest of the file is kept) and exports the best student.

    ``state`` is the protocol state (or its file); a state without finished runs gives the plan and estimate.
    With ``export=False`` the student is not exported again (its run checkpoint may be gone) and the section
    carries the card already shipped for that method. ``out`` is replaced atomically.
    """
    if isinstance(state, Path):
        from protocol_queue import load_state

        path, state = state, load_state(state)
        if state is None:
            raise SystemExit(f"no protocol state at {path}: run protocol.py first")
    summary = summarize(state)
    exported = None
    if not state.get("tiny"):
        done = export_best(state) if export else shipped_card(state)
        if done:
            exported = "### Shipped student (model card)\n\n" + "\n".join(done[1].splitlines()[2:])
    section = render(state, summary, exported)
    section += f"\n\n_Written by `protocol.py report` on {time.strftime('%Y-%m-%d %H:%M')}._"
    text = out.read_text() if out.is_file() else ""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(replace_section(text, section))
    os.replace(tmp, out)
    what = "exported the best student to" if export and exported else "kept the student shipped in"
    print(f"wrote the protocol section of {out}" + (f"; {what} {PRETRAINED}" if exported else ""))

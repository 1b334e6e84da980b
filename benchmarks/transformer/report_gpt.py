"""Turn ``benchmarks/transformer/results/*.json`` into the ``gpt`` section of ``docs/results/transformer.md`` and
the curves PNG.

Called by ``bench_gpt.py report``; the numbers are whatever the runs recorded (nothing is typed in by hand). The
rest of the file (other scripts' sections, hand-written text) is kept.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import Machine, write_section  # noqa: E402

REF = "nanogpt"  # the reference run every ratio is taken against
TITLE = "# Transformer results: char-level GPT vs nanoGPT on tinyshakespeare"  # of a new results file


def _runs(runs: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))}


def _cpu(rec: dict) -> float:
    """Whole-process CPU seconds of training, without the separate full-val scoring (nanoGPT's is another process)."""
    return rec["cpu_process_s"] - rec.get("full_val_cpu_s", 0.0)


def _tok_s(rec: dict) -> float:
    return rec["tokens"] / _cpu(rec)


def _describe(rec: dict) -> str:
    if rec["kind"] == "nanogpt":
        return "nanoGPT (temporary checkout), README CPU recipe"
    sets = dict(s.split("=", 1) for s in rec.get("overrides", []))
    model = sets.get("task.model", "gpt_char_small")
    parts = ["RoPE" if "rope" in model else "learned pos", f"lr {float(sets.get('task.lr', 1e-3)):g}"]
    if sets.get("task.decay_embeddings") == "false":
        parts.append("no wd on embeddings")
    parts.append(f"seed {sets.get('seed', 1337)}")
    if Path(rec.get("config", "")).name != "gpt_char_nanogpt.yaml":
        parts.insert(0, Path(rec["config"]).stem)
    return "ours: " + ", ".join(parts)


def _val_curve(rec: dict) -> tuple[list[int], list[float]]:
    if rec["kind"] == "nanogpt":
        return [e[0] for e in rec["evals"]], [e[2] for e in rec["evals"]]
    curve = rec.get("val_curve") or []
    return [int(s) for s, _ in curve], [float(v) for _, v in curve]


def _plot(recs: dict[str, dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, rec in recs.items():
        steps, vals = _val_curve(rec)
        if not steps:
            continue
        cpu_per_step = _cpu(rec) / rec["steps"]
        style = dict(lw=2.2, color="black") if name == REF else dict(lw=1.2)
        label = f"{name} (full val {rec['full_val_loss']:.3f})"
        axes[0].plot(steps, vals, marker="o", ms=3, label=label, **style)
        axes[1].plot([s * cpu_per_step for s in steps], vals, marker="o", ms=3, label=label, **style)
    for ax, xlabel in zip(axes, ("optimisation step", "process CPU seconds (1 thread, pro rata)"), strict=True):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("val loss (480-window estimate)")
        ax.set_ylim(1.7, 2.7)
        ax.axhline(1.85, color="grey", ls=":", lw=1)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("char-level GPT on tinyshakespeare, 1 thread: validation loss during training")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def write_report(runs: Path, root: Path) -> Path:
    """Write the markdown table and the curves; returns the markdown path."""
    recs = _runs(runs)
    train = {k: v for k, v in recs.items() if v.get("kind") in ("ours", "nanogpt")}  # other benchmarks' files too
    out_dir = root / "docs" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / "transformer_curves.png"
    _plot(train, png)
    ref = train.get(REF)
    rows = ["| run | recipe | steps | tokens | full-val loss | val (480-window est.) | process CPU s | CPU vs nanoGPT "
            "| wall s | median step CPU ms | median step wall ms | tokens / CPU-s | tok/CPU-s vs nanoGPT |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in sorted(train.items(), key=lambda kv: (kv[0] != REF, kv[1]["full_val_loss"])):
        cpu_ratio = f"{_cpu(r) / _cpu(ref):.2f}" if ref else "n/a"
        tok_ratio = f"{_tok_s(r) / _tok_s(ref):.2f}" if ref else "n/a"
        step_cpu = f"{r['step_ms_cpu_median']:.1f}" if "step_ms_cpu_median" in r else "n/a"
        val = r.get("val_capped_final")
        rows.append(f"| {name} | {_describe(r)} | {r['steps']} | {r['tokens']:,} | **{r['full_val_loss']:.4f}** | "
                    f"{val:.4f} | {_cpu(r):.1f} | {cpu_ratio} | {r['wall_train_s']:.0f} | {step_cpu} | "
                    f"{r['step_ms_wall_median']:.0f} | {_tok_s(r):,.0f} | {tok_ratio} |")
    loads = [x for r in train.values() for x in (r.get("load_at_start"), r["load_avg"][0]) if x is not None]
    m = Machine.measure(threads=1)
    lines = [
        "Produced by `benchmarks/transformer/bench_gpt.py` (`ours` / `nanogpt`, then `report`); every "
        "number below is read from `benchmarks/transformer/results/*.json`.",
        "",
        f"Machine: {m.arch} {m.cpu}, {m.cores} cores shared with other engineers' jobs, torch {m.torch}, "
        f"**1 thread per run** (`OMP_NUM_THREADS=1`, `torch.set_num_threads(1)`). The load average was "
        f"{min(loads):.1f}-{max(loads):.1f} during the runs (median {statistics.median(loads):.1f}), so wall times "
        "are 5-15x what a quiet machine gives; compare CPU seconds, and only ratios between runs that ran at the "
        "same time. All training runs below overlapped in time (nanogpt_ref1 started about 10 minutes before the "
        "others, when the load was lower, hence its shorter wall time).",
        "",
        "Full-val loss: mean next-token cross-entropy (nats) over the whole 111,540-token validation split (last 10 %"
        " of the characters), non-overlapping 64-token windows, 111,488 targets scored "
        "(`torchworks.transformer.gpt.data.full_val_loss`); nanoGPT's own checkpoint is scored with its own model code "
        "on the same windows. The 480-window estimate is what both trainers saw during training (nanoGPT: "
        "`eval_iters=20` x batch 12; ours: `limit_val_batches=2` x 240).",
        "",
        "CPU seconds are the whole training process (imports, data, tokenising, training, periodic evaluations, "
        "checkpoints), without the full-val scoring that follows; tokens / CPU-s divides the training tokens by "
        "them. Wall seconds are the same span. nanoGPT's CPU comes from `/usr/bin/time -v` (nanogpt_ref1) or from "
        "polling `/proc/<pid>/stat` once a second until exit (nanogpt).",
        "",
        *rows,
        "",
        f"![validation curves]({png.name})",
        "",
    ]
    lines.append("")
    md = root / "docs" / "results" / "transformer.md"
    notes = runs / "NOTES.md"
    if notes.is_file():
        lines += [notes.read_text().strip(), ""]
    write_section(md, "gpt", "\n".join(lines), title=TITLE)
    return md

"""Inference speed of our LaMa generator against advimman/lama's, and what CBAM, channels_last, bf16 and compile cost.

Writes the ``speed`` section of ``docs/results/inpainting.md`` (between ``<!-- speed:start -->`` and
``<!-- speed:end -->``; the rest of the file is kept) and the raw times to
``benchmarks/inpainting/results/speed.json``. Run from the repository root::

    nice -n 15 .venv/bin/python benchmarks/inpainting/bench_speed.py                 # 256/512 px, 1 and 2 threads
    nice -n 15 .venv/bin/python benchmarks/inpainting/bench_speed.py --quick         # lama_small, 128 px, 2 repeats

The reference generator is imported from a temporary copy of an advimman/lama checkout or mirror (see
``lama_reference.py``; ``--lama-ref`` or ``TORCHWORKS_LAMA_REF``); it is never vendored. Our model gets the
reference's (random) weights through ``convert_reference_state_dict``, and the run checks both give the same output
before timing them, so "equal architecture" is verified, not assumed.

Method: batch 1, forward only under ``torch.inference_mode``, eval mode. Other jobs share this machine, so every
variant of one (model, size, threads) cell is timed in the same loop, one call each per repeat, in an order that
rotates from repeat to repeat; ratios are the median over repeats of the per-repeat ratio (each pair of calls ran
seconds apart, under nearly the same load), which is far steadier than a ratio of separately taken medians.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(HERE.parent)]

from _common import Machine, write_section  # noqa: E402
from lama_reference import build_reference, find_source, reference_generator_class, source_commit  # noqa: E402

DOC = ROOT / "docs" / "results" / "inpainting.md"
RAW = HERE / "results" / "speed.json"
ARCH = {"lama_fourier": (64, 3, 9), "lama_small": (32, 3, 6), "lama_tiny": (16, 2, 3)}
"""Our variant -> (ngf, n_downsampling, n_blocks) of the same reference generator."""
RELAMA = {"lama_fourier": "relama_fourier", "lama_small": "relama_small", "lama_tiny": "relama_tiny"}
OVERSUBSCRIBED = 1.5
"""A row with several threads whose CPU time per forward exceeds this multiple of the 1-thread row of the same
model and size is withdrawn: the extra CPU time is threads spinning on a machine with no core free for them, not
work of the model, and it skews every ratio of that row."""


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
"""Wall time is what a user waits; process CPU time excludes the time other jobs hold the cores, so under load
it is the steadier measure of the work a model does (with 2 threads it adds up both threads)."""


def interleaved_times(candidates: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1,
                      clocks: dict[str, Callable[[], float]] | None = None) -> dict[str, dict[str, list[float]]]:
    """Seconds per call, ``{clock: {candidate: [repeats values]}}``, the candidates alternating within a repeat.

    The order rotates by one candidate per repeat, so none always runs first (right after the previous cell's
    work) or last. ``warmup`` untimed rounds come first (allocator, oneDNN primitive caches, compilation).
    """
    clocks = clocks or CLOCKS
    names = list(candidates)
    for _ in range(warmup):
        for n in names:
            candidates[n]()
    times: dict[str, dict[str, list[float]]] = {c: {n: [] for n in names} for c in clocks}
    for r in range(repeats):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            start = {c: f() for c, f in clocks.items()}
            candidates[n]()
            for c, f in clocks.items():
                times[c][n].append(f() - start[c])
    return times


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over repeats of ``a[i] / b[i]``."""
    if len(a) != len(b) or not a:
        raise ValueError(f"need two equally long non-empty series, got {len(a)} and {len(b)}")
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def _caller(model: torch.nn.Module, x: torch.Tensor, bf16: bool = False) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model(x)

    return run


def _try_compile(model: torch.nn.Module, x: torch.Tensor) -> tuple[Callable[[], torch.Tensor] | None, str]:
    """A compiled caller and a note (compile seconds), or None and why compilation failed."""
    try:
        compiled = torch.compile(model, dynamic=False)
        run = _caller(compiled, x)
        t0 = time.perf_counter()
        run()
        return run, f"compiled in {time.perf_counter() - t0:.0f} s"
    except Exception as e:  # noqa: BLE001 - any backend failure is reported, not fatal
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        return None, f"failed: {type(e).__name__}: {first}"


def time_cell(name: str, ref_cls: Any, size: int, threads: int, repeats: int, compile_: bool = False) -> dict[str, Any]:
    """Times every variant of ``name`` at ``size`` px with ``threads`` torch threads; returns one result row."""
    import torchworks.inpainting.nets  # noqa: F401  (registers the generators)
    from torchworks.core.registry import MODELS
    from torchworks.inpainting.nets.lama import convert_reference_state_dict

    torch.set_num_threads(threads)
    ngf, n_down, n_blocks = ARCH[name]
    torch.manual_seed(0)
    ref = build_reference(ref_cls, ngf, n_down, n_blocks).eval()
    ours = MODELS.build(name).eval()
    ours.load_state_dict(convert_reference_state_dict(ref.state_dict(), n_down, n_blocks))
    relama = MODELS.build(RELAMA[name]).eval()
    relama.load_state_dict(ours.state_dict(), strict=False)  # shared layers equal; CBAM weights random
    x = torch.rand(1, 4, size, size, generator=torch.Generator().manual_seed(size))
    ours_cl = MODELS.build(name).eval().to(memory_format=torch.channels_last)
    ours_cl.load_state_dict(ours.state_dict())
    x_cl = x.contiguous(memory_format=torch.channels_last)

    calls = {"ours": _caller(ours, x), "reference": _caller(ref, x), "relama": _caller(relama, x),
             "channels_last": _caller(ours_cl, x_cl), "bf16": _caller(ours, x, bf16=True),
             "bf16_cl": _caller(ours_cl, x_cl, bf16=True)}  # = LearnedInpainter(precision="bf16")
    y_ours, y_ref = calls["ours"](), calls["reference"]()
    checks = {"ref_max_abs_diff": float((y_ours - y_ref).abs().max()),
              "channels_last_max_abs_diff": float((calls["channels_last"]() - y_ours).abs().max()),
              "bf16_max_abs_diff": float((calls["bf16"]().float() - y_ours).abs().max()),
              "bf16_cl_max_abs_diff": float((calls["bf16_cl"]().float() - y_ours).abs().max())}
    compile_note = ""
    if compile_:
        run, compile_note = _try_compile(ours, x)
        if run is not None:
            calls["compiled"] = run
            checks["compiled_max_abs_diff"] = float((run() - y_ours).abs().max())
    load0 = os.getloadavg()[0]
    times = interleaved_times(calls, repeats, warmup=0)  # every variant already ran for the checks above
    row: dict[str, Any] = {"model": name, "size": size, "threads": threads, "repeats": repeats,
                           "load_before": load0, "load_after": os.getloadavg()[0], "compile": compile_note,
                           **checks, "times": times,
                           "median_s": {k: statistics.median(v) for k, v in times["wall"].items()},
                           "median_cpu_s": {k: statistics.median(v) for k, v in times["cpu"].items()}}
    for clock, t in times.items():
        row[f"ratio_vs_ours_{clock}"] = {k: paired_ratio(v, t["ours"]) for k, v in t.items() if k != "ours"}
        row[f"ours_over_reference_{clock}"] = paired_ratio(t["ours"], t["reference"])
        row[f"bf16_cl_over_reference_{clock}"] = paired_ratio(t["bf16_cl"], t["reference"])
    return row


def op_counts(model: torch.nn.Module, x: torch.Tensor) -> dict[str, int]:
    """ATen operator calls of one forward (profiler events, nested ones included): a load-independent measure of
    the work around the convolutions. Keys: ``total`` and every operator seen."""
    from torch.profiler import profile

    with torch.inference_mode(), profile() as prof:
        model(x)
    counts = {e.key: e.count for e in prof.key_averages() if e.key.startswith("aten::")}
    return {"total": sum(counts.values()), **dict(sorted(counts.items(), key=lambda kv: -kv[1]))}


def focused_ab(name: str, ref_cls: Any, size: int, threads: int, repeats: int) -> dict[str, Any]:
    """Ours against the reference only, many interleaved repeats, plus operator counts of one forward each."""
    import torchworks.inpainting.nets  # noqa: F401  (registers the generators)
    from torchworks.core.registry import MODELS
    from torchworks.inpainting.nets.lama import convert_reference_state_dict

    torch.set_num_threads(threads)
    ngf, n_down, n_blocks = ARCH[name]
    torch.manual_seed(0)
    ref = build_reference(ref_cls, ngf, n_down, n_blocks).eval()
    ours = MODELS.build(name).eval()
    ours.load_state_dict(convert_reference_state_dict(ref.state_dict(), n_down, n_blocks))
    x = torch.rand(1, 4, size, size, generator=torch.Generator().manual_seed(size))
    times = interleaved_times({"ours": _caller(ours, x), "reference": _caller(ref, x)}, repeats)
    out: dict[str, Any] = {"model": name, "size": size, "threads": threads, "repeats": repeats, "times": times,
                           "ops": {"ours": op_counts(ours, x), "reference": op_counts(ref, x)}}
    for clock, t in times.items():
        r = sorted(a / b for a, b in zip(t["ours"], t["reference"], strict=True))
        out[clock] = {"median": statistics.median(r), "q1": r[len(r) // 4], "q3": r[(3 * len(r)) // 4]}
    return out


def plan_cells(models: list[str], sizes: list[int], threads: list[int], small_one_thread: bool = True
               ) -> list[tuple[str, int, int]]:
    """(model, px, threads) cells: every combination for the first model, 1 thread only for the others if asked."""
    return [(m, s, t) for t in threads for m in models for s in sizes
            if not (small_one_thread and m != models[0] and t != min(threads))]


def _ms(s: float) -> str:
    return f"{1000 * s:,.0f}"


def withdrawn(rows: list[dict[str, Any]]) -> dict[tuple[str, int, int], float]:
    """``{(model, px, threads): CPU time per forward / that of the 1-thread row}`` for the rows above
    :data:`OVERSUBSCRIBED` (only rows with a 1-thread row of the same model and size can be judged)."""
    one = {(r["model"], r["size"]): r["median_cpu_s"].get("ours") for r in rows if r["threads"] == 1}
    out = {}
    for r in rows:
        base, cpu = one.get((r["model"], r["size"])), r["median_cpu_s"].get("ours")
        if r["threads"] > 1 and base and cpu and cpu / base > OVERSUBSCRIBED:
            out[(r["model"], r["size"], r["threads"])] = cpu / base
    return out


def report(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The Markdown body of the ``speed`` section."""
    import torchworks.inpainting.nets  # noqa: F401  (registers the generators)
    from torchworks.inpainting.nets.relama import count_parameters

    out_of = withdrawn(rows)
    gone = [r for r in rows if (r["model"], r["size"], r["threads"]) in out_of]
    rows = [r for r in rows if r not in gone]
    cores = f" on {meta['cores']} cores" if meta.get("cores") else ""
    busy = meta.get("cores") is None or meta["load_max"] > meta["cores"]
    lines = [
        "## Speed: our generator vs the reference LaMa module (CPU inference)",
        "",
        f"Produced by `{meta['command']}` on {meta['date']} in {meta['seconds']:.0f} s; machine: {meta['machine']}, "
        f"torch {meta['torch']}; reference advimman/lama `{meta['reference']}`, imported from a temporary copy "
        "(`benchmarks/inpainting/lama_reference.py`), random weights shared by both models. Batch 1, forward "
        "under `torch.inference_mode`, eval mode. "
        + ("Other jobs loaded the machine" if busy else "Load during the timing") + " (load average "
        f"{meta['load_min']:.1f}-{meta['load_max']:.1f}{cores}), so all variants of a row were timed "
        "**interleaved** (one call each per repeat, rotating order): the ratio columns are medians of per-repeat "
        "ratios and are the numbers to trust; absolute milliseconds are upper bounds.",
        "",
        "Each ratio cell reads **wall / CPU**: the median per-repeat ratio of wall-clock times, then of process "
        "CPU times (CPU time leaves out the time other jobs held the cores, so it is the steadier of the two).",
        "",
        "| model | px | threads | repeats | ours ms (wall) | reference ms (wall) | **ours / ref** | "
        "ReLaMa / ours (CBAM) | channels_last / ours | bf16 autocast / ours | torch.compile / ours |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    def pair(r: dict[str, Any], key: str) -> str:
        w, c = r["ratio_vs_ours_wall"].get(key), r["ratio_vs_ours_cpu"].get(key)
        return "-" if w is None else f"{w:.2f} / {c:.2f}"

    for r in rows:
        lines.append(f"| {r['model']} | {r['size']} | {r['threads']} | {r['repeats']} | {_ms(r['median_s']['ours'])} "
                     f"| {_ms(r['median_s']['reference'])} | **{r['ours_over_reference_wall']:.3f} / "
                     f"{r['ours_over_reference_cpu']:.3f}** | {pair(r, 'relama')} | {pair(r, 'channels_last')} | "
                     f"{pair(r, 'bf16')} | {pair(r, 'compiled')} |")
    worst = max(r["ours_over_reference_cpu"] for r in rows)
    best = min(r["ours_over_reference_cpu"] for r in rows)
    worst_wall = max(r["ours_over_reference_wall"] for r in rows)
    best_wall = min(r["ours_over_reference_wall"] for r in rows)
    diffs = max(r["ref_max_abs_diff"] for r in rows)
    cbam = [r["ratio_vs_ours_cpu"]["relama"] for r in rows]
    extra = ", ".join(f"{name} +{100 * (count_parameters(RELAMA[name]) / count_parameters(name) - 1):.2f} %"
                      for name in dict.fromkeys(r["model"] for r in rows))
    cl = [r["ratio_vs_ours_cpu"]["channels_last"] for r in rows]
    bf = [r["ratio_vs_ours_cpu"]["bf16"] for r in rows]
    comp = [f"{r['model']} {r['size']} px: x{r['ratio_vs_ours_cpu']['compiled']:.2f}" for r in rows
            if "compiled" in r["ratio_vs_ours_cpu"]]
    bf_err = max(r["bf16_max_abs_diff"] for r in rows)
    comp_notes = sorted({f"{r['model']} {r['size']} px, {r['threads']} thr: {r['compile']}" for r in rows
                         if r["compile"]}) or ["not tried in this run"]
    verdict = ("at least as fast as the reference in every row" if worst <= 1.0 else
               f"above 1 in at least one row (worst {worst:.3f})")
    lines += [
        "",
        "Ratios below 1 mean faster than the baseline of the column (the reference for **ours / ref**, our plain "
        "float32 LaMa otherwise).",
        "",
        "**Findings.**",
        f"- Equal architecture, verified: with the reference's weights our output equals the reference's to "
        f"{diffs:.1e} (max abs difference over all rows). Ours / reference in CPU time ranges {best:.3f}-{worst:.3f}"
        f" ({verdict}); in wall time {best_wall:.3f}-{worst_wall:.3f}. "
        "Both run the same convolutions and FFTs, so the difference is the glue around them (our FFT packing uses "
        "`view_as_real` instead of stacking real and imaginary parts, and empty branches are skipped instead of "
        "adding zeros).",
        f"- CBAM (ReLaMa, paper variant, one module per branch in every res-block) costs x{min(cbam):.2f}-"
        f"x{max(cbam):.2f} the CPU time of LaMa of the same size; parameters: {extra}.",
        f"- CPU time, relative to our float32 default: channels_last x{min(cl):.2f}-x{max(cl):.2f}; bf16 autocast "
        f"x{min(bf):.2f}-x{max(bf):.2f} (the FFTs "
        f"stay float32: pocketfft has no bf16 kernels); its output differs from float32 by up to {bf_err:.3f} on "
        "the [0, 1] scale.",
    ] + ([
        "- The inpainter's fast path, `--precision bf16` (bf16 autocast on a channels_last model), against the "
        "reference module at equal architecture, CPU time (median per-repeat ratio; goal <= 0.6): "
        + "; ".join(f"{r['model']} {r['size']} px {r['threads']} thr **x{r['bf16_cl_over_reference_cpu']:.2f}** "
                    f"(max abs difference to float32 {r['bf16_cl_max_abs_diff']:.4f})"
                    for r in rows if "bf16_cl_over_reference_cpu" in r) + ".",
    ] if any("bf16_cl_over_reference_cpu" in r for r in rows) else []) + [
        "- torch.compile (inductor, `dynamic=False`, timed only in the cells listed, since compiling takes minutes "
        "on this machine): " + "; ".join(comp_notes) + (f". CPU time relative to eager: {', '.join(comp)}; inductor "
                                                         "generates no code for the complex FFT ops, which stay eager"
                                                         if comp else "") + ".",
        "",
        "Raw per-repeat times: `benchmarks/inpainting/results/speed.json`.",
    ]
    if gone:
        lines[-2:-2] = ["- Withdrawn pending a re-run on a quiet machine: " + "; ".join(
            f"{r['model']} {r['size']} px {r['threads']} threads (its CPU time per forward was "
            f"{out_of[(r['model'], r['size'], r['threads'])]:.1f}x that of the 1-thread row, load average "
            f"{r['load_before']:.1f}-{r['load_after']:.1f}: its threads spun waiting for a core, so its ratios, "
            f"ReLaMa x{r['ratio_vs_ours_cpu']['relama']:.2f} and bf16 x{r['ratio_vs_ours_cpu']['bf16']:.2f}, "
            "measure contention, not the models)" for r in gone) + "; their raw times stay in the JSON file."]
    if meta.get("pending"):
        lines[-2:-2] = [f"- Not measured in this run (stopped, or still running, when this was written): "
                        f"{', '.join(meta['pending'])}."]
    for add in meta.get("added", []):
        lines[-2:-2] = [f"- Added later by `{add['command']}` on {add['date']} (load average "
                        f"{add['load_min']:.1f}-{add['load_max']:.1f}): {', '.join(add['cells'])}."]
    for ab in meta.get("ab", []):
        o, r = ab["ops"]["ours"], ab["ops"]["reference"]
        lines[-2:-2] = [
            f"- Focused check, {ab['model']} at {ab['size']} px, {ab['threads']} thread(s), {ab['repeats']} "
            f"interleaved repeats of ours and the reference only: ours / reference = {ab['cpu']['median']:.3f} in "
            f"CPU time (quartiles {ab['cpu']['q1']:.3f}-{ab['cpu']['q3']:.3f}), {ab['wall']['median']:.3f} in wall "
            f"time (quartiles {ab['wall']['q1']:.3f}-{ab['wall']['q3']:.3f}). Load-independent: one forward runs "
            f"{o['total']:,} ATen operator calls in ours against {r['total']:,} in the reference, with the same "
            f"convolutions ({o.get('aten::convolution', 0)} vs {r.get('aten::convolution', 0)}) and FFTs; the "
            f"reference also multiplies the cross-branch outputs by a gate of 1, adds a 0 local-Fourier term and "
            f"copies more while packing the spectrum (aten::mul {o.get('aten::mul', 0)} vs {r.get('aten::mul', 0)}, "
            f"aten::add {o.get('aten::add', 0)} vs {r.get('aten::add', 0)}, aten::copy_ {o.get('aten::copy_', 0)} vs "
            f"{r.get('aten::copy_', 0)}).",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["lama_fourier", "lama_small"], choices=list(ARCH))
    p.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--repeats", type=int, default=5, help="timed calls per variant up to 256 px")
    p.add_argument("--repeats-large", type=int, default=3, help="timed calls per variant above 256 px")
    p.add_argument("--small-one-thread", action="store_true", default=True,
                   help="time models other than the first at 1 thread only (default; the machine is shared)")
    p.add_argument("--compile-cells", nargs="*", default=["lama_small:256:1", "lama_fourier:256:1"],
                   help="model:px:threads cells that also time torch.compile (compiling takes minutes each)")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--lama-ref", default=None, help="advimman/lama checkout or bare mirror")
    p.add_argument("--quick", action="store_true", help="lama_small at 128 px, 1 thread, 2 repeats, no compile")
    p.add_argument("--out", default=str(DOC), help="Markdown file whose speed section is rewritten")
    p.add_argument("--raw", default=str(RAW), help="JSON file for the raw times")
    p.add_argument("--report-only", action="store_true", help="rewrite the section from --raw, time nothing")
    p.add_argument("--merge", action="store_true",
                   help="time only the given cells and merge them into --raw (replacing the same cells), e.g. a "
                        "cell an earlier run left pending")
    p.add_argument("--ab", default=None, metavar="MODEL:PX:THREADS",
                   help="only a focused ours-vs-reference check of one cell, added to --raw and the section")
    p.add_argument("--ab-repeats", type=int, default=15)
    args = p.parse_args(argv)
    if args.ab:
        name, px, thr = args.ab.split(":")
        saved = json.loads(Path(args.raw).read_text())
        with reference_generator_class(find_source(args.lama_ref)) as ref_cls:
            ab = focused_ab(name, ref_cls, int(px), int(thr), args.ab_repeats)
        saved["meta"]["ab"] = [a for a in saved["meta"].get("ab", []) if (a["model"], a["size"], a["threads"]) != (
            ab["model"], ab["size"], ab["threads"])] + [ab]
        Path(args.raw).write_text(json.dumps(saved, indent=1) + "\n")
        write_section(args.out, "speed", report(saved["rows"], saved["meta"]))
        print(f"{args.ab}: cpu {ab['cpu']}, wall {ab['wall']}; ops ours {ab['ops']['ours']['total']} ref "
              f"{ab['ops']['reference']['total']}")
        return 0
    if args.report_only:
        saved = json.loads(Path(args.raw).read_text())
        write_section(args.out, "speed", report(saved["rows"], saved["meta"]))
        print(f"rewrote the speed section of {args.out} from {args.raw}")
        return 0
    if args.quick:
        args.models, args.sizes, args.threads, args.repeats, args.no_compile = ["lama_small"], [128], [1], 2, True
        args.repeats_large = 2
    src = find_source(args.lama_ref)
    if src is None:
        print("no advimman/lama source: pass --lama-ref or set TORCHWORKS_LAMA_REF", file=sys.stderr)
        return 2
    started = time.time()
    machine = Machine.measure()
    if machine.busy:
        print(f"warning: {machine.load_text()} on {machine.cores} cores: wall times will be inflated; the ratios "
              "are interleaved, but publish only a run on a quiet machine", file=sys.stderr)
    rows = []
    cells = plan_cells(args.models, args.sizes, args.threads, args.small_one_thread)
    with reference_generator_class(src) as ref_cls:
        for name, size, threads in cells:
            compile_ = not args.no_compile and f"{name}:{size}:{threads}" in args.compile_cells
            repeats = args.repeats if size <= 256 else args.repeats_large
            row = time_cell(name, ref_cls, size, threads, repeats, compile_)
            rows.append(row)
            print(f"{name} {size}px {threads}thr: ours {_ms(row['median_s']['ours'])} ms, ref "
                  f"{_ms(row['median_s']['reference'])} ms, ours/ref wall {row['ours_over_reference_wall']:.3f} "
                  f"cpu {row['ours_over_reference_cpu']:.3f}, cpu "
                  f"{ {k: round(v, 3) for k, v in row['ratio_vs_ours_cpu'].items()} } {row['compile']}", flush=True)
            if compile_:
                torch._dynamo.reset()
            # written after every cell, so an interrupted run still leaves a consistent, complete-so-far report
            loads = [v for r in rows for v in (r["load_before"], r["load_after"])]
            pending = [f"{m} {s} px {t} thr" for m, s, t in cells[len(rows):]]
            meta = {"command": "python benchmarks/inpainting/bench_speed.py " + " ".join(argv or sys.argv[1:]),
                    "date": datetime.date.today().isoformat(), "seconds": time.time() - started,
                    "machine": f"{machine.arch} {machine.cpu}, {machine.cores} cores", "cores": machine.cores,
                    "torch": torch.__version__,
                    "reference": source_commit(src), "load_min": min(loads), "load_max": max(loads),
                    "pending": pending}
            out_rows = rows
            if args.merge:  # the earlier run's rows and meta, with these cells replaced and recorded as added
                saved = json.loads(Path(args.raw).read_text())
                done = {(r["model"], r["size"], r["threads"]) for r in rows}
                out_rows = [r for r in saved["rows"] if (r["model"], r["size"], r["threads"]) not in done] + rows
                cells_done = [f"{r['model']} {r['size']} px {r['threads']} thr" for r in rows]
                added = [a for a in saved["meta"].get("added", []) if a["command"] != meta["command"]]
                meta = {**saved["meta"], "pending": [c for c in saved["meta"].get("pending", [])
                                                     if c not in cells_done] + pending,
                        "added": added + [{"command": meta["command"], "date": meta["date"], "cells": cells_done,
                                           "load_min": meta["load_min"], "load_max": meta["load_max"]}]}
            Path(args.raw).parent.mkdir(parents=True, exist_ok=True)
            Path(args.raw).write_text(json.dumps({"meta": meta, "rows": out_rows}, indent=1) + "\n")
            write_section(args.out, "speed", report(out_rows, meta))
    print(f"wrote the speed section of {args.out} and {args.raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Per-step cost of every distillation method against the plain student step, and NST/FSP batched vs naive.

Run (1 thread, as everything on the shared 2-core machine)::

    OMP_NUM_THREADS=1 python benchmarks/distill/bench_overhead.py --out docs/results/distill.md

A "step" is what the engine does per batch: ``DistillationTask.training_step`` (teacher forward under no_grad,
student forward with features, all loss terms), zero-grad, backward and the SGD step, batch 64 of real CIFAR-10
images, float32, channels-last. ``none`` is the plain student step (CE only; the teacher is not run). Reported:
medians over the timed steps of process CPU time (robust to other jobs on the machine) and of wall time.
The teacher is the untrained architecture unless ``--teacher-ckpt`` is given: the cost does not depend on weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings

import torch

import torchworks.distill.task  # noqa: F401  (registers the zoo and the task)
from torchworks.distill.recipes import METHODS, method_terms
from torchworks.distill.task import DistillationTask, DistillConfig


def time_steps(task: DistillationTask, batch, steps: int, warmup: int) -> tuple[float, float]:
    """Median (cpu seconds, wall seconds) of one optimisation step."""
    opt = task.configure_optimizers()
    cpu, wall = [], []
    for i in range(warmup + steps):
        c0, w0 = time.process_time(), time.perf_counter()
        out = task.training_step(batch)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        if i >= warmup:
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
    return statistics.median(cpu), statistics.median(wall)


def bench_methods(args) -> list[tuple[str, float, float]]:
    rows = []
    batch = None
    for method in args.methods:
        init = 10**9 if method in ("ab", "fsp") else 0  # time the phase the method trains in
        cfg = DistillConfig(teacher=args.teacher, student=args.student, teacher_ckpt=args.teacher_ckpt,
                            losses=method_terms(method), init_steps=init, dataset="cifar10", crop_padding=4,
                            flip=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            task = DistillationTask(cfg)
        if batch is None:
            ds = task.train_dataset()
            g = torch.Generator().manual_seed(0)
            ids = torch.randperm(len(ds), generator=g)[: args.batch].tolist()
            items = [ds[i] for i in ids]
            batch = (torch.stack([it[0] for it in items]), torch.tensor([it[1] for it in items]),
                     torch.tensor(ids))
        cpu, wall = time_steps(task, batch, args.steps, args.warmup)
        rows.append((method, cpu, wall))
        print(f"{method:8s} cpu {cpu * 1e3:7.0f} ms   wall {wall * 1e3:7.0f} ms", flush=True)
    return rows


def naive_fsp(bottom, top):
    """RepDistiller's broadcast form: (B, C2, 1, HW) * (B, 1, C1, HW) -> mean over HW (larger map pooled first)."""
    size = (min(bottom.shape[-2], top.shape[-2]), min(bottom.shape[-1], top.shape[-1]))
    bottom, top = (torch.nn.functional.adaptive_avg_pool2d(f, size) for f in (bottom, top))
    return (top.flatten(2)[:, :, None, :] * bottom.flatten(2)[:, None, :, :]).mean(-1)


def naive_poly(a, b, degree=2, c=0.0):
    """RepDistiller's NST kernel: (B, 1, Ca, N) * (B, Cb, 1, N) summed over N, then (.+c)^d averaged."""
    return ((a[:, None] * b[:, :, None]).sum(-1) + c).pow(degree).mean()


def nst_value(fs, ft, poly):
    s, t = [torch.nn.functional.normalize(f.flatten(2), dim=2) for f in (fs, ft)]
    return poly(t, t) + poly(s, s) - 2 * poly(s, t)


def bench_batched(shapes, batch, reps) -> list[tuple[str, str, float, float, float]]:
    from torchworks.distill.losses.fsp import fsp_matrix
    from torchworks.distill.losses.nst import poly_kernel_mean

    g = torch.Generator().manual_seed(0)
    fs = [torch.randn(batch, *s, generator=g, requires_grad=True) for s in shapes]
    ft = [torch.randn(batch, *s, generator=g) for s in shapes]

    def run(fn):
        times, value = [], None
        for _ in range(reps + 1):
            c0 = time.process_time()
            v = fn()
            v.backward()
            times.append(time.process_time() - c0)
            value = float(v)
        return statistics.median(times[1:]), value

    out = []
    fsp_fast = lambda: sum((fsp_matrix(fs[k], fs[k + 1]) - fsp_matrix(ft[k], ft[k + 1])).pow(2).mean()  # noqa: E731
                           for k in range(len(fs) - 1))
    fsp_slow = lambda: sum((naive_fsp(fs[k], fs[k + 1]) - naive_fsp(ft[k], ft[k + 1])).pow(2).mean()  # noqa: E731
                           for k in range(len(fs) - 1))
    poly_fast = lambda a, b: poly_kernel_mean(a, b, 2, 0.0)  # noqa: E731
    nst_fast = lambda: sum(nst_value(a, b, poly_fast) for a, b in zip(fs, ft, strict=True))  # noqa: E731
    nst_slow = lambda: sum(nst_value(a, b, naive_poly) for a, b in zip(fs, ft, strict=True))  # noqa: E731
    for name, fast, slow in (("FSP", fsp_fast, fsp_slow), ("NST", nst_fast, nst_slow)):
        t_fast, v_fast = run(fast)
        t_slow, v_slow = run(slow)
        out.append((name, f"{batch}x{shapes}", t_slow, t_fast, abs(v_fast - v_slow) / max(abs(v_slow), 1e-30)))
        print(f"{name} naive {t_slow * 1e3:.0f} ms  batched {t_fast * 1e3:.0f} ms  rel.diff {out[-1][4]:.1e}",
              flush=True)
    return out


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        name = platform.processor() or platform.machine()
    return name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default="resnet56")
    p.add_argument("--student", default="resnet20")
    p.add_argument("--teacher-ckpt")
    p.add_argument("--methods", nargs="+", default=[*METHODS, "crd+kd"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--out", default="docs/results/distill.md")
    p.add_argument("--reuse", help="JSON of [method, cpu_s, wall_s] rows from an earlier run (written when absent)")
    args = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    reused = bool(args.reuse and os.path.exists(args.reuse))
    if reused:  # e.g. to redo only the NST/FSP part
        with open(args.reuse) as f:
            rows = [tuple(r) for r in json.load(f)]
    else:
        rows = bench_methods(args)
        with open(args.reuse or "benchmarks/distill/overhead_rows.json", "w") as f:
            json.dump(rows, f)
    fast = bench_batched([(16, 32, 32), (32, 16, 16), (64, 8, 8)], 64, 3)
    fast += bench_batched([(64, 32, 32), (128, 16, 16), (256, 8, 8)], 8, 2)
    cpu_of = {m: c for m, c, _ in rows}
    base, kd = cpu_of.get("none"), cpu_of.get("kd")
    load = os.getloadavg()[0]
    lines = [
        f"# Distillation: per-step cost of each method ({args.teacher} -> {args.student})", "",
        "Command: `OMP_NUM_THREADS=1 nice -n 10 python benchmarks/distill/bench_overhead.py "
        f"--steps {args.steps} --warmup {args.warmup}` (method rows cached in `benchmarks/distill/overhead_rows.json`; "
        "`--reuse` re-renders them and re-measures only NST/FSP)  ",
        f"Machine: {_cpu_name()}, torch {torch.__version__}, 1 thread, "
        f"load average {load:.1f} on {os.cpu_count()} cores"
        + (" (shared with other jobs: wall times are inflated, CPU times much less)" if load > (os.cpu_count() or 1)
           else "")
        + f"; took {time.time() - t0:.0f} s" + (" (NST/FSP only; the method rows are reused from the earlier run "
                                                "in `--reuse`)." if reused else "."), "",
        f"One step = training_step + backward + SGD, batch {args.batch} CIFAR-10 images, float32, channels-last. "
        "Medians over the timed steps. CPU = process CPU time (the reliable figure under contention); "
        "overhead = CPU time / CPU time of `none` (plain student step: CE only, teacher not run). "
        "AB and FSP are timed in their init phase (the only phase where they run), FT in its main phase; "
        "CRD uses K=4096 label-aware negatives over N=50,000. \"beyond KD\" = CPU time minus the KD step's: the "
        "cost of the method itself, since every method but `none` pays the teacher's forward pass (resnet56 under "
        "no_grad, about half of a KD step). Wall times were taken at nice 10 under a load average of ~12 and "
        "mostly measure waiting; they are listed for completeness only.", "",
        "| method | CPU ms/step | overhead vs plain student | CPU ms beyond KD | wall ms/step |",
        "|---|---:|---:|---:|---:|",
    ]
    for m, c, w in rows:
        ratio = f"{c / base:.2f}x" if base else "-"
        extra = f"{(c - kd) * 1e3:+.0f}" if kd and m != "none" else "-"
        lines.append(f"| {m} | {c * 1e3:.0f} | {ratio} | {extra} | {w * 1e3:.0f} |")
    lines += ["", "## NST and FSP: batched matrix products vs RepDistiller's broadcast form", "",
              "Forward + backward of the loss alone on random maps (CPU ms, median); values agree to the relative "
              "difference shown.", "", "| loss | maps (batch x shapes) | naive | batched | speed-up | rel. diff |",
              "|---|---|---:|---:|---:|---:|"]
    for name, shp, slow, quick, diff in fast:
        lines.append(f"| {name} | {shp} | {slow * 1e3:.0f} | {quick * 1e3:.0f} | {slow / quick:.1f}x | {diff:.1e} |")
    card = os.path.join(os.path.dirname(torchworks.distill.task.__file__), "pretrained", "resnet56_cifar10.md")
    if os.path.exists(card):
        with open(card) as f:
            lines += ["", "## Shipped teacher (model card)", "", *f.read().replace("\n# ", "\n### ").splitlines()[1:]]
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    text = "\n".join(lines) + "\n"
    if os.path.exists(args.out):  # keep the sections other scripts write into the same file (protocol, losses)
        import re

        with open(args.out) as f:
            old = f.read()
        for block in re.finditer(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->", old, flags=re.S):
            text += "\n" + block.group(0) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

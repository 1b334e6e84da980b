"""CRD's memory lookup and the AB loss: before / after this change, against RepDistiller's forms, 1 thread.

Writes the ``losses`` section of ``docs/results/distill.md`` (the rest of the file is kept) and the raw times to
``benchmarks/distill/results/bench_losses.json``. Run from the repository root::

    nice -n 10 .venv/bin/python benchmarks/distill/bench_losses.py                 # about 4 minutes
    .venv/bin/python benchmarks/distill/bench_losses.py --repeats 3 --no-write     # a quick look

What is timed (process CPU time, so other jobs on the machine inflate it far less than wall time):

* where ``lookup="auto"`` switches: CRD's scores forward + backward, gather vs dense, for K = 256 ... 16384;
* the lookup alone: the B(K+1) bank rows CRD scores, by advanced indexing (``bank[idx]``, the code before) and by
  ``index_select`` (RepDistiller's ``ContrastMemory``);
* ``CRDLoss`` forward + backward at our recipe's size (N = 50,000, K = 4096 label-aware negatives, B = 64,
  resnet56 -> resnet20 pooled features): before (advanced indexing + bmm), ``lookup="gather"``
  (``index_select`` + bmm, RepDistiller's lookup) and ``lookup="dense"`` (one GEMM with the whole bank, the
  default here);
* one whole ``DistillationTask`` step (teacher forward, student forward, loss, backward, SGD) for KD and CRD
  before / after, batch 64, on synthetic images with N = 50,000 (the cost does not depend on pixel values);
* ``ABLoss`` forward + backward on resnet20's three pre-ReLU maps, batch 64: before (two masked cases), now
  (one hinge with a sign), and RepDistiller's ``distiller_zoo/AB.py`` imported from a temporary copy of a
  checkout or mirror (``--repdistiller``; never vendored; skipped when absent). Values are checked equal first.

Every variant of a group runs once per repeat, in an order that rotates between repeats, so each variant sees the
same load; the tables give the median over repeats of the CPU time, and of the per-repeat ratio to the reference.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))

from _common import Machine, atomic_write_text, write_section  # noqa: E402

import torchworks.distill.task  # noqa: E402, F401  (registers the zoo, the losses and the task)
from torchworks.distill.losses import ABLoss, CRDLoss  # noqa: E402
from torchworks.distill.losses import ab as ab_module  # noqa: E402

MIRROR = Path("/work/.mirror/HobbitLong+RepDistiller/repo")
N, K, B, DIM = 50_000, 4096, 64, 64
AB_SHAPES = [(16, 32, 32), (32, 16, 16), (64, 8, 8)]  # resnet20's pre-ReLU stage outputs at 32 px


# --- the forms before this change (reproduced to time them in the same run) -------------------------------------
def scores_before(self, v, bank, contrast_idx):
    """CRD scores as computed before: advanced indexing of the bank rows, then bmm."""
    b, kp1 = contrast_idx.shape
    rows = bank[contrast_idx.flatten()].view(b, kp1, -1)
    return torch.bmm(rows, v[:, :, None]).squeeze(2)


def boundary_before(s, t, margin):
    """AB's hinge as computed before: both cases evaluated everywhere and masked."""
    active = t > 0
    return (active * F.relu(margin - s).pow(2) + (~active) * F.relu(margin + s).pow(2)).sum()


@contextlib.contextmanager
def ab_form(fn):
    saved = ab_module.boundary_loss
    ab_module.boundary_loss = fn
    try:
        yield
    finally:
        ab_module.boundary_loss = saved


def repdistiller_ab(ref: Path | None):
    """RepDistiller's ``ABLoss`` class from a temporary copy of ``distiller_zoo/AB.py`` (checkout or bare mirror)."""
    if ref is None or not ref.exists():
        return None
    tmp = Path(tempfile.mkdtemp(prefix="repdistiller_ab_"))
    try:
        if (ref / "distiller_zoo" / "AB.py").is_file():
            shutil.copy(ref / "distiller_zoo" / "AB.py", tmp / "rep_ab.py")
        else:
            text = subprocess.run(["git", "-C", str(ref), "show", "HEAD:distiller_zoo/AB.py"], check=True,
                                  capture_output=True, text=True).stdout
            (tmp / "rep_ab.py").write_text(text)
        spec = importlib.util.spec_from_file_location("rep_ab", tmp / "rep_ab.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.ABLoss
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- timing -------------------------------------------------------------------------------------------------------
def interleaved(variants: dict[str, Callable[[], None]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """CPU seconds per call of each variant, one call each per repeat in a rotating order."""
    names = list(variants)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            c0 = time.process_time()
            variants[name]()
            if r >= warmup:
                times[name].append(time.process_time() - c0)
    return times


def summary(times: dict[str, list[float]], ref: str) -> dict[str, dict[str, float]]:
    """Median CPU ms per variant and the median per-repeat ratio variant / ``ref``."""
    return {n: {"ms": 1e3 * statistics.median(t),
                "vs_ref": statistics.median(a / b for a, b in zip(t, times[ref], strict=True))}
            for n, t in times.items()}


def bench_lookup(repeats: int) -> dict:
    g = torch.Generator().manual_seed(0)
    bank = F.normalize(torch.randn(N, 128, generator=g), dim=1)
    idx = torch.randint(0, N, (B * (K + 1),), generator=g)
    assert torch.equal(bank[idx], torch.index_select(bank, 0, idx))
    times = interleaved({"advanced indexing (before)": lambda: bank[idx],
                         "index_select": lambda: torch.index_select(bank, 0, idx)}, repeats)
    return summary(times, "index_select")


def bench_crossover(repeats: int) -> dict:
    """Scores forward + backward, gather vs dense, for several K at N = 50,000: where ``lookup="auto"`` switches."""
    from torchworks.distill.losses.crd import ContrastMemory

    g = torch.Generator().manual_seed(4)
    out = {}
    for k in (256, 1024, 4096, 16384):
        mems = {m: ContrastMemory(128, N, k, lookup=m) for m in ("gather", "dense")}
        bank = mems["dense"].memory_t
        idx = torch.randint(0, N, (B, k + 1), generator=g)
        v0 = F.normalize(torch.randn(B, 128, generator=g), dim=1)

        def run(mem, bank=bank, idx=idx, v0=v0):
            def call():
                v = v0.clone().requires_grad_()
                mem.scores(v, bank, idx).exp().sum().backward()
            return call

        res = summary(interleaved({m: run(mem) for m, mem in mems.items()}, max(3, repeats // 3)), "gather")
        out[str(k)] = {"gather_ms": res["gather"]["ms"], "dense_ms": res["dense"]["ms"],
                       "dense_vs_gather": res["dense"]["vs_ref"],
                       "auto": "dense" if ContrastMemory(4, N, k).dense_for(B * (k + 1)) else "gather"}
    return out


def _crd(lookup: str) -> CRDLoss:
    torch.manual_seed(0)
    labels = torch.arange(N) % 10
    loss = CRDLoss(DIM, DIM, N, k=K, labels=labels, lookup="gather" if lookup == "before" else lookup)
    if lookup == "before":
        loss.memory.scores = types.MethodType(scores_before, loss.memory)
    return loss


def bench_crd_loss(repeats: int) -> dict:
    g = torch.Generator().manual_seed(1)
    f_s, f_t = torch.randn(B, DIM, generator=g), torch.randn(B, DIM, generator=g)
    idx = torch.randperm(N, generator=g)[:B]
    losses = {name: _crd(name) for name in ("before", "gather", "dense")}
    cidx = losses["dense"].memory.sample(idx, generator=torch.Generator().manual_seed(2))
    values = {}
    for name, loss in losses.items():  # same value and gradient from every form (one step, memory then diverges)
        s = f_s.clone().requires_grad_()
        value = loss(s, f_t, idx, cidx)
        value.backward()
        values[name] = (float(value), s.grad.clone())
    ref_v, ref_g = values["before"]
    diffs = {n: max(abs(v - ref_v) / abs(ref_v), float((g_ - ref_g).abs().max() / ref_g.abs().max()))
             for n, (v, g_) in values.items()}

    def step(loss):
        def run():
            s = f_s.clone().requires_grad_()
            loss(s, f_t, idx).backward()
        return run

    labels = {"before": "before: advanced indexing + bmm", "gather": "gather: index_select + bmm (RepDistiller)",
              "dense": "dense: one GEMM with the bank (now)"}
    times = interleaved({labels[n]: step(loss) for n, loss in losses.items()}, repeats)
    out = summary(times, labels["before"])
    for n, label in labels.items():
        out[label]["max_rel_diff"] = diffs[n]
    return out


def bench_task_steps(repeats: int) -> dict:
    from torchworks.distill.recipes import method_terms
    from torchworks.distill.task import DistillationTask, DistillConfig

    data = {"dataset": "synthetic", "synthetic_size": N, "crop_padding": 4, "flip": True}
    tasks = {}
    for name, method in (("kd", "kd"), ("crd before", "crd"), ("crd now", "crd")):
        torch.manual_seed(0)
        cfg = DistillConfig(teacher="resnet56", student="resnet20", teacher_ckpt="pretrained:resnet56_cifar10",
                            losses=method_terms(method), **data)
        task = DistillationTask(cfg)
        if name == "crd before":
            memory = task.losses[0].memory
            memory.lookup = "gather"
            memory.scores = types.MethodType(scores_before, memory)
        tasks[name] = task
    ds = tasks["kd"].train_dataset()
    ids = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:B].tolist()
    items = [ds[i] for i in ids]
    batch = (torch.stack([it[0] for it in items]), torch.tensor([it[1] for it in items]), torch.tensor(ids))
    opts = {n: t.configure_optimizers() for n, t in tasks.items()}

    def step(name):
        def run():
            out = tasks[name].training_step(batch)
            opts[name].zero_grad(set_to_none=True)
            out["loss"].backward()
            opts[name].step()
        return run

    return summary(interleaved({n: step(n) for n in tasks}, repeats), "kd")


def bench_ab(repeats: int, ref_cls) -> dict:
    g = torch.Generator().manual_seed(3)
    g_s = [torch.randn(B, *s, generator=g) for s in AB_SHAPES]
    g_t = [torch.randn(B, *s, generator=g) for s in AB_SHAPES]
    ours = ABLoss(AB_SHAPES, AB_SHAPES)

    def ours_run(form):
        def run():
            s = [x.clone().requires_grad_() for x in g_s]
            with ab_form(form):
                ours(s, g_t).backward()
        return run

    variants = {"before: two masked cases": ours_run(boundary_before),
                "now: one hinge with a sign": ours_run(ab_module.boundary_loss)}
    with ab_form(boundary_before):
        before_value = float(ours(g_s, g_t))
    values = {"before: two masked cases": before_value, "now: one hinge with a sign": float(ours(g_s, g_t))}
    if ref_cls is not None:
        ref = ref_cls(len(AB_SHAPES))

        def ref_run():
            s = [x.clone().requires_grad_() for x in g_s]
            sum(ref(s, g_t)).backward()

        variants["RepDistiller's ABLoss"] = ref_run
        values["RepDistiller's ABLoss"] = float(sum(ref(g_s, g_t)))
    times = interleaved(variants, repeats)
    out = summary(times, "before: two masked cases")
    for name, v in values.items():
        out[name]["rel_diff"] = abs(v - before_value) / abs(before_value)
    if ref_cls is not None:
        for name, v in summary(times, "RepDistiller's ABLoss").items():
            out[name]["vs_repdistiller"] = v["vs_ref"]
    return out


# --- the section --------------------------------------------------------------------------------------------------
def render(res: dict, machine: Machine, command: str) -> str:
    lk, crd, steps, ab = res["lookup"], res["crd_loss"], res["task_steps"], res["ab"]
    lines = [
        "## CRD memory lookup and AB loss: before and after", "",
        f"Command: `{command}`; raw times in `benchmarks/distill/results/bench_losses.json`.  ",
        f"Machine: {machine.describe()}; {res['repeats']} interleaved repeats per group (one call of each variant "
        "per repeat, rotating order); medians of process CPU time and of the per-repeat ratios."
        + (" The load exceeded the core count (other jobs): absolute CPU times are inflated by the contention for "
           "caches and memory bandwidth, so rely on the ratios, whose two sides ran seconds apart under the same "
           "load." if machine.busy else ""), "",
        f"**CRD memory lookup** ({B} x {K + 1} rows of a {N:,} x 128 float32 bank):", "",
        "| lookup | CPU ms | vs index_select |", "|---|---:|---:|",
        *[f"| {n} | {v['ms']:.1f} | {v['vs_ref']:.2f}x |" for n, v in lk.items()], "",
        f"**Where `lookup=\"auto\"` switches**: CRD scores forward + backward ({B} anchors, a {N:,} x 128 bank), "
        "copying the rows (gather) or one GEMM with the whole bank (dense):", "",
        "| K | rows scored / N | gather CPU ms | dense CPU ms | dense vs gather | auto picks |",
        "|---:|---:|---:|---:|---:|---|",
        *[f"| {k} | {B * (int(k) + 1) / N:.1f} | {v['gather_ms']:.1f} | {v['dense_ms']:.1f} | "
          f"{v['dense_vs_gather']:.2f}x | {v['auto']} |" for k, v in res["crossover"].items()], "",
        f"**CRDLoss forward + backward** (N = {N:,}, K = {K} label-aware negatives, B = {B}, {DIM}-d features, "
        "both directions, memory update included); the three forms give the same loss and gradient (max. "
        "relative difference shown):", "",
        "| form | CPU ms | vs before | rel. diff |", "|---|---:|---:|---:|",
        *[f"| {n} | {v['ms']:.0f} | {v['vs_ref']:.2f}x | {v['max_rel_diff']:.0e} |" for n, v in crd.items()], "",
        f"**Whole training step**, resnet56 -> resnet20, batch {B}, float32, channels-last (teacher forward, "
        "student forward, loss, backward, SGD):", "",
        "| step | CPU ms | vs KD step | CPU ms beyond KD |", "|---|---:|---:|---:|",
        *[f"| {n} | {v['ms']:.0f} | {v['vs_ref']:.2f}x | {v['ms'] - steps['kd']['ms']:+.0f} |"
          for n, v in steps.items()], "",
        f"**ABLoss forward + backward** on resnet20's pre-ReLU maps {AB_SHAPES}, batch {B} (identity connectors, "
        "as for resnet56 -> resnet20):", "",
    ]
    cached = HERE / "overhead_rows.json"  # the per-method table at the top of the results file
    rows = {m: c for m, c, _ in json.loads(cached.read_text())} if cached.is_file() else {}
    if "crd" in rows and "kd" in rows:
        lines[-2:-2] = [f"The per-method table at the top of this file (`bench_overhead.py`, cached rows) was "
                        f"measured before this change: CRD there costs {1e3 * (rows['crd'] - rows['kd']):+.0f} CPU "
                        "ms beyond KD; the rows above measure it again.", ""]
    ref = "RepDistiller's ABLoss" in ab
    lines += ["| form | CPU ms | vs before | " + ("vs RepDistiller | " if ref else "") + "rel. diff |",
              "|---|---:|---:|" + ("---:|" if ref else "") + "---:|"]
    for n, v in ab.items():
        rep = f" {v['vs_repdistiller']:.2f}x |" if ref else ""
        lines.append(f"| {n} | {v['ms']:.1f} | {v['vs_ref']:.2f}x |{rep} {v['rel_diff']:.0e} |")
    if not ref:
        lines += ["", "RepDistiller's module was not found (give `--repdistiller PATH`), so its column is missing."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=15, help="interleaved repeats per group (default 15)")
    p.add_argument("--step-repeats", type=int, default=7, help="repeats of the whole-step group (default 7)")
    p.add_argument("--repdistiller", type=Path, default=MIRROR, help="RepDistiller checkout or bare mirror")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "distill.md")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    machine = Machine.measure(threads=1)
    t0 = time.time()
    res = {"repeats": args.repeats, "lookup": bench_lookup(args.repeats)}
    print("lookup", json.dumps(res["lookup"], indent=1), flush=True)
    res["crossover"] = bench_crossover(args.repeats)
    print("crossover", json.dumps(res["crossover"], indent=1), flush=True)
    res["crd_loss"] = bench_crd_loss(args.repeats)
    print("crd loss", json.dumps(res["crd_loss"], indent=1), flush=True)
    res["ab"] = bench_ab(args.repeats, repdistiller_ab(args.repdistiller))
    print("ab", json.dumps(res["ab"], indent=1), flush=True)
    res["task_steps"] = bench_task_steps(args.step_repeats)
    print("steps", json.dumps(res["task_steps"], indent=1), flush=True)
    machine.finish()
    res["machine"], res["seconds"] = machine.to_dict(), time.time() - t0
    if args.no_write:
        return 0
    command = "nice -n 10 .venv/bin/python benchmarks/distill/bench_losses.py" + (
        f" --repeats {args.repeats}" if args.repeats != 15 else "")
    atomic_write_text(HERE / "results" / "bench_losses.json", json.dumps(res, indent=1) + "\n")
    write_section(args.out, "losses", render(res, machine, command))
    print(f"wrote the losses section of {args.out} ({res['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Char-level GPT on tinyshakespeare: our engine vs nanoGPT, best recipe (generation speed: bench_generate.py).

Every training run is its own process on ONE thread (``OMP_NUM_THREADS=1`` and ``torch.set_num_threads(1)``), so
its CPU seconds are its own. Per run we record: whole-process CPU seconds (``getrusage``), wall seconds, the median
CPU and wall time of one training step (steps timed from one training forward to the next), the 20-batch-style
capped validation during training, and the FULL validation split (111,488 scored tokens at T=64, non-overlapping
windows, :func:`~torchworks.transformer.gpt.data.full_val_loss`) of the final weights.

nanoGPT runs from a temporary checkout (never vendored) with its README CPU command; its full-val loss is computed
by loading its ``ckpt.pt`` into its own ``model.py`` and scoring the same windows.

Usage (each step writes a JSON under ``benchmarks/transformer/results/``; ``report`` writes the markdown + PNG)::

    python benchmarks/transformer/bench_gpt.py ours --name same --config configs/gpt_char_nanogpt.yaml
    python benchmarks/transformer/bench_gpt.py nanogpt --name nanogpt --checkout /tmp/nanogpt
    python benchmarks/transformer/bench_gpt.py report
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[2]
RUNS = Path(__file__).resolve().parent / "runs"  # run directories, logs, checkpoints (git-ignored)
RESULTS = Path(__file__).resolve().parent / "results"  # one JSON per measurement (committed; the report reads them)
NANOGPT_CMD = ("config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20 --log_interval=1 "
               "--block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 "
               "--lr_decay_iters=2000 --dropout=0.0")


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def val_curve(metrics_csv: str | Path) -> list[list[float]]:
    """``[[step, val/loss], ...]`` from an engine ``metrics.csv``."""
    import csv

    with open(metrics_csv) as fh:
        return [[int(r["step"]), float(r["val/loss"])] for r in csv.DictReader(fh) if r.get("val/loss")]


def _write(name: str, record: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    record.update(name=name, load_avg=os.getloadavg(), cores=os.cpu_count(), host=platform.node(),
                  finished=time.strftime("%F %T"))
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=1))
    print(json.dumps(record))
    return path


def run_ours(args: argparse.Namespace) -> None:
    """Train through the shared engine, time it, then score the full validation split."""
    import torch

    torch.set_num_threads(1)
    import torchworks.transformer  # noqa: F401  (registers gpt_lm)
    from torchworks.core.config import to_dict
    from torchworks.engine.config import load_run_config
    from torchworks.engine.run import build_task
    from torchworks.engine.trainer import Trainer
    from torchworks.transformer.gpt.data import full_val_loss

    load0 = os.getloadavg()[0]
    run_cfg, task_cfg = load_run_config(args.config, args.set + [f"out_dir={args.out or RUNS / 'out' / args.name}"])
    run_cfg.trainer.threads, run_cfg.trainer.progress = 1, False
    trainer = Trainer(run_cfg.trainer, seed=run_cfg.seed, run_config=to_dict(run_cfg))
    task = build_task(run_cfg, task_cfg)
    stamps: list[tuple[float, float]] = []
    task.model.register_forward_pre_hook(
        lambda m, a: stamps.append((time.perf_counter(), time.process_time())) if m.training else None)
    cpu0, wall0 = _cpu_self(), time.perf_counter()
    result = trainer.fit(task, run_cfg.out_dir, overwrite=True)
    cpu_train, wall_train = _cpu_self() - cpu0, time.perf_counter() - wall0
    steps = result.step
    dt_wall = [b[0] - a[0] for a, b in zip(stamps, stamps[1:], strict=False)]
    dt_cpu = [b[1] - a[1] for a, b in zip(stamps, stamps[1:], strict=False)]
    cpu1, wall1 = _cpu_self(), time.perf_counter()
    model = task.model
    full = full_val_loss(model, task.val_tokens, model.config.block_size, batch_size=128)
    tokens = steps * run_cfg.trainer.batch_size * model.config.block_size
    _write(args.name, {
        "kind": "ours", "config": str(args.config), "overrides": args.set, "steps": steps, "tokens": tokens,
        "params": model.num_params(), "cpu_process_s": _cpu_self(), "cpu_train_s": cpu_train,
        "wall_train_s": wall_train, "step_ms_cpu_median": 1e3 * statistics.median(dt_cpu),
        "step_ms_wall_median": 1e3 * statistics.median(dt_wall), "val_capped_final": result.metrics.get("val/loss"),
        "full_val_loss": full, "full_val_cpu_s": _cpu_self() - cpu1, "full_val_wall_s": time.perf_counter() - wall1,
        "tok_per_cpu_s": tokens / cpu_train, "metrics_csv": str(result.metrics_csv), "load_at_start": load0,
        "val_curve": val_curve(result.metrics_csv),
        "last_checkpoint": str(result.last_checkpoint)})


def run_nanogpt(args: argparse.Namespace) -> None:
    """nanoGPT's README CPU command from a temporary checkout, then its full-val loss with its own model code."""
    checkout = Path(args.checkout)
    out = args.out_dir or f"out-{args.name}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    load0 = os.getloadavg()[0]
    if args.from_log:  # a run started by hand under `/usr/bin/time -v` with the same command
        stdout = Path(args.from_log).read_text()
        cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", stdout))
        h_m_s = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", stdout)
        wall = sum(float(p) * 60**i for i, p in enumerate(reversed(h_m_s.group(1).split(":")))) if h_m_s else 0.0
        load0 = None
    else:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall0 = time.perf_counter()
        stdout = subprocess.run([sys.executable, "train.py", *NANOGPT_CMD.split(), f"--out_dir={out}"], cwd=checkout,
                                env=env, capture_output=True, text=True, check=True).stdout
        wall = time.perf_counter() - wall0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    (RUNS / "out").mkdir(parents=True, exist_ok=True)
    log = RUNS / "out" / f"{args.name}.log"
    log.write_text(stdout)
    iters = [(int(i), float(loss), float(ms)) for i, loss, ms in
             re.findall(r"iter (\d+): loss ([\d.]+), time ([\d.]+)ms", stdout)]
    evals = [(int(s), float(tr), float(va)) for s, tr, va in
             re.findall(r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)", stdout)]
    scored = subprocess.run([sys.executable, __file__, "nanogpt-eval", "--checkout", str(checkout), "--out", out],
                            env=env, capture_output=True, text=True, check=True)
    full = json.loads(scored.stdout.splitlines()[-1])  # model.py prints its parameter count first
    if args.cpu_s is not None:  # measured from outside (a watcher on the train.py process)
        cpu, wall = args.cpu_s, args.wall_s
    tokens = 2000 * 12 * 64
    _write(args.name, {
        "kind": "nanogpt", "command": f"python train.py {NANOGPT_CMD}", "steps": 2000, "tokens": tokens,
        "cpu_process_s": cpu, "wall_train_s": wall, "step_ms_wall_median": statistics.median(ms for _, _, ms in iters),
        "val_capped_final": evals[-1][2] if evals else None, "evals": evals, "full_val_loss": full["full_val_loss"],
        "full_val_note": full["note"], "tok_per_cpu_s": tokens / cpu, "log": str(log), "load_at_start": load0})


def nanogpt_eval(args: argparse.Namespace) -> None:
    """Score nanoGPT's best checkpoint (its final one when val keeps improving) on the full val split."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(args.checkout))
    from model import GPT as NanoGPT  # the temporary checkout's own model code
    from model import GPTConfig as NanoConfig

    ckpt = torch.load(Path(args.checkout) / args.out / "ckpt.pt", map_location="cpu", weights_only=False)
    model = NanoGPT(NanoConfig(**ckpt["model_args"]))
    model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})
    val = torch.from_numpy(np.fromfile(Path(args.checkout) / "data/shakespeare_char/val.bin", dtype=np.uint16)
                           .astype(np.int64))
    from torchworks.transformer.gpt.data import full_val_loss

    loss = full_val_loss(model, val, ckpt["model_args"]["block_size"], batch_size=128)
    print(json.dumps({"full_val_loss": loss, "note": f"ckpt.pt at iter {ckpt['iter_num']}"}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ours")
    p.add_argument("--name", required=True)
    p.add_argument("--config", default=str(ROOT / "configs/gpt_char_nanogpt.yaml"))
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--out")
    p = sub.add_parser("nanogpt")
    p.add_argument("--name", default="nanogpt")
    p.add_argument("--checkout", default="/tmp/nanogpt")
    p.add_argument("--out-dir", help="nanoGPT out_dir inside the checkout (default out-<name>)")
    p.add_argument("--from-log", help="ingest a finished hand-started run's stdout (+ `/usr/bin/time -v`)")
    p.add_argument("--cpu-s", type=float, help="with --from-log: CPU seconds measured by a watcher instead")
    p.add_argument("--wall-s", type=float, help="with --from-log: wall seconds measured by a watcher instead")
    p = sub.add_parser("nanogpt-eval")
    p.add_argument("--checkout", required=True)
    p.add_argument("--out", required=True)
    sub.add_parser("report")
    args = parser.parse_args(argv)
    if args.cmd == "report":
        from report_gpt import write_report  # sibling module: markdown table + curves PNG

        write_report(RESULTS, ROOT)
        return
    {"ours": run_ours, "nanogpt": run_nanogpt, "nanogpt-eval": nanogpt_eval}[args.cmd](args)


if __name__ == "__main__":
    main()

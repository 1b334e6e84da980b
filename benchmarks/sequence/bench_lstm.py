"""LSTM training-step time: torchworks LSTM vs torch.nn.LSTM vs Keras 3 (torch backend), same run, same threads.

One step = forward of a many-to-one model (LSTM -> last h -> Linear(U, 1)), MSE loss, backward, zero_grad.
The implementations are interleaved inside every repeat so that load changes on the machine hit all of them;
the table reports the median over repeats of the per-step mean, as wall time and as thread CPU time.

    .venv/bin/python benchmarks/sequence/bench_lstm.py            # writes docs/results/sequence.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import Machine, write_section  # noqa: E402


def build(args: argparse.Namespace) -> dict[str, tuple[nn.Module, object]]:
    """name -> (module holding every parameter, step function)."""
    from torchworks.nn.recurrent import LSTM

    torch.manual_seed(0)
    x = torch.randn(args.batch, args.steps, args.features)
    y = torch.randn(args.batch, 1)
    impls: dict[str, tuple[nn.Module, object]] = {}

    def make(layer: nn.Module, last_h) -> tuple[nn.Module, object]:
        model = nn.ModuleDict({"rnn": layer, "head": nn.Linear(args.units, 1)})

        def step() -> None:
            loss = nn.functional.mse_loss(model["head"](last_h(model["rnn"](x))), y)
            loss.backward()
            model.zero_grad(set_to_none=True)
        return model, step

    impls["torchworks LSTM (fused)"] = make(LSTM(args.features, args.units), lambda h: h)
    loop = LSTM(args.features, args.units)
    loop.fused = False
    impls["torchworks LSTM (cell loop)"] = make(loop, lambda h: h)
    impls["torch.nn.LSTM"] = make(nn.LSTM(args.features, args.units, batch_first=True), lambda r: r[1][0][0])
    if not args.no_keras:
        os.environ["KERAS_BACKEND"] = "torch"
        import keras

        klayer = keras.layers.LSTM(args.units)
        klayer.build((None, args.steps, args.features))
        impls[f"Keras {keras.__version__} LSTM (torch backend)"] = make(klayer, lambda h: h)
    return impls


def measure(impls: dict, repeats: int, iters: int, warmup: int) -> dict[str, dict[str, float]]:
    for _, step in impls.values():
        for _ in range(warmup):
            step()
    samples: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": []} for n in impls}
    for _ in range(repeats):
        for name, (_, step) in impls.items():
            w0, c0 = time.perf_counter(), time.thread_time()
            for _ in range(iters):
                step()
            samples[name]["wall"].append((time.perf_counter() - w0) / iters * 1e3)
            samples[name]["cpu"].append((time.thread_time() - c0) / iters * 1e3)
    return {n: {k: statistics.median(v) for k, v in s.items()} for n, s in samples.items()}


def table(results: dict, args: argparse.Namespace, header: str, machine: Machine) -> str:
    ref = results["torch.nn.LSTM"]
    lines = [
        "## LSTM training step (forward + backward)", "",
        f"B={args.batch}, T={args.steps}, F={args.features}, U={args.units}; many-to-one (last h -> Linear -> MSE); "
        f"median over {args.repeats} repeats of the mean of {args.iters} steps; implementations interleaved.", "",
        f"Command: `{header}`", "", f"Machine: {machine.describe()}", "",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC", "",
        "| implementation | wall ms/step | CPU ms/step | wall ratio vs torch.nn.LSTM | CPU ratio |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['wall'] / ref['wall']:.2f}x "
                     f"| {r['cpu'] / ref['cpu']:.2f}x |")
    lines += ["", "torch.nn.LSTM on CPU runs oneDNN's fused RNN kernel; Keras 3's torch backend uses cuDNN only on GPU "
              "and otherwise loops over steps in Python; ours is a Python loop over steps with one autograd node "
              "for the whole recurrence (`torchworks.nn.recurrent_fused`).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--features", type=int, default=8)
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-keras", action="store_true", help="skip Keras (e.g. when it is not installed)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "sequence.md",
                   help="markdown file to write ('-' prints only)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    header = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    machine = Machine.measure()
    results = measure(build(args), args.repeats, args.iters, args.warmup)
    text = table(results, args, header, machine.finish())
    print(text)
    if str(args.out) != "-":
        write_section(args.out, "bench_lstm", text, title="# Sequence models: measured results")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

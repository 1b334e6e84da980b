"""Engine overhead: the shared Trainer vs a hand-written PyTorch loop on the same Fashion-MNIST MLP.

Both train ``fashion_mlp`` with AdamW (lr 2e-3, cosine) on the same 55k training images, batch 128, the same
number of steps, one thread; the plain loop has no logging, checkpoints or evaluation during training. Reported:
median wall seconds per step over several repeats (the ratio is what to read; this machine is shared and noisy)
and the test accuracy each reaches. CPU seconds (``time.process_time``) are reported beside wall seconds because
on a shared machine they move far less with the load. Writes ``docs/results/engine.md``.

    python benchmarks/engine/bench_engine_overhead.py --steps 1500 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import Machine, atomic_write_text  # noqa: E402


def plain_loop(steps: int, seed: int) -> tuple[float, float, float]:
    """A minimal loop: shuffled batches, forward, backward, step. Returns (wall s, CPU s, test accuracy)."""
    import torchworks.classify  # noqa: F401
    from torchworks.classify.data import split_indices
    from torchworks.core.checkpoint import build_model
    from torchworks.data import load_fashion_mnist

    torch.manual_seed(seed)
    images, labels = load_fashion_mnist("train")
    idx = split_indices(len(labels), holdout=5000)[0]  # the 55k images the task trains on (fixed split)
    x = torch.from_numpy(images[idx]).float().div_(255).unsqueeze(1)
    y = torch.from_numpy(labels[idx])
    model = build_model("fashion_mlp")
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    g = torch.Generator().manual_seed(seed)
    order, pos = torch.randperm(len(x), generator=g), 0
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        if pos + 128 > len(order):
            order, pos = torch.randperm(len(x), generator=g), 0
        idx = order[pos:pos + 128]
        pos += 128
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    ti, tl = load_fashion_mnist("test")
    with torch.no_grad():
        model.eval()
        pred = model(torch.from_numpy(ti).float().div_(255).unsqueeze(1)).argmax(1)
    return seconds, cpu, (pred == torch.from_numpy(tl)).float().mean().item()


def engine_loop(steps: int, seed: int) -> tuple[float, float, float]:
    """The same recipe through ``torchworks.engine.run.train`` (one final evaluation, one final checkpoint)."""
    import torchworks.classify  # noqa: F401
    from torchworks.engine.run import evaluate, train

    cfg = str(ROOT / "configs" / "fashion_mlp.yaml")
    sets = [f"trainer.max_steps={steps}", f"task.total_steps={steps}", "trainer.eval_every=0",
            "trainer.checkpoint_every=0", "trainer.progress=false", "trainer.tensorboard=false",
            "trainer.plots=false", f"seed={seed}"]
    with tempfile.TemporaryDirectory() as out:
        start, cpu = time.perf_counter(), time.process_time()
        result = train(cfg, overrides=sets, out_dir=out, threads=1)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        acc = evaluate(cfg, result.last_checkpoint, overrides=sets, split="test", threads=1)["test/acc"]
    return seconds, cpu, acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "engine.md"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    machine = Machine.measure()
    rows = {"plain PyTorch loop": [], "torchworks Trainer": []}
    for r in range(args.repeats):  # interleave so machine noise hits both alike
        rows["plain PyTorch loop"].append(plain_loop(args.steps, seed=r))
        rows["torchworks Trainer"].append(engine_loop(args.steps, seed=r))
        print(f"repeat {r}: " + ", ".join(f"{k} {v[-1][0]:.1f}s wall {v[-1][1]:.1f}s cpu acc {v[-1][2]:.4f}"
                                          for k, v in rows.items()), flush=True)
    base = statistics.median(c for _, c, _ in rows["plain PyTorch loop"])
    machine.finish()
    lines = [
        "# Engine overhead (Fashion-MNIST MLP)",
        "",
        f"Command: `python benchmarks/engine/bench_engine_overhead.py --steps {args.steps} --repeats {args.repeats}`",
        "",
        f"Machine: {machine.describe()}."
        + (" Shared machine (load above its cores): read the CPU-time ratio, not the seconds." if machine.busy else ""),
        "",
        f"Recipe: fashion_mlp (784-256-128-10), AdamW lr 2e-3 cosine, batch 128, {args.steps} steps, "
        "55k training images; test accuracy on the 10k test set. The Trainer's wall time includes Fabric set-up, "
        "the data loader, CSV logging every 50 steps, the final evaluation on 5k held-out images and one "
        "checkpoint.",
        "",
        "| loop | median CPU s | CPU ms / step | CPU ratio vs plain | median wall s | test acc (median) "
        "| test acc per repeat |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, vals in rows.items():
        cpu = statistics.median(c for _, c, _ in vals)
        wall = statistics.median(w for w, _, _ in vals)
        accs = [a for _, _, a in vals]
        lines.append(f"| {name} | {cpu:.1f} | {1000 * cpu / args.steps:.2f} | {cpu / base:.2f}x | {wall:.1f} | "
                     f"{statistics.median(accs):.4f} | {', '.join(f'{a:.4f}' for a in accs)} |")
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

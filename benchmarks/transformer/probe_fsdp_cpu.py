"""FSDP on CPU: what Lightning Fabric accepts, then ``trainer.strategy: fsdp`` against ``ddp`` through the engine.

    python benchmarks/transformer/probe_fsdp_cpu.py [--steps 60]

Fabric's ``FSDPStrategy`` is asked for the CPU accelerator and its answer recorded; the engine instead runs FSDP
through Fabric's ``ModelParallelStrategy`` (torch FSDP2). Then ``torchworks train configs/tiny_gpt.yaml`` runs on 2
CPU processes (gloo) four times: ``ddp`` for ``--steps`` steps, ``fsdp`` for ``--steps`` steps, and ``fsdp`` stopped
at half way and resumed. Reported: wall time, final losses, the resumed losses against the uninterrupted ones,
the checkpoint files, and how many parameter + optimiser-state elements each process holds (from the shard
files). Writes the ``fsdp`` section of ``docs/results/transformer.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import Machine, write_section  # noqa: E402

TORCHWORKS = str(Path(sys.executable).with_name("torchworks"))


def _fabric_answers() -> tuple[str, str]:
    from lightning_fabric import Fabric, __version__
    from lightning_fabric.strategies import ModelParallelStrategy

    try:
        Fabric(accelerator="cpu", devices=2, strategy="fsdp")
        fsdp = f"Lightning Fabric {__version__} accepts strategy='fsdp' on CPU"
    except ValueError as exc:
        fsdp = f"Lightning Fabric {__version__} refuses strategy='fsdp' on CPU: \"{exc}\""
    try:
        Fabric(accelerator="cpu", devices=2, strategy=ModelParallelStrategy(lambda m, mesh: m, 2, 1))
        mp = "accepts `ModelParallelStrategy` (FSDP2) on CPU"
    except ValueError as exc:
        mp = f"refuses `ModelParallelStrategy` on CPU too: \"{exc}\""
    return fsdp, mp


def _train(out: Path, strategy: str, steps: int, *extra: str) -> float:
    cmd = [TORCHWORKS, "train", str(ROOT / "configs" / "tiny_gpt.yaml"), "--devices", "2", "--strategy", strategy,
           "--out", str(out), "--set", f"trainer.max_steps={steps}", "--set", "trainer.log_every=1",
           "--set", f"trainer.checkpoint_every={max(1, steps // 2)}", "--set", f"task.total_steps={steps}", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"{shlex.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def _losses(run: Path) -> dict[int, str]:
    with open(run / "metrics.csv", newline="") as fh:
        return {int(r["step"]): r["train/loss"] for r in csv.DictReader(fh) if r.get("train/loss")}


def _val(run: Path) -> float:
    with open(run / "metrics.csv", newline="") as fh:
        return [float(r["val/loss"]) for r in csv.DictReader(fh) if r.get("val/loss")][-1]


def _elements(path: Path) -> int:
    """Tensor elements in a safetensors file, from its header alone."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    total = 0
    for key, info in header.items():
        if key != "__metadata__":
            count = 1
            for d in info["shape"]:
                count *= d
            total += count
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="optimisation steps per run (default 60)")
    args = parser.parse_args()
    machine = Machine.measure(threads=1)
    fsdp_answer, mp_answer = _fabric_answers()
    half = args.steps // 2
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wall = {"ddp": _train(tmp / "ddp", "ddp", args.steps), "fsdp": _train(tmp / "fsdp", "fsdp", args.steps)}
        _train(tmp / "resumed", "fsdp", half, "--set", f"task.total_steps={args.steps}")
        _train(tmp / "resumed", "fsdp", args.steps, "--resume", str(tmp / "resumed" / "checkpoints" / "last.ckpt"))
        straight, resumed, ddp = _losses(tmp / "fsdp"), _losses(tmp / "resumed"), _losses(tmp / "ddp")
        after = [s for s in straight if s > half]
        same = sum(resumed.get(s) == straight[s] for s in after)
        val = {k: _val(tmp / k) for k in ("ddp", "fsdp")}
        gap = max(abs(float(ddp[s]) - float(straight[s])) for s in straight)
        ckpts = tmp / "fsdp" / "checkpoints"
        shard_dir = sorted((ckpts / "shards").iterdir())[-1]
        shard_files = sorted(shard_dir.glob("*.safetensors"))
        per_rank = [_elements(p) for p in shard_files]
        sizes = {"ddp last.ckpt": (tmp / "ddp" / "checkpoints" / "last.ckpt").stat().st_size,
                 "fsdp last.ckpt": (ckpts / "last.ckpt").stat().st_size,
                 **{f"shard {p.name}": p.stat().st_size for p in shard_files}}
    machine.finish()
    last = args.steps
    body = "\n".join([
        "## FSDP on CPU (benchmarks/transformer/probe_fsdp_cpu.py)",
        "",
        f"Command: `python {shlex.join(['benchmarks/transformer/probe_fsdp_cpu.py', *sys.argv[1:]])}`. "
        f"Machine: {machine.describe()}.",
        "",
        f"- Fabric: {fsdp_answer} It {mp_answer}, so `trainer.strategy: fsdp` runs through that strategy "
        "(torch `fully_shard` on each GPT block and on the model, 2 gloo processes), and only checkpointing is the "
        "engine's own: Fabric's distributed checkpoints keep a pickled metadata file, the engine writes "
        "`torch.distributed.checkpoint` shards as safetensors (nothing unpickled on load).",
        f"- `configs/tiny_gpt.yaml`, {args.steps} steps, 2 processes: ddp {wall['ddp']:.0f} s wall, fsdp "
        f"{wall['fsdp']:.0f} s wall (process start-up included; the model is tiny, so this measures overhead, not "
        f"memory savings). Final train loss ddp {float(ddp[last]):.5f}, fsdp {float(straight[last]):.5f}; final "
        f"val loss ddp {val['ddp']:.5f}, fsdp {val['fsdp']:.5f}; the largest train-loss difference over the "
        f"{len(straight)} steps is {gap:.1e} (the same gradients, reduced in another order).",
        f"- Resume: fsdp stopped at step {half} and resumed from its sharded `last.ckpt`: {same} of {len(after)} "
        f"later train losses equal the uninterrupted run's to the last printed digit (step {last}: "
        f"{resumed.get(last)} vs {straight[last]}).",
        f"- Each process holds {', '.join(f'{n:,}' for n in per_rank)} parameter + AdamW-moment elements in its "
        f"shard file ({sum(per_rank):,} in all, about half each); files: "
        + ", ".join(f"{k} {v / 1e3:.0f} kB" for k, v in sizes.items())
        + ". The fsdp `last.ckpt` holds the full exported model (as every engine checkpoint does) but no "
        "optimiser moments.",
    ])
    write_section(ROOT / "docs" / "results" / "transformer.md", "fsdp", body)
    print(body)


if __name__ == "__main__":
    main()

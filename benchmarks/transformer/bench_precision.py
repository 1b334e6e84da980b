"""CPU time of one training step in float32 and in bfloat16 autocast, for the ViT and CNN runs of ``bench_vit``.

A step is what the engine does per batch of 128: forward, cross-entropy, backward and an AdamW update, on one
thread. Three settings are timed, interleaved, and each cell is the median over ``--repeats`` rounds of the median
of ``--steps`` timed steps (CPU time of this process):

* ``fp32``: float32 throughout (``trainer.precision: 32-true``);
* ``bf16, torch SDPA``: bfloat16 autocast with attention on ``F.scaled_dot_product_attention`` (what torchworks
  did before the bfloat16 path of ``torchworks.nn.sdpa.attention_sdpa``; the CNNs have no attention, so this
  column is theirs only);
* ``bf16``: bfloat16 autocast as the engine runs it now (``trainer.precision: bf16-mixed``).

It rewrites only its own section of ``docs/results/transformer.md`` (``<!-- precision:start -->`` ...
``<!-- precision:end -->``).

    python benchmarks/transformer/bench_precision.py                # all models, 5 rounds
    python benchmarks/transformer/bench_precision.py --repeats 1    # quick look
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _common import Machine, write_section  # noqa: E402
from bench_vit import RESULTS  # noqa: E402

MODELS = ["vit_small_patch7_28", "vit_small_patch4_28", "vit_mini_patch4_32", "cnn_vgg_28_wide", "cnn_vgg_32"]
SETTINGS = ("fp32", "bf16, torch SDPA", "bf16")


@contextmanager
def torch_sdpa_attention():
    """Route torchworks attention straight to ``F.scaled_dot_product_attention`` (unmasked self-attention only)."""
    import torchworks.nn.sdpa as sdpa

    original = sdpa.attention_sdpa

    def plain(q, k, v, *, attn_mask=None, key_padding_mask=None, is_causal=False, dropout_p=0.0, scale=None):
        assert attn_mask is None and key_padding_mask is None and not is_causal, "ViT attention is unmasked"
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=scale)

    sdpa.attention_sdpa = plain
    try:
        yield
    finally:
        sdpa.attention_sdpa = original


def step_times(name: str, setting: str, steps: int, batch: int = 128) -> float:
    """Median CPU seconds of a training step of model ``name`` under ``setting``."""
    from torchworks.core.registry import MODELS as REGISTRY

    torch.manual_seed(0)
    model = REGISTRY.build(name).train()
    shape = (batch, 1, 28, 28) if "_28" in name else (batch, 3, 32, 32)
    x, y = torch.rand(shape), torch.randint(0, 10, (batch,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    bf16 = setting != "fp32"

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times = []
    ctx = torch_sdpa_attention() if setting == "bf16, torch SDPA" else nullcontext()
    with ctx:
        for i in range(steps + 2):  # two warm-up steps
            t = time.process_time()
            step()
            if i >= 2:
                times.append(time.process_time() - t)
    return statistics.median(times)


def section(cells: dict[tuple[str, str], list[float]], command: str, repeats: int, steps: int) -> str:
    from torchworks.core.registry import MODELS as REGISTRY

    machine = Machine.measure(threads=1)
    lines = ["## Training-step CPU time: float32 vs bfloat16 autocast", "",
             f"Command: `{command}` ({repeats} interleaved rounds x median of {steps} steps; batch 128, forward + "
             f"cross-entropy + backward + AdamW, 1 thread; {machine.cpu}, torch {machine.torch}).", "",
             "| model | params | fp32 CPU-s/step | bf16 with torch SDPA | bf16 (engine `bf16-mixed`) | fp32 / bf16 |",
             "|---|---|---|---|---|---|"]
    for name in MODELS:
        params = sum(p.numel() for p in REGISTRY.build(name).parameters())
        med = {s: statistics.median(cells[name, s]) for s in SETTINGS}
        sdpa = "(no attention)" if name.startswith("cnn") else f"{med['bf16, torch SDPA']:.3f}"
        lines.append(f"| {name} | {params / 1e6:.2f}M | {med['fp32']:.3f} | {sdpa} | {med['bf16']:.3f} | "
                     f"{med['fp32'] / med['bf16']:.2f}x |")
    lines += ["", "The CPU has `avx512_bf16`: a bfloat16 matmul runs at about 3x the float32 rate here. torch's CPU "
              "flash-attention kernel does not gain from it (its bfloat16 backward is slower than float32), so "
              "`attention_sdpa` computes bfloat16 attention on CPU as two matmuls and a softmax. The ViT runs "
              "marked bf16 in the table above use this path; weights and optimizer state stay float32."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds over all cells (median)")
    parser.add_argument("--steps", type=int, default=7, help="timed steps per cell and round (median)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import torchworks.transformer.vit  # noqa: F401  (registers the ViT and CNN models)

    cells: dict[tuple[str, str], list[float]] = {}
    for r in range(args.repeats):
        for name in MODELS:
            for setting in SETTINGS:
                if name.startswith("cnn") and setting == "bf16, torch SDPA":
                    t = float("nan")
                else:
                    t = step_times(name, setting, args.steps)
                cells.setdefault((name, setting), []).append(t)
                print(f"round {r + 1}/{args.repeats}  {name:22s} {setting:17s} {t:.3f} CPU-s/step", flush=True)
    command = "python benchmarks/transformer/bench_precision.py" + (
        f" --repeats {args.repeats}" if args.repeats != 5 else "") + (f" --steps {args.steps}" if args.steps != 7
                                                                       else "")
    write_section(RESULTS, "precision", section(cells, command, args.repeats, args.steps))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

"""Exports a trained teacher from a training checkpoint to the shipped safetensors file + model card.

Usage (after ``configs/cifar_resnet56.yaml`` has finished; the engine's final evaluation is on the test set)::

    python benchmarks/distill/export_teacher.py runs/cifar_resnet56/checkpoints/last.ckpt \\
        --name resnet56_cifar10 --wall-minutes 80

The card states the data, the recipe (the config stored in the checkpoint), the test accuracy (re-measured here
on the full 10k test set unless ``--acc`` is given) and the wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import torchworks.distill.task  # noqa: F401  (registers the tasks and the zoo)
from torchworks.core.checkpoint import load_checkpoint, load_model, save_model

OUT_DIR = Path(__file__).resolve().parents[2] / "src" / "torchworks" / "distill" / "pretrained"


@torch.no_grad()
def test_accuracy(model: torch.nn.Module, batch: int = 500) -> float:
    """Top-1 accuracy on the CIFAR-10 test split, float32, eval mode."""
    from torchworks.data.cifar import CIFARDataset, load_cifar10

    images, labels = load_cifar10("test")
    ds = CIFARDataset(images, labels)
    model.eval()
    correct = 0
    for i in range(0, len(ds), batch):
        x = torch.stack([ds[j][0] for j in range(i, min(i + batch, len(ds)))])
        correct += int((model(x).argmax(1) == ds.labels[i:i + batch]).sum())
    return correct / len(ds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpt")
    p.add_argument("--name", default="resnet56_cifar10")
    p.add_argument("--wall-minutes", type=float, required=True, help="training wall time to state on the card")
    p.add_argument("--acc", type=float, help="test accuracy already measured (skips the re-evaluation)")
    p.add_argument("--training", help="replaces the card's training row (e.g. for a run of several schedules)")
    p.add_argument("--note", default="", help="a paragraph appended to the card (history, deviations)")
    args = p.parse_args()
    torch.set_num_threads(1)

    state = load_checkpoint(args.ckpt)
    model = load_model(args.ckpt)
    t0 = time.time()
    acc = args.acc if args.acc is not None else test_accuracy(model)
    eval_s = time.time() - t0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = save_model(OUT_DIR / f"{args.name}.safetensors", model,
                     extra={"card": {"test_acc": acc, "step": int(state["step"]), "data": "cifar10_jpeg_q75"}})
    cfg = state.get("config") or {}
    n_params = sum(p.numel() for p in model.parameters())
    card = OUT_DIR / f"{args.name}.md"
    steps, arch = int(state["step"]), state["model_spec"]["name"]
    rows = [
        ("architecture", f"`{arch}` (CIFAR ResNet, {n_params / 1e6:.3f} M parameters), "
                         f"{json.dumps(state['model_spec']['kwargs'])}"),
        ("data", "CIFAR-10 train split (50,000 images) from the shared JPEG-q75 copy `cifar10_jpeg_bytes.npz` (not "
                 "the lossless originals: accuracies run a few points below published CIFAR-10 numbers)"),
        ("test accuracy", f"**{100 * acc:.2f} %** top-1 on the 10,000 test images (float32, eval mode; last step, "
                          "no model selection)"),
        ("training", args.training or (f"{steps} steps of batch 64 ({steps * 64 / 50000:.2f} epochs), "
                                       f"{args.wall_minutes:.0f} min wall on one shared CPU core (1 thread, load "
                                       "average 5-9 on 2 cores)")),
        ("file", f"`{out.name}` ({out.stat().st_size / 1e6:.2f} MB); load with "
                 f"`torchworks.core.checkpoint.load_model(path)` or `teacher_ckpt: pretrained:{args.name}`"),
    ]
    trainer = {k: cfg.get("trainer", {}).get(k) for k in ("max_steps", "batch_size", "precision", "threads")}
    text = [f"# {args.name}: {arch} teacher for CIFAR-10", "", "| | |", "|---|---|"]
    text += [f"| {k} | {v} |" for k, v in rows]
    text += ["", "Recipe (`configs/cifar_resnet56.yaml`; the resolved config is stored in the training checkpoint):",
             "", "```json", json.dumps(cfg.get("task", {}), indent=1), "```", "",
             f"Trainer: `{json.dumps(trainer)}`, seed {cfg.get('seed')}. SGD with Nesterov momentum, weight decay "
             "5e-4, linear warm-up then cosine to zero, random crop (pad 4) + horizontal flip, bf16 autocast with "
             "float32 weights, channels-last.", "",
             "A deliberately short schedule (a few epochs instead of RepDistiller's 240), sized to the CPU budget of "
             "the distillation benchmark: a weaker teacher than the published resnet56 (93-94 % on lossless "
             f"CIFAR-10). Test accuracy re-measured in {eval_s:.0f} s by `benchmarks/distill/export_teacher.py`."]
    if args.note:
        text += ["", args.note]
    card.write_text("\n".join(text) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and {card}; test acc {acc:.4f}")


if __name__ == "__main__":
    main()

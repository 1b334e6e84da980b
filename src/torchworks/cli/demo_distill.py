"""The tour's distillation section: the shipped CIFAR-10 teacher next to each shipped student, or, on a machine
without CIFAR-10, knowledge distillation run on the Fashion-MNIST slice shipped in the package.

CIFAR-10 cannot ship (it has no licence that allows redistribution) and weighs 170 MB; Fashion-MNIST is MIT, and
500 + 1,000 of its images (``torchworks.data.samples``) are enough to show what distillation does: a small student
trained on 500 labelled images is compared with the same student also matching the shipped ViT's softened outputs.

Standard library only at module level (the builders import torch, numpy and matplotlib).
"""

from __future__ import annotations

import re
from pathlib import Path

from torchworks.cli.demo_context import DemoContext, demo_command
from torchworks.cli.demo_page import SectionResult

TEACHER_FASHION = "vit_small_fashion_mnist"
KD_STEPS, KD_BATCH, KD_T, KD_ALPHA = 400, 64, 4.0, 0.9
KD_HIDDEN = (128,)
KD_SEEDS = 3


def _card_accuracy(card: Path) -> str:
    if not card.is_file():
        return ""
    found = re.search(r"\*\*(\d+(?:\.\d+)?) ?%\*\*", card.read_text(encoding="utf-8"))
    return f"{found.group(1)} %" if found else "see card"


def _pm(acc: float, n: int) -> str:
    """An accuracy with its 95 % interval, in percent."""
    from torchworks.classify.evaluate import accuracy_halfwidth

    return f"{100 * acc:.2f} % +- {100 * accuracy_halfwidth(acc, n):.1f}"


def distill(ctx: DemoContext, res: SectionResult) -> None:
    """(f) The shipped CIFAR-10 teacher's accuracy on a fixed test subset, and each shipped student's; without
    CIFAR-10 on the machine, :func:`fashion_kd` instead."""
    from torchworks.core.errors import DataNotFoundError
    from torchworks.data.cifar import cifar10_copy

    res.commands.append(demo_command(ctx, "distill", "--cifar-limit", str(ctx.cifar_limit)))
    try:
        copy = cifar10_copy(ctx.data_dir)
    except DataNotFoundError:
        fashion_kd(ctx, res)
        return
    cifar(ctx, res, copy)


def cifar(ctx: DemoContext, res: SectionResult, copy: str) -> None:
    """The teacher and every shipped student (:func:`torchworks.distill.shipped.shipped_cifar_models`) scored by
    :func:`torchworks.classify.evaluate.top1_accuracy` on the same CIFAR-10 test images (``copy`` names which
    CIFAR-10)."""
    import torchworks.distill  # noqa: F401  (registers the model zoo that load_model rebuilds from)
    from torchworks.classify.data import SPLIT_SEED
    from torchworks.classify.evaluate import accuracy_halfwidth, top1_accuracy
    from torchworks.core.checkpoint import load_model
    from torchworks.data.cifar import CIFAR10_JPEG_COPY
    from torchworks.distill.shipped import cifar10_test_subset, shipped_cifar_models

    res.commands.append("torchworks distill --teacher resnet56 --student resnet20 --method kd --data cifar10 "
                        "--steps 2000   # trains a student (long)")
    teacher, students = shipped_cifar_models()
    x, y = cifar10_test_subset(ctx.cifar_limit, ctx.data_dir)
    n = len(y)
    rows, bars = [], []
    for role, path in [("teacher", teacher), *(("student", s) for s in students)]:
        model = load_model(path)
        acc = top1_accuracy(model, x, y, progress=lambda done, total, stem=path.stem: ctx.note(
            f"distill: {stem} {done}/{total}"))
        params = sum(p.numel() for p in model.parameters())
        rows.append([role, path.stem, f"{params / 1e6:.3f} M", _pm(acc, n), _card_accuracy(path.with_suffix(".md"))])
        bars.append((f"{role}\n{path.stem}", 100 * acc, 100 * accuracy_halfwidth(acc, n)))
    if not students:
        rows.append(["student", "resnet20 family", "", "not shipped yet", ""])
    jpeg = copy == CIFAR10_JPEG_COPY
    res.table(["role", "model", "parameters", f"accuracy on {n} test images (95 % interval)",
               "card: full 10k test" + (" (JPEG q75 copy)" if jpeg else "")], rows)
    _bar_chart(bars, ctx.out / "distill_accuracy.png", f"{n} CIFAR-10 test images" + (", JPEG q75" if jpeg else ""))
    res.images([("distill_accuracy.png", f"top-1 accuracy on the same {n} test images of {copy}")])
    res.text(f"The subset is the first {n} images of a fixed permutation (seed {SPLIT_SEED}) of the test split of "
             f"{copy}" + (", so accuracies run a few points below published CIFAR-10 numbers (the models were "
                          "also trained on that copy). " if jpeg else ". ")
             + ("" if students else "A distilled resnet20 student is not shipped yet: it will appear here when "
                                    "distill/pretrained holds its weights and model card."))
    teacher_acc = rows[0][3].split(" +-")[0]
    res.summary = f"teacher resnet56 {teacher_acc} on {n} test images" + (" (JPEG q75)" if jpeg else "") + "; " + (
        "; ".join(f"student {r[1]} {r[3].split(' +-')[0]}" for r in rows[1:]) if students
        else "student not shipped yet")


def fashion_kd(ctx: DemoContext, res: SectionResult) -> None:
    """Knowledge distillation on the shipped Fashion-MNIST slice (:func:`torchworks.distill.kd_mini_run.kd_mini_run`):
    a small MLP trained on 500 labelled images with labels only, and with Hinton's KD from the shipped ViT
    (0.1 CE + 0.9 KD, T = 4), for three seeds each; all scored on the 1,000 shipped test images."""
    import numpy as np
    import torch

    import torchworks.classify  # noqa: F401  (registers fashion_mlp)
    import torchworks.transformer.vit  # noqa: F401  (registers the ViT that load_model rebuilds)
    from torchworks.classify.evaluate import accuracy_halfwidth
    from torchworks.core.checkpoint import build_model, load_model
    from torchworks.data.samples import fashion_mnist_sample
    from torchworks.distill.kd_mini_run import LABELS_ONLY, WITH_KD, kd_mini_run
    from torchworks.transformer.pretrained import PRETRAINED_DIR
    from torchworks.transformer.vit.task import STATS

    res.commands.append("torchworks data path cifar10 --download   # 170 MB; then this section shows the CIFAR-10 "
                        "teacher and its distilled student")
    (mean,), (std,) = STATS["fashion_mnist"]

    def normalised(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = fashion_mnist_sample(split)
        x = (torch.from_numpy(images).float()[:, None] / 255 - mean) / std  # (N, 1, 28, 28)
        return x, torch.from_numpy(labels)

    teacher = load_model(PRETRAINED_DIR / f"{TEACHER_FASHION}.safetensors")
    run = kd_mini_run(teacher, lambda: build_model("fashion_mlp", hidden=KD_HIDDEN), normalised("train"),
                      normalised("test"), seeds=[ctx.seed + i for i in range(KD_SEEDS)], steps=KD_STEPS,
                      batch_size=KD_BATCH, T=KD_T, alpha=KD_ALPHA, progress=lambda msg: ctx.note(f"distill: {msg}"))
    n, params = run.n_test, run.student_params
    rows = [["teacher", TEACHER_FASHION, f"{run.teacher_params / 1e6:.3f} M", "shipped (55,000 training images)",
             _pm(run.teacher_acc, n), ""]]
    bars = [(f"teacher\n{TEACHER_FASHION}", 100 * run.teacher_acc, 100 * accuracy_halfwidth(run.teacher_acc, n))]
    for kind, values in run.student_acc.items():
        m = float(np.mean(values))
        rows.append(["student", f"fashion_mlp {KD_HIDDEN}", f"{params / 1e6:.3f} M", f"500 images, {kind}", _pm(m, n),
                     " / ".join(f"{100 * v:.1f}" for v in values)])
        bars.append((f"student\n{kind}", 100 * m, 100 * accuracy_halfwidth(m, n)))
    res.table(["role", "model", "parameters", "training", f"accuracy on {n} test images (95 % interval)",
               f"per seed {run.seeds}"], rows)
    _bar_chart(bars, ctx.out / "distill_accuracy.png", f"{n} Fashion-MNIST test images")
    res.images([("distill_accuracy.png", f"top-1 accuracy on the same {n} Fashion-MNIST test images (students: "
                 f"mean of {len(run.seeds)} seeds)")])
    res.text(f"CIFAR-10 is not on this machine (it cannot be shipped: no licence allows redistributing it), so this "
             f"section distils on the Fashion-MNIST slice shipped in the package (MIT): a {params:,}-parameter MLP "
             f"learns from 500 labelled images ({KD_STEPS} steps of {KD_BATCH}, Adam), once from the labels alone and "
             f"once also matching the shipped ViT's outputs softened at T = {KD_T:g} ({1 - KD_ALPHA:.1f} CE + "
             f"{KD_ALPHA:.1f} KD, Hinton et al. 2015). KD minus labels-only, per seed: "
             + ", ".join(f"{100 * g:+.1f}" for g in run.gains()) + f" points ({run.seconds:.1f} s for the "
             f"{2 * len(run.seeds)} students). With CIFAR-10 present (`torchworks data path cifar10 --download`), "
             "this section shows the shipped resnet56 teacher and its distilled resnet20 student instead.")
    res.summary = (f"Fashion-MNIST (no CIFAR-10 here): teacher ViT {100 * run.teacher_acc:.1f} %; student "
                   f"{100 * np.mean(run.student_acc[LABELS_ONLY]):.1f} % labels only, "
                   f"{100 * np.mean(run.student_acc[WITH_KD]):.1f} % with KD ({len(run.seeds)} seeds)")


def _bar_chart(bars: list[tuple[str, float, float]], path: Path, what: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.6 + 1.8 * len(bars), 3.4))
    ax = fig.subplots()
    names = [b[0] for b in bars]
    ax.bar(names, [b[1] for b in bars], yerr=[b[2] for b in bars], capsize=6,
           color=["tab:blue"] + ["tab:green"] * (len(bars) - 1))
    for i, (_, acc, _) in enumerate(bars):
        ax.text(i, acc / 2, f"{acc:.1f} %", ha="center", color="white", fontweight="bold")
    ax.set_ylim(0, 100)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(what, fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)

"""The tour's distillation section: the shipped CIFAR-10 teacher next to each shipped student, or, on a machine
without CIFAR-10, knowledge distillation run on the Fashion-MNIST slice shipped in the package.

CIFAR-10 cannot ship (it has no licence that allows redistribution) and weighs 170 MB; Fashion-MNIST is MIT, and
500 + 1,000 of its images (``torchworks.data.samples``) are enough to show what distillation does: a small student
trained on 500 labelled images is compared with the same student also matching the shipped ViT's softened outputs.

Standard library only at module level (the builders import torch, numpy and matplotlib).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from torchworks.cli.demo_page import SectionResult

TEACHER_FASHION = "vit_small_fashion_mnist"
KD_STEPS, KD_BATCH, KD_T, KD_ALPHA = 400, 64, 4.0, 0.9
KD_HIDDEN = (128,)


def _card_accuracy(card: Path) -> str:
    if not card.is_file():
        return ""
    found = re.search(r"\*\*(\d+(?:\.\d+)?) ?%\*\*", card.read_text(encoding="utf-8"))
    return f"{found.group(1)} %" if found else "see card"


def distill(ctx, res: SectionResult) -> None:
    """(f) The shipped CIFAR-10 teacher's accuracy on a fixed test subset, and each shipped student's; without
    CIFAR-10 on the machine, :func:`fashion_kd` instead."""
    from torchworks.cli.demo_sections import demo_command
    from torchworks.core.errors import DataNotFoundError
    from torchworks.data.cifar import cifar10_copy

    res.commands.append(demo_command(ctx, "distill", "--cifar-limit", str(ctx.cifar_limit)))
    try:
        copy = cifar10_copy(ctx.data_dir)
    except DataNotFoundError:
        fashion_kd(ctx, res)
        return
    cifar(ctx, res, copy)


def cifar(ctx, res: SectionResult, copy: str) -> None:
    """The teacher and every shipped student on the same CIFAR-10 test images (``copy`` names which CIFAR-10)."""
    import numpy as np
    import torch

    import torchworks.distill  # noqa: F401  (registers the model zoo that load_model rebuilds from)
    from torchworks.core.checkpoint import load_model
    from torchworks.data.cifar import CIFAR10_JPEG_COPY, CIFARDataset, load_cifar10
    from torchworks.distill.cifar_data import SPLIT_SEED
    from torchworks.distill.task import PRETRAINED_DIR

    res.commands.append("torchworks distill --teacher resnet56 --student resnet20 --method kd --data cifar10 "
                        "--steps 2000   # trains a student (long)")
    teacher = PRETRAINED_DIR / "resnet56_cifar10.safetensors"
    students = sorted(p for p in PRETRAINED_DIR.glob("*.safetensors")
                      if p != teacher and (p.stem.startswith("resnet20") or "student" in p.stem))
    images, labels = load_cifar10("test", ctx.data_dir)
    idx = np.random.default_rng(SPLIT_SEED).permutation(len(labels))[: ctx.cifar_limit]  # mixes the classes
    data = CIFARDataset(images[idx], labels[idx])
    x = (data.images.float() / 255 - data.mean) / data.std
    n = len(idx)

    def accuracy(path: Path) -> tuple[float, int]:
        model = load_model(path).eval()
        correct = 0
        with torch.inference_mode():
            for i in range(0, n, 250):
                ctx.note(f"distill: {path.stem} {min(i + 250, n)}/{n}")
                correct += int((model(x[i:i + 250]).argmax(1) == data.labels[i:i + 250]).sum())
        return correct / n, sum(p.numel() for p in model.parameters())

    rows, bars = [], []
    for role, path in [("teacher", teacher), *(("student", s) for s in students)]:
        acc, params = accuracy(path)
        half = 1.96 * (acc * (1 - acc) / n) ** 0.5
        rows.append([role, path.stem, f"{params / 1e6:.3f} M", f"{100 * acc:.2f} % +- {100 * half:.1f}",
                     _card_accuracy(path.with_suffix(".md"))])
        bars.append((f"{role}\n{path.stem}", 100 * acc, 100 * half))
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


def fashion_kd(ctx, res: SectionResult) -> None:
    """Knowledge distillation on the shipped Fashion-MNIST slice: a small MLP trained on 500 labelled images with
    labels only, and with Hinton's KD from the shipped ViT (0.1 CE + 0.9 KD, T = 4), for three seeds each; all
    scored on the 1,000 shipped test images.

    The few-second loop is written out here instead of going through the engine: it is an illustration sized for
    the tour, while ``torchworks distill`` / ``DistillationTask`` run the real recipes through the engine.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    import torchworks.classify  # noqa: F401  (registers fashion_mlp)
    import torchworks.distill  # noqa: F401  (registers the kd loss)
    import torchworks.transformer  # noqa: F401  (registers the ViT that load_model rebuilds)
    from torchworks.core.checkpoint import build_model, load_model
    from torchworks.core.registry import DISTILL_LOSSES
    from torchworks.data.samples import fashion_mnist_sample
    from torchworks.transformer.pretrained import PRETRAINED_DIR
    from torchworks.transformer.vit_task import STATS

    res.commands.append("torchworks data path cifar10 --download   # 170 MB; then this section shows the CIFAR-10 "
                        "teacher and its distilled student")
    (mean,), (std,) = STATS["fashion_mnist"]
    (xs, ys), (xt, yt) = fashion_mnist_sample("train"), fashion_mnist_sample("test")
    x_train = (torch.from_numpy(xs).float()[:, None] / 255 - mean) / std  # (500, 1, 28, 28)
    x_test = (torch.from_numpy(xt).float()[:, None] / 255 - mean) / std  # (1000, 1, 28, 28)
    y_train, y_test = torch.from_numpy(ys), torch.from_numpy(yt)
    ctx.note("distill: teacher logits")
    teacher_path = PRETRAINED_DIR / f"{TEACHER_FASHION}.safetensors"
    teacher = load_model(teacher_path).eval()
    with torch.inference_mode():
        t_train, t_test = teacher(x_train), teacher(x_test)
    n = len(y_test)
    teacher_acc = float((t_test.argmax(1) == y_test).float().mean())
    kd = DISTILL_LOSSES.build("kd", T=KD_T)

    def train_student(seed: int, with_kd: bool) -> tuple[float, int]:
        torch.manual_seed(seed)
        student = build_model("fashion_mlp", hidden=KD_HIDDEN)
        opt = torch.optim.Adam(student.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(KD_STEPS):
            b = torch.randint(0, len(y_train), (KD_BATCH,), generator=gen)
            z = student(x_train[b])
            ce = F.cross_entropy(z, y_train[b])
            loss = (1 - KD_ALPHA) * ce + KD_ALPHA * kd(z, t_train[b]) if with_kd else ce
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        student.eval()
        with torch.inference_mode():
            acc = float((student(x_test).argmax(1) == y_test).float().mean())
        return acc, sum(p.numel() for p in student.parameters())

    seeds = [ctx.seed + i for i in range(3)]
    start = time.perf_counter()
    accs: dict[str, list[float]] = {"labels only": [], "with KD": []}
    for seed in seeds:
        for kind in accs:
            ctx.note(f"distill: student seed {seed}, {kind}")
            acc, params = train_student(seed, kind == "with KD")
            accs[kind].append(acc)
    seconds = time.perf_counter() - start

    def half(acc: float) -> float:
        return 1.96 * (acc * (1 - acc) / n) ** 0.5

    t_params = sum(p.numel() for p in teacher.parameters())
    rows = [["teacher", TEACHER_FASHION, f"{t_params / 1e6:.3f} M", "shipped (55,000 training images)",
             f"{100 * teacher_acc:.2f} % +- {100 * half(teacher_acc):.1f}", ""]]
    bars = [(f"teacher\n{TEACHER_FASHION}", 100 * teacher_acc, 100 * half(teacher_acc))]
    for kind, values in accs.items():
        m = float(np.mean(values))
        rows.append(["student", f"fashion_mlp {KD_HIDDEN}", f"{params / 1e6:.3f} M", f"500 images, {kind}",
                     f"{100 * m:.2f} % +- {100 * half(m):.1f}", " / ".join(f"{100 * v:.1f}" for v in values)])
        bars.append((f"student\n{kind}", 100 * m, 100 * half(m)))
    gains = [100 * (k - p) for k, p in zip(accs["with KD"], accs["labels only"], strict=True)]
    res.table(["role", "model", "parameters", "training", f"accuracy on {n} test images (95 % interval)",
               f"per seed {seeds}"], rows)
    _bar_chart(bars, ctx.out / "distill_accuracy.png", f"{n} Fashion-MNIST test images")
    res.images([("distill_accuracy.png", f"top-1 accuracy on the same {n} Fashion-MNIST test images (students: "
                 "mean of 3 seeds)")])
    res.text(f"CIFAR-10 is not on this machine (it cannot be shipped: no licence allows redistributing it), so this "
             f"section distils on the Fashion-MNIST slice shipped in the package (MIT): a {params:,}-parameter MLP "
             f"learns from 500 labelled images ({KD_STEPS} steps of {KD_BATCH}, Adam), once from the labels alone and "
             f"once also matching the shipped ViT's outputs softened at T = {KD_T:g} ({1 - KD_ALPHA:.1f} CE + "
             f"{KD_ALPHA:.1f} KD, Hinton et al. 2015). KD minus labels-only, per seed: "
             + ", ".join(f"{g:+.1f}" for g in gains) + f" points ({seconds:.1f} s for the six students). With "
             "CIFAR-10 present (`torchworks data path cifar10 --download`), this section shows the shipped resnet56 "
             "teacher and its distilled resnet20 student instead.")
    res.summary = (f"Fashion-MNIST (no CIFAR-10 here): teacher ViT {100 * teacher_acc:.1f} %; student "
                   f"{100 * np.mean(accs['labels only']):.1f} % labels only, {100 * np.mean(accs['with KD']):.1f} % "
                   "with KD (3 seeds)")


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

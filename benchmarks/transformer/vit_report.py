"""The text of ``bench_vit.py``'s section of ``docs/results/transformer.md``: the table of runs and the
discussion with the measured numbers filled in. The run list comes in as an argument (``bench_vit.RUNS``)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from _common import Machine
from vit_common import RESULTS, TRAIN_SIZE, fmt, precision, recipe, run_key, seed_used

# The pairs compared in the discussion, in order of preference per data set: bfloat16 runs, then float32 runs.
PAIRS = (("Fashion-MNIST", "vit_fashion_bf16", "cnn_fashion_bf16"), ("Fashion-MNIST", "vit_fashion", "cnn_fashion"),
         ("CIFAR-10", "vit_cifar10_bf16", "cnn_cifar10_bf16"), ("CIFAR-10", "vit_cifar10", "cnn_cifar10"))



def section(results: dict[str, dict], runs: list[tuple], told: str, figure: Path | None, command: str,
            when: str | None = None, note: str = "") -> str:
    """The section's text: a table row per entry of ``runs`` (``bench_vit.RUNS``), then ``told`` (the
    :func:`discussion`); ``when`` (default today) dates the evaluation, ``note`` ends the command's parenthesis."""
    machine = Machine.measure(threads=1)
    lines = ["## ViT vs a same-size CNN at the same CPU budget (benchmarks/transformer/bench_vit.py)", "",
             f"Command: `{command}` ({when or date.today()}, {machine.arch} {machine.cpu}, {machine.cores} "
             f"cores, torch {machine.torch}, one thread per run{note}). CPU = user + sys seconds of the whole training "
             "process (data loading, validation and checkpoints included). The older float32 rows ran while the "
             "machine was shared with other jobs, so their wall times are up to twice their CPU times; runs that "
             "had a core to themselves have wall close to CPU time. Test accuracy is that of the last step on the "
             "full test set. \"est.\": the processes that ran the first steps were killed at session ends and left "
             "no time report, so the total is the surviving report's CPU time per step times all steps; that report "
             "was taken while five other jobs shared the machine's cores, which inflates CPU time per step (the "
             "configs measured 0.20 s (Fashion-MNIST ViT) and 0.6 s (CIFAR-10 ViT) on a quiet machine). Runs "
             "started now record their own CPU time in the checkpoint (`timing`).",
             "", "Shared recipe (task `image_classifier`; a row is a config, `configs/<config>.yaml`, and a seed: the "
             "config's own, or another given as `torchworks train configs/<config>.yaml --seed <seed>`, which trains "
             "into `runs/<config>/seed<seed>`): horizontal flips "
             "and random crops after zero padding (the `crop` column; 0 = none) as torch ops on the batch, label "
             "smoothing 0.1, AdamW with weight decay 0.05 on weight matrices, linear warm-up then cosine to 0, "
             "gradient clipping at 1; the `recipe` column gives what differs between runs. \"bf16\" = "
             "`trainer.precision: bf16-mixed`, bfloat16 autocast with float32 weights and optimizer state: a step "
             "costs 1.5-1.9x less CPU time than in float32 on this CPU (section \"Training-step CPU time\" below), so "
             "those runs take more steps in the same budget. Each CNN (`cnn_vgg_*`, VGG-style conv-BN-ReLU, three "
             "stages, global average pooling) is sized to its ViT's parameter count and trained on its ViT's "
             "recipe. Test accuracy is evaluated in float32 for every row. CIFAR-10 rows use the JPEG (quality 75) "
             "copy of CIFAR-10 (`cifar10_jpeg_bytes.npz`), not the lossless original: their accuracies run a few "
             "points below what it gives.", "",
             "| data | config | seed | model | params | recipe | steps (epochs) | CPU min | wall min | val acc "
             "| test acc | goal |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for config, seed, kind, data, goal in runs:
        r = results.get(run_key(config, seed))
        if r is None:
            lines.append(f"| {data} | `{config}` | {'' if seed is None else seed} | {kind} | | | | | | | pending | |")
            continue
        epochs = r["step"] * r["batch"] / TRAIN_SIZE[data]
        met = "" if goal is None else (f">= {100 * goal:.0f} %: " + ("met" if r["test_acc"] >= goal and
                                                                      r["cpu_s"] <= 1800 else "**not met**"))
        steps = f"{r['step']} ({epochs:.1f})" + ("" if r["step"] == r["max_steps"] else f" of {r['max_steps']}")
        lines.append(f"| {data} | `{config}` | {seed_used(seed, r)} | {kind} `{r['model']}` | "
                     f"{r['params'] / 1e6:.3f}M | {recipe(r, data)} | "
                     f"{steps} | "
                     f"{fmt(r['cpu_s'], 1 / 60)}{' (' + r['cpu_how'] + ')' if r['cpu_how'].startswith('est') else ''}"
                     f" | {fmt(r['wall_s'], 1 / 60) if r['wall_s'] is not None else 'n/a'} | "
                     f"{fmt(r['val_acc'], 100, 2)} | "
                     f"**{100 * r['test_acc']:.2f}** | {met} |")
    lines += ["", told, ""]
    if figure is not None:
        lines += [f"![attention rollout]({figure.relative_to(RESULTS.parent).as_posix()})", "",
                  "Attention rollout (Abnar & Zuidema 2020; `torchworks.transformer.vit.attention_rollout`: heads "
                  "averaged, 0.5 identity added for the residual path, rows renormalised, layers multiplied) of the "
                  "[CLS] token of the two ViTs above, for the first test image of six classes (caption: true -> "
                  "predicted). Bright patches are those the class decision drew on.", ""]
    return "\n".join(lines)



def discussion(results: dict[str, dict], groups: dict[str, list[tuple[int, dict]]], goals: dict[str, float | None],
               same: list[tuple[str, dict]]) -> str:
    """Two or three sentences comparing the pairs, with the measured numbers filled in.

    Args:
        results: the evaluated rows by run key.
        groups: the seed repeats of each config (``bench_vit.seed_groups``).
        goals: each config's goal on the test set (None: no goal).
        same: the CIFAR-10 plain-ViT runs of seed 1 (``bench_vit.same_seed_recipes``).
    """
    pairs, seen = [], set()
    for data, vit, cnn in PAIRS:  # one pair per data set: bf16 if both bf16 runs exist, else fp32
        if vit in results and cnn in results and data not in seen:
            v, c = results[vit], results[cnn]
            seen.add(data)
            pairs.append((f"{data} ({precision(v)})", 100 * v["test_acc"], 100 * c["test_acc"], v["cpu_s"] / 60,
                          c["cpu_s"] / 60))
    if not pairs:
        return "**CNN vs ViT.** Pending: the comparison needs both runs of a data set."
    told = "; ".join(f"{d}: CNN {c:.1f} % vs ViT {v:.1f} % ({cc:.0f} vs {vc:.0f} CPU-min)" for d, v, c, vc, cc in pairs)
    cnn_wins = all(c > v for _, v, c, _, _ in pairs)
    gaps = {d: c - v for d, v, c, _, _ in pairs}
    text = [f"**CNN vs ViT.** At equal parameters, data, augmentation and CPU budget: {told}."]
    if cnn_wins:
        text.append("The CNN's 3x3 convolutions build in locality and translation equivariance, so its few epochs "
                    "go into learning features, while the ViT has to learn from data alone, through its learned "
                    "positions and global attention, which pixels belong together; that prior is what ViT trades "
                    "for flexibility, and why it needs far more data or augmentation before it catches up "
                    "(Dosovitskiy et al. see ViT overtake ResNets only with ImageNet-21k/JFT pre-training).")
    else:
        text.append("The ViT is not behind here, so at this scale the CNN's built-in locality and translation "
                    "equivariance did not buy accuracy; the usual expectation (ViT needs more data because it must "
                    "learn spatial structure through learned positions and global attention) is not what these "
                    "runs show.")
    if len(gaps) == 2:
        more = max(gaps, key=gaps.get)
        text.append(f"The CNN's lead is larger on {more} ({gaps[more]:+.1f} points vs "
                    f"{min(gaps.values()):+.1f}), "
                    + ("natural images whose objects appear at any position, where the convolutional prior matters "
                       "most." if more.startswith("CIFAR-10") else "even though its centred, aligned images leave "
                       "less for translation equivariance to do."))
    conv = [(d, results[c], results[v]) for d, c, v in (("Fashion-MNIST", "vit_fashion_convstem", "vit_fashion"),
                                                          ("CIFAR-10", "vit_cifar10_convstem", "vit_cifar10"))
            if c in results and v in results]
    if conv:
        told = "; ".join(f"{d}: {100 * c['test_acc']:.1f} % vs {100 * v['test_acc']:.1f} % ({c['cpu_s'] / 60:.0f} vs "
                         f"{v['cpu_s'] / 60:.0f} CPU-min)" for d, c, v in conv)
        wins = all(c["test_acc"] > v["test_acc"] for _, c, v in conv)
        text.append("**Convolutional stem.** Replacing the patchify layer by a few stride-2 3x3 convolutions (Xiao et "
                    "al. 2021), with the same blocks, token grid (CIFAR-10) and recipe, against the plain ViT: "
                    f"{told}. " + ("A little locality prior at the input buys more than the same CPU time spent on "
                                  "the plain ViT; it is a hybrid, no longer the paper's linear patch embedding."
                                  if wins else "It does not help everywhere here."))
    bf16 = [(d, results[b], results[f]) for d, b, f in (("Fashion-MNIST", "vit_fashion_bf16", "vit_fashion"),
                                                         ("CIFAR-10", "vit_cifar10_bf16", "vit_cifar10"),
                                                         ("Fashion-MNIST", "cnn_fashion_bf16", "cnn_fashion"),
                                                         ("CIFAR-10", "cnn_cifar10_bf16", "cnn_cifar10"))
            if b in results and f in results]
    if bf16:
        told = "; ".join(f"{d} {b['model']}: {b['step']} steps, {100 * b['test_acc']:.2f} % vs {f['step']} steps, "
                         f"{100 * f['test_acc']:.2f} % ({b['cpu_s'] / 60:.0f} vs {f['cpu_s'] / 60:.0f} CPU-min)"
                         for d, b, f in bf16)
        text.append(f"**bfloat16 autocast vs float32** (same model and CPU budget, more steps; any other recipe "
                    f"difference is in the table): {told}.")
    for base, seeds in groups.items():
        accs = [100 * r["test_acc"] for _, r in seeds]
        mean = sum(accs) / len(accs)
        told = ", ".join(f"seed {k} {a:.2f} %" for (k, _), a in zip(seeds, accs, strict=True))
        goal = goals.get(base)
        text.append(f"**Seed repeats** (`{base}`, same recipe, only the seed differs): {told} test (mean "
                    f"{mean:.2f} %, {max(accs) - min(accs):.2f} points from lowest to highest)"
                    + ("." if goal is None else seed_verdict(accs, mean, 100 * goal)))
    if len(same) >= 3:
        told = "; ".join(f"{recipe(r, 'CIFAR-10').split(', ', 1)[1]}, {r['step']} steps: "
                         f"{100 * r['test_acc']:.2f} %" for _, r in same)
        text.append("**CIFAR-10 recipes on one seed** (seed 1, the seed that lands lowest in every recipe, so these "
                    f"differ only in the recipe): {told}.")
    if "vit_fashion_patch4" in results and "vit_fashion_convstem" in results:
        p4, cs = results["vit_fashion_patch4"], results["vit_fashion_convstem"]
        text.append(f"The stem alone (Fashion-MNIST, same 49 tokens, blocks, recipe and {cs['step']} steps): conv stem "
                    f"{100 * cs['test_acc']:.2f} % vs 4x4 patchify {100 * p4['test_acc']:.2f} % "
                    f"({cs['cpu_s'] / 60:.0f} vs {p4['cpu_s'] / 60:.0f} CPU-min).")
    return " ".join(text)



def seed_verdict(accs: list[float], mean: float, goal: float) -> str:
    """How a group of seed repeats stands against a goal (all in percent), as the end of a sentence."""
    met = sum(a >= goal for a in accs)
    if met == len(accs):
        return f": every run meets the {goal:.0f} % goal."
    return (f": {met} of {len(accs)} runs meet the {goal:.0f} % goal and the mean "
            f"{'meets' if mean >= goal else 'misses'} it, so a single run's pass or miss is partly its seed.")

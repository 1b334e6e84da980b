"""ViT vs a same-size CNN on Fashion-MNIST and CIFAR-10 at the same CPU budget; attention-rollout figure.

Evaluates the checkpoints of the runs in ``RUNS`` (ViTs and their same-size CNNs in float32 and in bfloat16
autocast, and the conv-stem and patch-4 ViT variants) on the full test sets in float32,
reads each run's CPU and wall time (see below), draws attention-rollout maps of the best plain ViT of each data set
for a few test images, and rewrites only its own section of ``docs/results/transformer.md``
(between ``<!-- vit:start -->`` and ``<!-- vit:end -->``; appended if absent).

    python benchmarks/transformer/bench_vit.py          # evaluate existing runs/<run>/checkpoints/last.ckpt
    python benchmarks/transformer/bench_vit.py --train  # train the runs first (one after another, 1 thread; each
                                                        # run is sized for <= 30 CPU-minutes, so this takes hours)
    python benchmarks/transformer/bench_vit.py --ship   # also export the plain ViT with the best validation accuracy
                                                        # per data set (and conv-stem
                                                        # ViTs that meet their goal) to transformer/pretrained/
    python benchmarks/transformer/bench_vit.py --from-store  # rewrite the section from the stored rows alone (no
                                                             # checkpoint read, figure kept): text changes only

A run is a (config, seed) pair: ``(name, None)`` is ``torchworks train configs/<name>.yaml`` with the config's own
seed, in ``runs/<name>``; ``(name, k)`` is the same recipe with ``--seed k``, in ``runs/<name>/seed<k>``. That
folder under ``runs/`` is also the run's key (``<name>`` or ``<name>/seed<k>``) in the tables and the store.

Each evaluated run's row is kept in ``benchmarks/transformer/results/vit_runs.json`` (committed; checkpoints under
``runs/`` are not), so a run whose checkpoint is gone keeps its row in the table, and the rollout figure then uses
the shipped ViT if one was exported from that run.

CPU time, in order of preference: the engine's own count in the checkpoint (``timing``, summed over resumes),
when it covers every step; else the GNU time reports (``<log>.time``, ``<log>.part*.time``, summed; ``<log>`` is the
run's key with ``/`` as ``_``, e.g. ``vit_cifar10_bf16_crop1_seed5``). When a process was killed its report is lost:
``<log>.steps`` then states how many steps the surviving reports cover,
and the total is extrapolated from their CPU time per step (marked "est." in the table).

This file holds the list of runs and the steps (train, evaluate, figure, store); ``vit_common.py`` what the
pieces share (paths, timing, recipe text), ``vit_report.py`` the section's text, ``vit_ship.py`` the export.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from _common import atomic_write_text, write_section  # noqa: E402
from vit_common import (  # noqa: E402
    FIGURE,
    PRETRAINED,
    RESULTS,
    ROOT,
    fmt,
    last_val_acc,
    log_name,
    run_key,
    seed_used,
    train_command,
    training_cpu,
)
from vit_report import discussion, section, seed_verdict  # noqa: E402, F401  (seed_verdict: tests use it from here)
from vit_ship import ship  # noqa: E402


def _repeats(config: str, data: str, goal: float, seeds: range) -> list[tuple[str, int | None, str, str, float]]:
    """A ViT recipe's own run and its ``--seed k`` repeats, as ``RUNS`` rows."""
    return [(config, None, "ViT", data, goal)] + [(config, k, "ViT", data, goal) for k in seeds]


# (config, seed (None: the config's own), model kind, data set label, goal on the test set or None)
RUNS = [("vit_fashion", None, "ViT", "Fashion-MNIST", 0.90), ("cnn_fashion", None, "CNN", "Fashion-MNIST", None),
        ("vit_fashion_bf16", None, "ViT", "Fashion-MNIST", 0.90),
        ("vit_fashion_tiny_bf16", None, "ViT", "Fashion-MNIST", 0.90),
        ("vit_fashion_wide_bf16", None, "ViT", "Fashion-MNIST", 0.90),
        *_repeats("vit_fashion_bf16_crop1", "Fashion-MNIST", 0.90, range(1, 3)),
        ("cnn_fashion_bf16", None, "CNN", "Fashion-MNIST", None),
        ("vit_fashion_patch4", None, "ViT, patch 4", "Fashion-MNIST", 0.90),
        ("vit_fashion_convstem", None, "ViT, conv stem", "Fashion-MNIST", 0.90),
        ("vit_cifar10", None, "ViT", "CIFAR-10", 0.70), ("cnn_cifar10", None, "CNN", "CIFAR-10", None),
        ("vit_cifar10_bf16", None, "ViT", "CIFAR-10", 0.70), ("vit_cifar10_bf16_b64", None, "ViT", "CIFAR-10", 0.70),
        ("vit_cifar10_bf16", 1, "ViT", "CIFAR-10", 0.70),
        *_repeats("vit_cifar10_bf16_long", "CIFAR-10", 0.70, range(1, 4)),
        *_repeats("vit_cifar10_bf16_long_crop2", "CIFAR-10", 0.70, range(1, 3)),
        ("vit_cifar10_bf16_lr2", 1, "ViT", "CIFAR-10", 0.70),
        *_repeats("vit_cifar10_bf16_crop1", "CIFAR-10", 0.70, range(1, 8)),
        ("vit_cifar10_bf16_crop1_lr07", 1, "ViT", "CIFAR-10", 0.70),
        ("cnn_cifar10_bf16", None, "CNN", "CIFAR-10", None),
        ("vit_cifar10_convstem", None, "ViT, conv stem", "CIFAR-10", 0.70)]


def recipe_of(key: str) -> tuple[str, int | None]:
    """``(config, seed)`` of a ``RUNS`` row from its key."""
    return next((c, k) for c, k, *_ in RUNS if run_key(c, k) == key)


def run_seed(key: str, r: dict) -> int:
    """The seed a run trained with: its ``--seed``, else its config's ``seed`` (0 when not recorded)."""
    return seed_used(recipe_of(key)[1], r)


def rows(results: dict[str, dict] | None = None) -> list[tuple[str, str, str, float | None]]:
    """``RUNS`` as ``(key, kind, data, goal)``, only those in ``results`` when given."""
    return [(run_key(c, k), kind, d, g) for c, k, kind, d, g in RUNS
            if results is None or run_key(c, k) in results]


STORE = ROOT / "benchmarks" / "transformer" / "results" / "vit_runs.json"

# Runs that may ship (run -> data slug of the shipped model): per data set the plain ViT run with the best validation
# accuracy, and the conv-stem ones when they meet their goal (under their own name); the patch-4 run is an ablation
# and does not ship.
SLUG = {"Fashion-MNIST": "fashion_mnist", "CIFAR-10": "cifar10"}
SHIPPED = {key: SLUG[data] for key, kind, data, _ in rows() if kind in ("ViT", "ViT, conv stem")}


def best_plain(results: dict[str, dict], data: str) -> str | None:
    """The plain (patch-embedding) ViT run of ``data`` with the best validation accuracy (chosen on validation, not
    on the test set; runs without a validation number come last)."""
    names = [n for n, kind, d, _ in rows(results) if kind == "ViT" and d == data]
    return max(names, key=lambda n: results[n].get("val_acc") or 0.0, default=None)


def same_seed_recipes(results: dict[str, dict], data: str, seed: int) -> list[tuple[str, dict]]:
    """Plain-ViT runs of ``data`` with one seed, in ``RUNS`` order: recipes compared without the seed's noise."""
    return [(n, results[n]) for n, kind, d, _ in rows(results)
            if kind == "ViT" and d == data and run_seed(n, results[n]) == seed]


def seed_groups(results: dict[str, dict]) -> dict[str, list[tuple[int, dict]]]:
    """The runs of each config that ran with more than one seed, ``{config: [(seed, row), ...]}`` sorted by seed,
    the config's own run among them."""
    groups: dict[str, list[tuple[int, dict]]] = {}
    for config, seed, *_ in RUNS:
        key = run_key(config, seed)
        if key in results:
            groups.setdefault(config, []).append((run_seed(key, results[key]), results[key]))
    return {c: sorted(g, key=lambda t: t[0]) for c, g in groups.items() if len(g) > 1}


def load_store() -> dict[str, dict]:
    import json

    return json.loads(STORE.read_text()) if STORE.is_file() else {}


def save_store(rows: dict[str, dict]) -> None:
    import json

    keep = {name: {k: (str(v.relative_to(ROOT)) if isinstance(v, Path) else v) for k, v in r.items()}
            for name, r in rows.items()}
    atomic_write_text(STORE, json.dumps(keep, indent=1, default=str) + "\n")


def stored_row(name: str, store: dict[str, dict]) -> dict | None:
    """A run's stored row, its ``ckpt`` pointing at the shipped model exported from it (or None)."""
    if name not in store:
        return None
    r = dict(store[name])
    slug = SHIPPED.get(name)
    conv = recipe_of(name)[0].endswith("_convstem")
    shipped = [p for p in PRETRAINED.glob(f"vit_*_{slug}.safetensors") if ("convstem" in p.stem) == conv]
    r["ckpt"] = shipped[0] if r.get("shipped") and shipped else None
    return r


def train(key: str, log_dir: Path) -> None:
    """Runs the run's ``torchworks train`` (:func:`train_command`) under GNU time, writing ``runs/<key>``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    name = log_name(key)
    for old in log_dir.glob(f"{name}.part*.time"):
        old.unlink()
    cmd = ["/usr/bin/time", "-v", "-o", str(log_dir / f"{name}.time"), sys.executable, "-m", "torchworks.cli.main",
           *train_command(*recipe_of(key)), "--overwrite"]
    with open(log_dir / f"{name}.log", "w") as log:
        subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)


def evaluate(name: str, runs: Path, log_dir: Path) -> dict | None:
    """Test accuracy, parameters, steps and times of one run, or None when it has no checkpoint yet."""
    from torchworks.core.checkpoint import load_checkpoint, load_model
    from torchworks.engine import run as engine_run

    ckpt = runs / name / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        return None
    state = load_checkpoint(ckpt)
    if int(state["step"]) < int(state["config"]["trainer"]["max_steps"]):
        print(f"{name}: still training (step {state['step']}); left out")
        return None
    # float32 for every row (bf16-trained runs too): the shipped weights are float32 and used that way.
    metrics = engine_run.evaluate(None, ckpt, split="test", threads=1, val_batch_size=500, progress=False,
                                  precision="32-true")
    model = load_model(ckpt)
    cpu, wall, how = training_cpu(state, log_dir, log_name(name))
    cfg = state["config"]
    return {"name": name, "model": state["model_spec"]["name"], "params": sum(p.numel() for p in model.parameters()),
            "step": int(state["step"]), "max_steps": int(cfg["trainer"]["max_steps"]),
            "batch": int(cfg["trainer"]["batch_size"]), "cpu_s": cpu, "wall_s": wall, "cpu_how": how,
            "val_acc": last_val_acc(runs / name), "test_acc": metrics["test/acc"], "ckpt": ckpt, "config": cfg}


def rollout_figure(results: dict[str, dict], per_row: int = 6) -> Path | None:
    """The two ViTs' [CLS] rollout on the first test image of ``per_row`` classes each."""
    from torchworks.core.checkpoint import load_model
    from torchworks.transformer.vit.plots import rollout_maps, save_rollout_grid
    from torchworks.transformer.vit.task import STATS, load_split

    rows = []
    for data, classes in (("Fashion-MNIST", "fashion"), ("CIFAR-10", "cifar")):
        name, title = best_plain(results, data), data
        if name is None:
            continue
        r = results[name]
        if r.get("ckpt") is None:
            continue
        dataset = r["config"]["task"]["dataset"]
        images, labels = load_split(dataset, "test", r["config"].get("data_dir"))
        picks = [int((labels == c).nonzero()[0]) for c in range(per_row)]
        x = images[picks].float() / 255.0
        mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in STATS[dataset])
        model = load_model(r["ckpt"])
        logits, maps = rollout_maps(model, (x - mean) / std)
        names = _class_names(classes)
        preds = logits.argmax(1).tolist()
        captions = [f"{names[int(labels[i])]}\n-> {names[p]}" for i, p in zip(picks, preds, strict=True)]
        rows.append((title, x, maps, captions))
    return save_rollout_grid(FIGURE, rows) if rows else None


def _class_names(kind: str) -> tuple[str, ...]:
    if kind == "fashion":
        from torchworks.data.fashion_mnist import CLASSES

        return tuple(c.split("/")[0] for c in CLASSES)
    from torchworks.data.cifar import CIFAR10_CLASSES

    return CIFAR10_CLASSES


def report(results: dict[str, dict], figure: Path | None, command: str, when: str | None = None,
           note: str = "") -> str:
    """The section's text (:func:`vit_report.section`) for ``RUNS``."""
    goals: dict[str, float | None] = {}
    for config, _, _, _, goal in RUNS:
        goals.setdefault(config, goal)
    told = discussion(results, seed_groups(results), goals, same_seed_recipes(results, "CIFAR-10", 1))
    return section(results, RUNS, told, figure, command, when, note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="train every run in RUNS before evaluating")
    parser.add_argument("--ship", action="store_true", help="export the ViTs to the package's pretrained/ folder")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs")
    parser.add_argument("--logs", type=Path, default=ROOT / "runs" / "logs_vit", help="GNU time reports")
    parser.add_argument("--no-figure", action="store_true")
    parser.add_argument("--from-store", action="store_true", help=f"rewrite the section from {STORE.name} alone: no "
                        "checkpoint is evaluated and the committed figure is kept (for a change of text, not numbers)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import torchworks.transformer.vit  # noqa: F401  (registers the task and models)

    if args.from_store:
        if args.train or args.ship:
            parser.error("--from-store evaluates nothing: it does not combine with --train or --ship")
        render_from_store(no_figure=args.no_figure)
        return

    if args.train:
        for name, *_ in rows():
            train(name, args.logs)
    results, store, fresh = {}, load_store(), set()
    for name, *_ in rows():
        r = evaluate(name, args.runs, args.logs)
        if r is None and (r := stored_row(name, store)) is not None:
            print(f"{name}: no checkpoint under {args.runs}; the row stored in {STORE.name} ({r.get('source')})")
            results[name] = r
            continue
        if r is not None:
            r["source"] = f"evaluated {date.today()}"
            r["shipped"] = bool(store.get(name, {}).get("shipped") and store[name].get("step") == r["step"])
            results[name], fresh = r, fresh | {name}
            print(f"{name:12s} {r['model']:20s} params {r['params']:,}  step {r['step']}  "
                  f"CPU {fmt(r['cpu_s'], 1 / 60)} min  wall {fmt(r['wall_s'], 1 / 60)} min  "
                  f"test acc {100 * r['test_acc']:.2f} %")
    if args.ship:  # per data set the best plain ViT (it replaces the other plain runs' file), conv stems at goal
        goals = {data: goal for _, kind, data, goal in rows() if kind == "ViT"}
        for data, goal in goals.items():
            if (best := best_plain(results, data)) is not None:
                for name, kind, d, _ in rows(results):
                    if kind == "ViT" and d == data:
                        results[name]["shipped"] = name == best
                if best in fresh:
                    ship(results[best], data, goal, *recipe_of(best), SHIPPED[best])
        for name, kind, data, goal in rows():
            if kind == "ViT, conv stem" and name in fresh and results[name]["test_acc"] >= goal:
                results[name]["shipped"] = True
                ship(results[name], data, goal, *recipe_of(name), SHIPPED[name])
    for name, r in results.items():
        store[name] = {k: v for k, v in r.items() if k != "ckpt"}
    save_store(store)
    figure = None if args.no_figure else rollout_figure(results)
    command = "python benchmarks/transformer/bench_vit.py" + (" --train" if args.train else "")
    write_section(RESULTS, "vit", report(results, figure, command), title="# Transformer results")
    print(f"wrote {RESULTS}" + (f" and {figure}" if figure else ""))


def render_from_store(no_figure: bool = False) -> None:
    """Rewrites the section from the stored rows: the numbers of the last evaluation, dated by it."""
    store = load_store()
    results = {key: r for key, *_ in rows() if (r := stored_row(key, store)) is not None}
    dates = sorted(m[1] for r in results.values() if (m := re.match(r"evaluated (\S+)", r.get("source") or "")))
    figure = FIGURE if FIGURE.is_file() and not no_figure else None
    note = f"; this text re-rendered from the rows stored then on {date.today()} by `--from-store`"
    write_section(RESULTS, "vit", report(results, figure, "python benchmarks/transformer/bench_vit.py",
                                         when=dates[-1] if dates else None, note=note if dates else ""),
                  title="# Transformer results")
    print(f"wrote {RESULTS} from {STORE.name} ({len(results)} rows)")


if __name__ == "__main__":
    main()

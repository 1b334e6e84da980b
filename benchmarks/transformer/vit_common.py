"""What the pieces of ``bench_vit.py`` share: paths, training-set sizes, how a run is named, trained and timed, and
how its recipe is told in a table or card. Nothing here knows the list of runs (``bench_vit.RUNS``)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results" / "transformer.md"
FIGURE = ROOT / "docs" / "results" / "transformer" / "vit_rollout.png"
PRETRAINED = ROOT / "src" / "torchworks" / "transformer" / "pretrained"
TRAIN_SIZE = {"Fashion-MNIST": 55_000, "CIFAR-10": 48_000}



def run_key(config: str, seed: int | None) -> str:
    """A run's folder under ``runs/`` and its key in tables and the store: ``<config>`` or ``<config>/seed<k>``."""
    return config if seed is None else f"{config}/seed{seed}"



def seed_used(seed: int | None, r: dict) -> int:
    """The seed a run trained with: its ``--seed`` (``seed``), else its config's ``seed`` (0 when not recorded)."""
    return seed if seed is not None else int((r.get("config") or {}).get("seed", 0))


def precision(r: dict) -> str:
    """"bf16" for runs trained under bfloat16 autocast, else "fp32" (rows recovered without a config: fp32)."""
    return "bf16" if (r.get("config") or {}).get("trainer", {}).get("precision") == "bf16-mixed" else "fp32"


def recipe(r: dict, data: str) -> str:
    """Precision, batch, peak learning rate and crop padding of a run (rows recovered without a config: the base
    recipe of its data set, which those runs used)."""
    cfg = r.get("config")
    if not cfg:
        return f"fp32, batch 128, lr 0.001, crop {4 if data == 'CIFAR-10' else 0}"
    t = cfg["task"]
    return f"{precision(r)}, batch {cfg['trainer']['batch_size']}, lr {t['lr']:g}, crop {t['crop_padding']}"


def fmt(v: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "pending" if v is None else f"{v * scale:.{digits}f}"



def log_name(key: str) -> str:
    """The stem of a run's GNU time report and log: its key with ``/`` as ``_`` (``vit_x/seed5`` -> ``vit_x_seed5``)."""
    return key.replace("/", "_")



def train_command(config: str, seed: int | None) -> list[str]:
    """The ``torchworks train`` arguments of one run: the config, and ``--seed k`` for a seed repeat."""
    return ["train", f"configs/{config}.yaml", *([] if seed is None else ["--seed", str(seed)]), "--threads", "1"]



def parse_time_reports(log_dir: Path, name: str) -> tuple[float | None, float | None]:
    """Summed (CPU seconds = user + sys, wall seconds) over ``<name>*.time`` GNU time reports."""
    cpu = wall = 0.0
    files = sorted(log_dir.glob(f"{name}.time")) + sorted(log_dir.glob(f"{name}.part*.time"))
    for f in files:
        text = f.read_text()
        user = re.search(r"User time \(seconds\): ([\d.]+)", text)
        sys_ = re.search(r"System time \(seconds\): ([\d.]+)", text)
        el = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
        if not (user and sys_ and el):
            continue
        cpu += float(user.group(1)) + float(sys_.group(1))
        parts = [float(p) for p in el.group(1).split(":")]
        wall += sum(p * 60**i for i, p in enumerate(reversed(parts)))
    return (cpu, wall) if files else (None, None)



def training_cpu(state: dict, log_dir: Path, name: str) -> tuple[float | None, float | None, str]:
    """(CPU seconds, wall seconds, how they were obtained) for a finished run (see the module docstring)."""
    step = int(state["step"])
    timing = state.get("timing") or {}
    if timing and int(timing.get("from_step", 0)) == 0:
        return float(timing["cpu_seconds"]), float(timing["wall_seconds"]), "engine"
    cpu, wall = parse_time_reports(log_dir, name)
    covered = log_dir / f"{name}.steps"
    if cpu is not None and covered.is_file():
        n = int(covered.read_text().split()[0])
        if 0 < n < step:
            return cpu * step / n, None, f"est. from {n} of {step} steps"
    return cpu, wall, "time"



def last_val_acc(run_dir: Path) -> float | None:
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    with open(path) as fh:
        vals = [r["val/acc"] for r in csv.DictReader(fh) if r.get("val/acc")]
    return float(vals[-1]) if vals else None

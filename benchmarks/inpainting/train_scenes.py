"""Issue 20's long run: the A/B winner trained on general scenes, its held-out evaluation, and its export.

The long run is the ``scenes128`` recipe (``experiment_plan.SCENES128``: same data, masks, losses, crop, batch,
seed 0) with more steps. It continues the A/B's seed-0 run of the same model from its last checkpoint (the engine
resumes exactly, so this equals one run of the longer schedule), in its own folder, with the code's commit written
beside it. Usage, from the repository root::

    # train or resume (checkpoint every 200 steps; rerun the same command to continue after an interruption)
    nice -n 19 .venv/bin/python benchmarks/inpainting/train_scenes.py train --model lama --steps 5000 \\
        --ema 0.999 --results /work/runs/issue20 [--threads 1]
    # then fine-tune at the evaluation size (FixRes: train small, finish at the test resolution)
    nice -n 19 .venv/bin/python benchmarks/inpainting/train_scenes.py train --model lama --steps 5600 \\
        --ema 0.999 --crop 256 --results /work/runs/issue20
    # (the run went to step 2600 without --ema and was resumed with it: its COMMITS file records each session)
    # held-out evaluation: BSDS500 test + Kodak24 (224 photos) at 256 px, thin/medium/thick masks, against
    # Telea / NS / FSR, with hole PSNR, SSIM, hole L1 and FID/KID on EfficientNet-Lite0 features
    .venv/bin/python benchmarks/inpainting/train_scenes.py eval CKPT --results /work/runs/issue20
    # ship: safetensors + model card (numbers from the eval json) into src/torchworks/inpainting/pretrained
    .venv/bin/python benchmarks/inpainting/train_scenes.py export CKPT --name lama_scenes128 --results ...
    # training curves of the A/B runs (every model and seed) and of the long run, as one figure
    .venv/bin/python benchmarks/inpainting/train_scenes.py curves --results /work/runs/issue20

Nothing here is timed against a reference: CPU seconds are reported for the record (training cost per model).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from experiment_plan import SCENES128, Preset, run_dir, run_id, test_images  # noqa: E402

CLASSICAL = ("telea", "ns", "fsr")
FAMILIES = ("thin", "medium", "thick")


def long_preset(model: str, steps: int) -> Preset:
    """``SCENES128`` restricted to one generator and seed 0, with ``steps`` steps."""
    if model not in SCENES128.generators:
        raise SystemExit(f"error: unknown model {model!r}; choose from {', '.join(SCENES128.generators)}")
    return dataclasses.replace(SCENES128, name="scenes128long", steps=steps, seeds=(0,), checkpoint_every=200,
                               generators={model: SCENES128.generators[model]},
                               discriminators={model: SCENES128.discriminators[model]})


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def train(args: argparse.Namespace) -> Path:
    """Trains or resumes the long run; returns its run folder."""
    from experiment import train_run

    p = long_preset(args.model, args.steps)
    rid = run_id("scenes", args.model, 0)
    out = run_dir(args.results, p, rid)
    ab = run_dir(args.results, SCENES128, rid)
    if not (out / "checkpoints" / "last.ckpt").exists() and (ab / "checkpoints" / "last.ckpt").exists():
        out.mkdir(parents=True, exist_ok=True)
        shutil.copytree(ab / "checkpoints", out / "checkpoints", dirs_exist_ok=True)
        if (ab / "metrics.csv").exists():
            shutil.copy2(ab / "metrics.csv", out / "metrics.csv")
        print(f"continuing the A/B run {ab} (same recipe and seed)", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "COMMITS", "a") as f:  # the code each session of the run used
        extra = (f" ema={args.ema}" if args.ema else "") + (f" crop={args.crop}" if args.crop else "")
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {_commit()} steps={args.steps}{extra}\n")
    # log every 50 steps as the A/B runs did (the preset's steps // 20 would be 600 here): curves, not results
    task = {**({"ema": args.ema} if args.ema else {}), **({"crop": args.crop} if args.crop else {})}
    res = train_run(p, {"dataset": "scenes", "model": args.model, "seed": 0}, out, args.threads, {"log_every": 50},
                    task or None)
    with open(out / "sessions.jsonl", "a") as f:
        f.write(json.dumps(res) + "\n")
    print(json.dumps(res, indent=1))
    return out


def evaluate_checkpoint(ckpt: Path | None, label: str, out: Path, threads: int,
                        limit: int | None = None, skip: int = 0) -> dict[str, Any]:
    """Held-out scores of ``ckpt`` (None: the registered method ``label``, with its shipped defaults) and the
    classical methods, with FID/KID; also written to ``out/eval.json``."""
    import torch
    from experiment import learned_inpainter, summarise

    from torchworks.inpainting.base import Inpainter
    from torchworks.inpainting.evaluate import evaluate, write_results
    from torchworks.inpainting.fid import efficientnet_lite0

    torch.set_num_threads(threads)
    images = test_images(SCENES128.datasets["scenes"])[skip:limit]
    methods = [*CLASSICAL, label if ckpt is None else learned_inpainter(ckpt, label)]
    t0 = time.process_time()
    ev = evaluate(methods, images, list(FAMILIES), size=256, seed=0, grid_images=4,
                  feature_model=efficientnet_lite0())
    for r in ev.rows:
        r.method = r.method.name if isinstance(r.method, Inpainter) else r.method
    write_results(ev, out)
    names = [*CLASSICAL, label]
    res: dict[str, Any] = {"n_images": len(images), "size": 256, "cpu_seconds": time.process_time() - t0,
                           "methods": {m: summarise([r for r in ev.rows if r.method == m]) for m in names}}
    for (fam, m), s in ev.sets.items():
        name = m.name if isinstance(m, Inpainter) else m
        if name in res["methods"] and fam in res["methods"][name]:
            res["methods"][name][fam].update({k: float(v) for k, v in s.items()})
    times = {m: [r.seconds for r in ev.rows if r.method == m] for m in names}
    res["seconds_per_image"] = {m: sum(t) / max(1, len(t)) for m, t in times.items()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(res, indent=1))
    return res


def margins(res: dict[str, Any], label: str) -> dict[str, dict[str, float]]:
    """Per family: the model's hole PSNR minus the best classical one, and its FID minus the best classical FID."""
    out, nan = {}, float("nan")
    for fam in FAMILIES:
        ours = res["methods"][label][fam]
        best = max(CLASSICAL, key=lambda m: res["methods"][m][fam]["psnr_hole"])
        best_fid = min(CLASSICAL, key=lambda m: res["methods"][m][fam].get("fid", float("inf")))
        out[fam] = {"psnr_margin": ours["psnr_hole"] - res["methods"][best][fam]["psnr_hole"], "best": best,
                    "fid_margin": ours.get("fid", nan) - res["methods"][best_fid][fam].get("fid", nan),
                    "best_fid": best_fid}
    return out


def table(res: dict[str, Any], label: str) -> str:
    """Markdown table: every method x family, hole PSNR / SSIM / hole L1 / FID / seconds per image."""
    lines = ["| masks | method | hole PSNR (dB) | SSIM | hole L1 | FID (EffNet-Lite0) | KID | s / image |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for fam in FAMILIES:
        for m in [*CLASSICAL, label]:
            s = res["methods"][m][fam]
            lines.append(f"| {fam} | {m} | {s['psnr_hole']:.2f} | {s['ssim']:.4f} | {s['l1_hole']:.4f} | "
                         f"{s.get('fid', float('nan')):.2f} | {s.get('kid', float('nan')):.4f} | "
                         f"{res['seconds_per_image'][m]:.2f} |")
    return "\n".join(lines)


CARD = """# {name}: {label} trained on general scene photos (CPU)

- **Model**: `{model}` ({params:,} parameters, {mb:.1f} MB safetensors). Input `cat(RGB * (1 - mask), mask)`,
  output RGB in [0, 1]. The pipeline's defaults for learned methods apply: the hole is dilated by 3 px and the
  seam feathered; photos above 800 px are filled in crops around each hole.
- **Domain and resolution**: natural scene photos (landscapes, buildings, animals, people at a distance). Trained
  on 128 px crops of photos stored with their short side at 256 px; evaluated and meant to run at about 256 px per
  hole crop (`working_size` {working}).
- **Data**: {n_train} training photos: BSDS500 train + val, Sun-Hays 80 scenes, the skimage and sklearn sample
  photos (`../shared/data`; licences in its README). Held out, never trained on: BSDS500 test (200) + Kodak24.
- **Recipe** (`benchmarks/inpainting/experiment_plan.py`, preset `scenes128`, continued by
  `benchmarks/inpainting/train_scenes.py`): LaMa's loss stack at CPU scale: L1 known x10 and hole x10,
  non-saturating adversarial x10 with R1 0.001, discriminator feature matching x100 (`lama_discriminator_small`),
  a perceptual term on ImageNet EfficientNet-Lite0 features x0.02 (LaMa's ADE20k ResNet50 is not available offline;
  0.02 puts the term at the size of the others), LaMa's large training masks, Adam G 1e-3 / D 1e-4, batch 8,
  seed 0, {steps} steps, {cpu_h:.1f} CPU-hours on 1 thread ({commits}).
- **Evaluation** (the command below): the 224 held-out photos, centre square crops at 256 px, LaMa's thin / medium /
  thick masks with the fixed mask seed 0; hole PSNR, SSIM, hole L1 on the composite, FID/KID on EfficientNet-Lite0
  features of the composites against the originals (an FID proxy: not comparable to Inception FID; LPIPS needs
  weights this machine cannot obtain).

{table}

**Against the best classical method** (hole PSNR difference; FID difference, lower is better):
{margins}

**Verdict**: {verdict}

## Reproduce

One command from the repository root (about {eval_min:.0f} CPU-minutes on one thread; needs the `bsds500` and
`kodak24` data sets):

```bash
torchworks inpaint-eval --images ../shared/data/bsds500_images/test ../shared/data/kodak24 \\
    --methods telea,ns,fsr,{name} --masks thin,medium,thick --size 256 --fid --threads 1 -o eval_{name}
```
"""


def export(args: argparse.Namespace) -> Path:
    """Writes ``pretrained/<name>.safetensors`` and its card, evaluated through the registered name exactly as
    the card's Reproduce command does."""
    from experiment import recalibrated_generator

    import torchworks.inpainting.nets  # noqa: F401  (registers the generators)
    from torchworks.core.checkpoint import load_checkpoint, save_model
    from torchworks.inpainting import learned

    if args.name not in learned.SHIPPED:
        raise SystemExit(f"error: {args.name!r} has no SHIPPED entry in inpainting/learned.py")
    entry = learned.SHIPPED[args.name]
    state = load_checkpoint(args.ckpt)
    gen_name = ((state.get("config") or {}).get("task") or {}).get("generator")
    if gen_name != entry["model"]:
        raise SystemExit(f"error: {args.ckpt} trains {gen_name!r}, {args.name} ships {entry['model']!r}")
    gen = recalibrated_generator(args.ckpt)  # precise BN: the running averages lag behind a GAN run's weights
    root = Path(os.environ.get("TORCHWORKS_PRETRAINED_DIR", learned.PRETRAINED_DIR))
    path = save_model(root / entry["file"], gen, spec={"name": gen_name, "kwargs": {}})
    learned._register()
    run = args.ckpt.resolve().parents[1]
    cpu = sum(json.loads(line).get("cpu_seconds", 0.0) for line in (run / "sessions.jsonl").read_text().splitlines()
              if line.strip()) if (run / "sessions.jsonl").exists() else 0.0
    cpu += args.ab_cpu_seconds
    commits = sorted({line.split()[1][:7] for line in (run / "COMMITS").read_text().splitlines() if line.strip()}) \
        if (run / "COMMITS").exists() else []
    out = args.results / "runs" / "scenes128long" / f"card_{args.name}"
    res = evaluate_checkpoint(None, args.name, out, args.threads, args.limit)
    m = margins(res, args.name)
    goal = all(m[f]["psnr_margin"] >= 1.5 and m[f]["fid_margin"] < 0 for f in ("medium", "thick"))
    verdict = ("meets issue 20's goal (medium and thick masks: hole PSNR >= 1.5 dB above the best classical "
               "method and a lower FID than all of them)" if goal else
               "does not meet issue 20's goal (hole PSNR >= 1.5 dB above the best classical method on medium and "
               "thick masks and a lower FID than all of them); see the margins above")
    lines = [f"- {f}: {v['psnr_margin']:+.2f} dB vs {v['best']}, FID {v['fid_margin']:+.2f} vs {v['best_fid']}"
             for f, v in m.items()]
    card = CARD.format(name=args.name, label=args.label_text, model=gen_name,
                       params=sum(p.numel() for p in gen.parameters()), mb=path.stat().st_size / 1e6,
                       working=entry.get("working_size", entry["train_size"]), n_train=args.n_train,
                       steps=state.get("step", "?"), cpu_h=cpu / 3600, commits="code: " + ", ".join(commits),
                       table=table(res, args.name), margins="\n".join(lines), verdict=verdict,
                       eval_min=res["cpu_seconds"] / 60)
    path.with_suffix(".md").write_text(card)
    print(card)
    return path


LABELS = {"lama": "LaMa", "relama": "ReLaMa (CBAM)", "plainconv": "plain-conv"}
COLOURS = {"lama": "tab:blue", "relama": "tab:red", "plainconv": "tab:green"}


def _series(csv: Path, column: str, window: int) -> tuple[list[int], list[float]]:
    """(steps, values) of one metrics column, as a trailing mean over ``window`` logged rows (train losses of a
    GAN step are noisy: one row is one batch of 8)."""
    from torchworks.engine.logging import read_csv

    rows = [r for r in read_csv(csv)[0] if column in r]
    steps, values = [int(r["step"]) for r in rows], [float(r[column]) for r in rows]
    smooth = [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
              for i in range(len(values))]
    return steps, smooth


def curves(results: Path, out: Path, column: str = "train/l1_hole", window: int = 4) -> Path:
    """One figure: left, ``column`` of every A/B run (a line per seed, one colour per model); right, the long run
    (its first 1000 steps are the A/B seed-0 run it continued). Returns the PNG path."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.8))
    ab, long = fig.subplots(1, 2)
    drawn = 0
    for model in SCENES128.generators:
        for seed in SCENES128.seeds:
            csv = run_dir(results, SCENES128, run_id("scenes", model, seed)) / "metrics.csv"
            if csv.exists():
                x, y = _series(csv, column, window)
                ab.plot(x, y, color=COLOURS.get(model), alpha=0.8, linewidth=1.0,
                        label=f"{LABELS.get(model, model)}" if seed == SCENES128.seeds[0] else None)
                drawn += 1
    ab.set_title(f"seed A/B: {column}, mean of {window} logged steps")
    for model in SCENES128.generators:
        csv = run_dir(results, long_preset(model, 1), run_id("scenes", model, 0)) / "metrics.csv"
        if csv.exists():
            x, y = _series(csv, column, 4 * window)
            long.plot(x, y, color=COLOURS.get(model), linewidth=1.0, label=f"{LABELS.get(model, model)}, seed 0")
            drawn += 1
    long.set_title(f"long run: {column}, mean of {4 * window} logged steps")
    if not drawn:
        raise SystemExit(f"error: no metrics.csv of the A/B or the long run under {results}")
    for ax in (ab, long):
        ax.set_xlabel("step (batch 8, 128 px crops)")
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train or resume the long run")
    t.add_argument("--model", default="lama")
    t.add_argument("--steps", type=int, default=5000)
    t.add_argument("--ema", type=float, default=0.0,
                   help="decay of a weight average of the generator (0: off, the A/B recipe); a run resumed with it "
                        "starts the average from its checkpoint (recorded in COMMITS)")
    t.add_argument("--crop", type=int, default=None,
                   help="training crop size (default: the preset's 128); a run resumed with 256 fine-tunes at the "
                        "evaluation size (recorded in COMMITS)")
    e = sub.add_parser("eval", help="held-out evaluation of a checkpoint against the classical methods")
    e.add_argument("ckpt", type=Path)
    e.add_argument("--label", default="lama_scenes128")
    e.add_argument("--limit", type=int, default=None, help="first N held-out photos (default all 224)")
    e.add_argument("--skip", type=int, default=0,
                   help="leave out the first N held-out photos (32: the ones monitored during the long run)")
    x = sub.add_parser("export", help="ship a checkpoint: safetensors + model card (evaluated by name)")
    x.add_argument("ckpt", type=Path)
    x.add_argument("--name", default="lama_scenes128")
    x.add_argument("--label-text", default="LaMa (FFC, 4.8 M)")
    x.add_argument("--n-train", type=int, default=392)
    x.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)  # smoke tests only
    x.add_argument("--ab-cpu-seconds", type=float, default=0.0, help="CPU seconds of the A/B run it continued")
    c = sub.add_parser("curves", help="training curves of the A/B runs and the long run, one PNG")
    c.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "inpainting" / "scenes128_curves.png")
    for s in (t, e, x, c):
        s.add_argument("--results", type=Path, default=HERE / "results")
        s.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.cmd == "train":
        train(args)
    elif args.cmd == "export":
        export(args)
    elif args.cmd == "curves":
        print(curves(args.results, args.out))
    else:
        out = args.results / "runs" / "scenes128long" / f"eval_{args.label}"
        res = evaluate_checkpoint(args.ckpt, args.label, out, args.threads, args.limit, args.skip)
        print(table(res, args.label))
        print(json.dumps(margins(res, args.label), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

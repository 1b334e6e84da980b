"""LaMa vs ReLaMa vs a plain-conv control at equal parameter budget: a resumable queue of training and evaluation.

Run from the repository root (one torch thread per job; the machine is shared, so use ``nice``)::

    nice -n 15 .venv/bin/python benchmarks/inpainting/experiment.py --dry-run          # queue + time estimate
    nice -n 15 .venv/bin/python benchmarks/inpainting/experiment.py --budget-minutes 600
    .venv/bin/python benchmarks/inpainting/experiment.py --workers 2 --budget-minutes 120   # one job per core
    nice -n 15 .venv/bin/python benchmarks/inpainting/experiment.py --report-only      # rewrite the doc section
    .venv/bin/python benchmarks/inpainting/experiment.py --preset full --dry-run       # the 128 px plan
    .venv/bin/python benchmarks/inpainting/experiment.py --tiny ...                     # seconds-long plan (tests)

**Design.** Three generators of the same layout and parameter count (LaMa, ReLaMa = LaMa + CBAM, and the
plain-conv control with LaMa's parameter count), plus the Context Encoder, trained through the shared engine with
the same recipe, steps, batch, masks and seeds on two data sets, then evaluated with the inpainting harness
(``torchworks.inpainting.evaluate``) on held-out images next to the classical methods:

* faces: ``celebahq_samples`` (sean + stargan_v2, 103 photos sorted by path); the last 16 are held out (never
  trained on) and are the test set;
* scenes: ``bsds500`` train + val (300 photos) for training; the first 40 of BSDS500 *test* are the test set.

Presets (``--preset``, see ``experiment_plan``): ``cpu64`` (default, the plan run here) trains the ``*_tiny``
generators (lama_tiny 0.18 M; relama_tiny and plainconv_tiny within 1 % of it) on 64 px crops of photos stored at
80 px for 900 steps and evaluates at 64 px and, for resolution transfer, at 128 and 256 px (2x and 4x); ``full``
is the issue's 128 px plan with the ``*_small`` generators (lama_small 4.78 M) and 3000 steps, evaluated at 128,
256 and 512 px, which needs ~40 core-hours on this machine. Both use LaMa's large training masks and LaMa's loss
stack with a hole L1 term and no perceptual term (its weights are not installed here: switched off so every
machine trains the same thing), seeds 0-2 (the seed sets initialisation, data order, crops and masks, and is
shared by the models so runs pair up). Evaluation: the final checkpoint (no selection on test images), masks thin
/ medium / thick / box / center from the harness's fixed streams (the seed's three cases: scratches = thin,
region = medium + box, large = thick + center; the Context Encoder has a fixed input size: the pipeline resizes
to its size and back).

**The queue.** Jobs (classical baselines, then per seed: train and evaluate each model on each data set, then
image grids) run in order; each finished job is written at once to ``results/experiment_<preset>.json``
(atomically), and a rerun skips it. A training job that was interrupted resumes from its engine checkpoint
(``results/runs/<preset>/<run>/checkpoints/last.ckpt``, written every ``checkpoint_every`` steps).
Several workers (``--workers N``, or several shells) share the queue: each claims a job in the locked state file
before running it (``experiment_state``). ``--budget-minutes`` stops before any job whose estimate would overrun
the budget. Estimates come from step and forward times measured on this machine (``--dry-run`` measures them
once, and finished runs replace them).
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
import traceback
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(HERE.parent)]

from _common import atomic_write_text, write_section  # noqa: E402
from experiment_plan import (  # noqa: E402
    LABELS,
    PRESETS,
    Preset,
    build_queue,
    run_dir,
    run_id,
    test_images,
    train_config,
)
from experiment_report import render  # noqa: E402
from experiment_state import State  # noqa: E402
from experiment_timing import calibrate, estimate  # noqa: E402

DOC = ROOT / "docs" / "results" / "inpainting.md"
# One token per invocation, shared with its --workers helpers: a job that failed in this run is not retried by
# them (a later run retries it).
RUN_TOKEN = os.environ.setdefault("TW_EXPERIMENT_RUN", uuid.uuid4().hex[:12])
RESULTS = HERE / "results"


RECALIBRATED_PLANS = {"scenes128"}
"""Plans whose evaluations recompute the generators' batch-norm statistics first (see :func:`learned_inpainter`);
the others were published without it, and their numbers stay reproducible as published."""


def learned_inpainter(ckpt: Path, label: str, recalibrate: bool = True) -> Any:
    """An inpainter around a checkpoint's generator: no dilation or feathering (every method fills the same hole),
    full resolution for the fully convolutional models, resizing to its input size for the Context Encoder.

    ``recalibrate`` (a training checkpoint whose run folder holds its ``config.yaml``): the generator's batch-norm
    statistics are first recomputed for its final weights on 60 training batches (precise BN,
    ``InpaintGANTask.recalibrate_generator``): the running averages of these short GAN runs lag behind the weights,
    and in eval mode they gave, e.g., the LaMa of step 1600 a blue cast in every large hole."""
    import torchworks.inpainting.nets  # noqa: F401  (registers the generators)
    from torchworks.core.checkpoint import load_model
    from torchworks.inpainting.learned import LearnedInpainter

    model = recalibrated_generator(Path(ckpt)) if recalibrate else load_model(ckpt)
    size = getattr(model, "image_size", None)
    pad = 1 if size else 2 ** int(getattr(model, "n_downsampling", 3))
    inp = LearnedInpainter(model, label, pad_mod=pad, working_size=size)
    inp.default_dilate, inp.default_feather = 0, False
    return inp


def recalibrated_generator(ckpt: Path) -> Any:
    """The generator of an ``inpaint_gan`` training checkpoint with its batch-norm statistics recomputed on the
    training stream of the run's own ``config.yaml`` (``<run>/checkpoints/<ckpt>`` -> ``<run>/config.yaml``)."""
    import torchworks.inpainting.task  # noqa: F401  (registers the tasks)
    from torchworks.core.checkpoint import load_checkpoint
    from torchworks.engine import run as engine_run

    config = ckpt.parent.parent / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"{config}: the run's config, needed to recalibrate {ckpt} (or recalibrate=False)")
    run_cfg, task_cfg = engine_run._load(config, [], ckpt.parent.parent, None, {})  # as train() builds it
    task = engine_run.build_task(run_cfg, task_cfg)
    task.load_state_dict(load_checkpoint(ckpt)["task"])
    task.recalibrate_generator()
    return task.inference_generator.eval()  # the weight average when the run keeps one


def summarise(rows: list[Any]) -> dict[str, dict[str, float]]:
    """Per family: mean over images of area, hole PSNR, SSIM, hole L1, PSNR, and n."""
    out: dict[str, dict[str, float]] = {}
    for fam in dict.fromkeys(r.family for r in rows):
        sel = [r for r in rows if r.family == fam]
        out[fam] = {k: sum(getattr(r, k) for r in sel) / len(sel) for k in ("area", "psnr_hole", "ssim", "l1_hole",
                                                                             "psnr")} | {"n": len(sel)}
    return out


def evaluate_methods(methods: list[Any], images: list[Path], p: Preset, out: Path | None,
                     sizes: tuple[int, ...]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """``{size: {method: {family: means}}}`` from the harness; per-image rows go to ``out/eval_<size>/``."""
    from torchworks.inpainting.base import Inpainter
    from torchworks.inpainting.evaluate import evaluate, write_results

    res: dict[str, dict[str, Any]] = {}
    for size in sizes:
        ev = evaluate(methods, images, list(p.families), size=size, seed=0, grid_images=0)
        for r in ev.rows:  # Inpainter objects (checkpoints) are reported under their name
            r.method = r.method.name if isinstance(r.method, Inpainter) else r.method
        if out is not None:
            write_results(ev, out / f"eval_{size}")
        res[str(size)] = {m: summarise([r for r in ev.rows if r.method == m])
                          for m in dict.fromkeys(r.method for r in ev.rows)}
    return res


def run_job(job: dict[str, Any], p: Preset, state: State, results: Path, threads: int) -> dict[str, Any]:
    """Runs one job and returns its result (recorded by the caller)."""
    import torch

    torch.set_num_threads(threads)
    spec = p.datasets[job["dataset"]]
    if job["kind"] == "classical":
        return evaluate_methods(list(p.classical), test_images(spec), p, None, p.eval_sizes)
    if job["kind"] == "grid":
        return make_grid(job, p, state, results, threads)
    rid = run_id(job["dataset"], job["model"], job["seed"])
    out = run_dir(results, p, rid)
    if job["kind"] == "train":
        res = train_run(p, job, out, threads)
        return {**res, "checkpoint": _relative(Path(res["checkpoint"]), results)}
    ckpt = results / state.result(f"train/{rid}")["checkpoint"]
    inp = learned_inpainter(ckpt, job["model"], recalibrate=p.name in RECALIBRATED_PLANS)
    per_size = evaluate_methods([inp], test_images(spec), p, out, p.eval_sizes)
    return {size: by_method[job["model"]] for size, by_method in per_size.items()}


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it (the state file then survives moving the results folder)."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def train_run(p: Preset, job: dict[str, Any], out: Path, threads: int,
              trainer_overrides: dict[str, Any] | None = None,
              task_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Trains (or resumes) one run through the engine; returns its checkpoint, steps and timing.
    ``trainer_overrides``: trainer settings that change no result (e.g. ``log_every``); ``task_overrides``:
    recipe changes on top of the preset (the long run's weight average), which the caller must report."""
    import torchworks.inpainting  # noqa: F401  (registers masks and inpainters)
    import torchworks.inpainting.nets  # noqa: F401
    import torchworks.inpainting.task  # noqa: F401  (registers the tasks)
    from torchworks.core.checkpoint import load_checkpoint
    from torchworks.engine.run import train

    last = out / "checkpoints" / "last.ckpt"
    resumed_from = int(load_checkpoint(last)["step"]) if last.exists() else 0
    cfg = train_config(p, job["dataset"], job["model"], job["seed"], out, threads)
    cfg["trainer"].update(trainer_overrides or {})
    cfg["task"].update(task_overrides or {})
    t0, c0 = time.perf_counter(), time.process_time()
    res = train(cfg, resume=last if last.exists() else None, overwrite=not last.exists())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    steps_now = max(1, res.step - resumed_from)
    return {"checkpoint": str(res.last_checkpoint), "step": res.step, "resumed_from": resumed_from,
            "seconds": wall, "sec_per_step": wall / steps_now, "cpu_seconds": cpu, "cpu_per_step": cpu / steps_now,
            "final": {k: float(v) for k, v in res.metrics.items() if isinstance(v, int | float)}}


def make_grid(job: dict[str, Any], p: Preset, state: State, results: Path, threads: int) -> dict[str, Any]:
    """One comparison grid per data set at the first evaluation size: seed-``job['seed']`` models next to the
    classical methods. Checkpoints are not committed, so on a fresh checkout a missing one is retrained first
    (same recipe and seed; the tables keep the original run's numbers)."""
    from torchworks.inpainting.evaluate import evaluate, write_results

    methods: list[Any] = list(p.classical)
    retrained = []
    for m in p.generators:
        rid = run_id(job["dataset"], m, job["seed"])
        r = state.result(f"train/{rid}")
        if not r:
            continue
        ckpt = results / r["checkpoint"]
        if not ckpt.exists():
            print(f"grid: {ckpt} is missing: retraining {rid} with its recipe and seed", flush=True)
            run = {"dataset": job["dataset"], "model": m, "seed": job["seed"]}
            ckpt = Path(train_run(p, run, run_dir(results, p, rid), threads)["checkpoint"])
            retrained.append(rid)
        methods.append(learned_inpainter(ckpt, m, recalibrate=p.name in RECALIBRATED_PLANS))
    images = test_images(p.datasets[job["dataset"]])[: p.grid_images]
    ev = evaluate(methods, images, list(p.families), size=p.eval_sizes[0], seed=0, grid_images=p.grid_images)
    out = results / "runs" / p.name / f"grid_{job['dataset']}"
    paths = write_results(ev, out)
    order = [m if isinstance(m, str) else m.name for m in methods]
    return {"grid": _relative(Path(paths["grid"]), results) if paths.get("grid") else None,
            "columns": ["original", "masked", *order], "seed": job["seed"], "retrained": retrained}


def records(state: State, families: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Flat per-(run, size, family) records for :func:`experiment_report.render`, in the preset's family order."""
    out = []
    for job_id, j in state.data["jobs"].items():
        if j.get("status") != "done" or not j.get("result"):
            continue
        kind, rest = job_id.split("/", 1)
        if kind == "classical":
            for size, by_method in j["result"].items():
                for method, fams in by_method.items():
                    out += [{"dataset": rest, "method": method, "seed": None, "size": int(size), "family": f, **v}
                            for f, v in fams.items()]
        elif kind == "eval":
            dataset, model, seed = rest.rsplit("-", 2)
            for size, fams in j["result"].items():
                out += [{"dataset": dataset, "method": model, "seed": int(seed[1:]), "size": int(size), "family": f,
                         **v} for f, v in fams.items()]
    order = {m: i for i, m in enumerate(LABELS)}
    fam = {f: i for i, f in enumerate(families)}
    return sorted(out, key=lambda r: (r["dataset"], r["size"], fam.get(r["family"], 99), r["family"],
                                      order.get(r["method"], 99), r["seed"] if r["seed"] is not None else -1))


def report_meta(p: Preset, state: State, queue: list[dict[str, Any]], results: Path) -> dict[str, Any]:
    """Title, status line and the setup paragraph of the experiment section."""
    from torchworks.inpainting.nets import count_parameters

    n_done = sum(state.done(j["id"]) for j in queue)
    params = ", ".join(f"{LABELS[m]} `{g}` {count_parameters(g, **a) / 1e6:.2f} M"
                       for m, (g, a) in p.generators.items())
    remaining = [estimate(j, p, state, results, clock="cpu") for j in queue if not state.done(j["id"])]
    left = (f"about {sum(e for e in remaining if e) / 3600:.0f} h of single-core CPU time left by the estimate "
            "from step times measured on this machine (`--dry-run`)" if remaining else "complete")
    data = "; ".join(f"{d}: `{s.name}` {'/'.join(s.subdirs)} ({_n_train(s)} training photos)"
                     + (f" from {', '.join(s.train_sources)}" if s.train_sources else "")
                     + (f", test = the last {s.holdout} photos (never trained on)" if s.holdout else "")
                     + (f", test = `{'/'.join(s.test_subdirs)}` first {s.test_limit}" if s.test_subdirs else "")
                     + (f", test = {' + '.join(s.test_sources)} (never trained on)" if s.test_sources else "")
                     for d, s in p.datasets.items())
    weight = p.task.get("perceptual", 0.0)  # LAMA_RECIPE has none
    perceptual = (f"perceptual term x{weight:g} on EfficientNet-Lite0 ImageNet features" if weight
                  else "no perceptual term")
    ce = "ce" in p.generators
    intro = ("Generators (the first three at an equal parameter budget"
             f"{', the Context Encoder as a baseline' if ce else ''}): {params}; discriminators "
             f"{', '.join(sorted({d for d, _ in p.discriminators.values()}))}. Data: {data}. Training: "
             f"{p.steps} steps, batch {p.batch}, {p.crop} px crops, seeds {', '.join(map(str, p.seeds))}, LaMa's "
             f"large training masks and loss stack (hole L1 x10, {perceptual}"
             f"{'; the Context Encoder keeps its L2 + adversarial objective' if ce else ''}). "
             "Evaluation: the final checkpoint of each run"
             + (" (its batch-norm statistics first recomputed for its final weights on 60 training batches: precise "
                "BN, since the running averages of these short GAN runs lag behind the weights)"
                if p.name in RECALIBRATED_PLANS else "") + " on the test images with "
             "the harness's fixed mask streams (families " + ", ".join(p.families) + "; below 256 px LaMa's masks "
             "are drawn at 256 px and area-resized), at the training size and, for resolution transfer, "
             "larger, where the model runs at the full size; no "
             "dilation or feathering for any method; metrics on the composite (hole PSNR, SSIM of the whole image, "
             "hole L1). Means per run, size and mask family: "
             f"`{_shown(summary_csv(results, p))}` (per-image rows and image grids of the last seed's models next to "
             "the classical fills stay in the run folders, not committed: research-only image licences). "
             f"Produced by `python benchmarks/inpainting/experiment.py{_preset_flag(p)}`.")
    status = (f"Status ({datetime.date.today()}): {n_done} of {len(queue)} queued jobs finished; {left}. "
              f"Plan `{p.name}` (hash {state.hash}).")
    title = "Experiment: LaMa vs ReLaMa vs plain-conv at equal parameter budget"
    if p.name == "scenes128":
        title = "Experiment on general scenes (issue 20): LaMa vs ReLaMa vs plain-conv, 4.8 M parameters, 128 px"
        intro += ("\n\nTraining curves of every run (hole L1 of the training batches; `python "
                  "benchmarks/inpainting/train_scenes.py curves`):\n\n"
                  "![training curves](inpainting/scenes128_curves.png)")
    return {"title": title, "status": status, "intro": intro, "train_size": p.crop, "labels": LABELS,
            "families": tuple(p.families)}


def _preset_flag(p: Preset) -> str:
    return {"tiny": " --tiny", "cpu64": ""}.get(p.name, f" --preset {p.name} --workers 2")


def _n_train(spec: Any) -> int:
    from torchworks.inpainting.task import list_photos

    if spec.train_sources:
        return len(list_photos(list(spec.train_sources))[: spec.limit])
    return len(list_photos(spec.name, list(spec.subdirs))[: spec.limit]) - spec.holdout


CSV_FIELDS = ("dataset", "method", "seed", "size", "family", "n", "area", "psnr_hole", "ssim", "l1_hole", "psnr")


def summary_csv(results: Path, p: Preset) -> Path:
    """The committed CSV of per-(run, size, family) means, beside the state file."""
    return results / f"experiment_{p.name}.csv"


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def write_csv(recs: list[dict[str, Any]], path: Path) -> None:
    """One row per record (run or classical method, size, family), written atomically."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in recs:
        w.writerow({k: ("" if r.get(k) is None else (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]))
                    for k in CSV_FIELDS})
    atomic_write_text(path, buf.getvalue())


def section_name(p: Preset) -> str:
    """The results section a preset's report owns: ``experiment`` (the face/scene 64 px study and the test plans),
    ``experiment-scenes128`` for issue 20's general-scene A/B, which sits beside it in the same document."""
    return "experiment-scenes128" if p.name == "scenes128" else "experiment"


def write_report(p: Preset, state: State, queue: list[dict[str, Any]], results: Path, doc: Path) -> None:
    recs = records(state, p.families)
    write_csv(recs, summary_csv(results, p))
    write_section(doc, section_name(p), render(recs, report_meta(p, state, queue, results)), heading=None)
    print(f"wrote the experiment section of {doc} and {summary_csv(results, p)}")


def dry_run(p: Preset, state: State, queue: list[dict[str, Any]], results: Path, threads: int,
            calibrate_missing: bool = True) -> float:
    """Prints the queue with each job's status and estimate; measures missing step times first. Returns the
    estimated seconds left."""
    if calibrate_missing:
        for m in dict.fromkeys(j["model"] for j in queue if j["kind"] == "train"):
            if m not in state.data["calibration"]:
                print(f"measuring {m} ...", flush=True)
                state.set_calibration(m, calibrate(p, m, threads))
    total = cpu_total = 0.0
    unknown = 0
    print(f"{'status':<12} {'wall est.':>10} {'CPU est.':>10}  job")
    for j in queue:
        status = state.data["jobs"].get(j["id"], {}).get("status", "pending")
        est = None if status == "done" else estimate(j, p, state, results)
        cpu = None if status == "done" else estimate(j, p, state, results, clock="cpu")
        total += est or 0.0
        cpu_total += cpu or 0.0
        unknown += est is None and status != "done"
        print(f"{status:<12} {_minutes(est):>10} {_minutes(cpu):>10}  {j['id']}")
    for m, c in state.data["calibration"].items():
        fwd = ", ".join(f"{s} px {1000 * v:.0f} ms" for s, v in c.get("fwd_cpu_s", c["fwd_s"]).items())
        print(f"measured {m}: {c.get('cpu_per_step', c['sec_per_step']):.2f} CPU s/step, {c['sec_per_step']:.2f} wall "
              f"s/step (batch {p.batch}, {p.crop} px, {c['threads']} thread(s)); forward (CPU) {fwd} ({c['measured']})")
    n_left = sum(not state.done(j["id"]) for j in queue)
    print(f"{n_left} of {len(queue)} jobs left: about {cpu_total / 3600:.1f} h on one idle core (CPU time), "
          f"{total / 3600:.1f} h at the load of the measurement (wall time)"
          + (f"; {unknown} jobs without estimate" if unknown else ""))
    return total


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def _needs(job: dict[str, Any], queue: list[dict[str, Any]]) -> list[str]:
    """The jobs that must be done before ``job``: an evaluation needs its training run, a grid the queue's
    training runs of its data set and seed."""
    if job["kind"] == "eval":
        return [f"train/{run_id(job['dataset'], job['model'], job['seed'])}"]
    if job["kind"] == "grid":
        return [j["id"] for j in queue
                if j["kind"] == "train" and j["dataset"] == job["dataset"] and j["seed"] == job["seed"]]
    return []


def run_queue(p: Preset, state: State, queue: list[dict[str, Any]], results: Path, threads: int,
              budget_minutes: float | None = None) -> list[str]:
    """Runs the pending jobs in order, recording each as soon as it finishes; returns the ids run now."""
    t_start = time.perf_counter()
    ran = []
    for job in queue:
        state.refresh()  # other workers may have finished jobs meanwhile
        if state.done(job["id"]):
            print(f"skip (done): {job['id']}")
            continue
        needs = _needs(job, queue)
        if any(not state.done(n) for n in needs):
            print(f"skip (waits for {', '.join(n for n in needs if not state.done(n))}): {job['id']}")
            continue
        if budget_minutes is not None:
            if job["kind"] == "train" and job["model"] not in state.data["calibration"]:
                state.set_calibration(job["model"], calibrate(p, job["model"], threads))
            est = estimate(job, p, state, results) or 0.0
            spent = time.perf_counter() - t_start
            if spent + est > 60 * budget_minutes:
                print(f"budget: {spent / 60:.1f} of {budget_minutes} min used; {job['id']} needs about "
                      f"{est / 60:.1f} min more: stopping (rerun to continue)")
                break
        if state.data["jobs"].get(job["id"], {}).get("run") == RUN_TOKEN:
            print(f"skip (failed earlier in this run): {job['id']}")
            continue
        if not state.claim(job["id"], started=datetime.datetime.now().isoformat(timespec="seconds")):
            print(f"skip (another worker runs it): {job['id']}")
            continue
        print(f"run: {job['id']}", flush=True)
        t0 = time.perf_counter()
        try:
            result = run_job(job, p, state, results, threads)
        except Exception as e:  # recorded; the queue goes on (workers of this run do not retry it, a rerun does)
            state.mark(job["id"], status="failed", error=f"{type(e).__name__}: {e}"[:500], run=RUN_TOKEN)
            traceback.print_exc()
            print(f"failed: {job['id']} (recorded; continuing with the queue)", flush=True)
            continue
        except BaseException as e:
            state.mark(job["id"], status="interrupted", error=f"{type(e).__name__}: {e}"[:500])
            raise
        state.mark(job["id"], status="done", seconds=time.perf_counter() - t0, result=result,
                   finished=datetime.datetime.now().isoformat(timespec="seconds"))
        ran.append(job["id"])
    return ran


def _without_workers(argv: list[str]) -> list[str]:
    """``argv`` minus ``--workers N`` / ``--workers=N`` (for the helper processes)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--workers":
            skip = True
        elif not a.startswith("--workers="):
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu64",
                    help="cpu64: the plan sized for this machine (default); full: the 128 px plan; tiny: tests")
    ap.add_argument("--tiny", action="store_true", help="the seconds-long test plan (= --preset tiny)")
    ap.add_argument("--dry-run", action="store_true", help="print the queue and the time estimate, run nothing")
    ap.add_argument("--no-calibrate", action="store_true", help="--dry-run without measuring step times")
    ap.add_argument("--recalibrate", action="store_true", help="measure the step times again (with --dry-run)")
    ap.add_argument("--report-only", action="store_true", help="rewrite the report section from the state file")
    ap.add_argument("--no-report", action="store_true", help="do not write the report after running")
    ap.add_argument("--budget-minutes", type=float, default=None, help="stop before a job that would overrun")
    ap.add_argument("--datasets", nargs="+", default=None, help="restrict the queue to these data sets")
    ap.add_argument("--models", nargs="+", default=None, help="restrict the queue to these models")
    ap.add_argument("--seeds", nargs="+", type=int, default=None, help="restrict the queue to these seeds")
    ap.add_argument("--steps", type=int, default=None, help="override the preset's training steps (new plan)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1,
                    help="run the queue in this many processes at once (one per core; they share the state file)")
    ap.add_argument("--results-dir", default=os.environ.get("TW_EXPERIMENT_RESULTS", str(RESULTS)),
                    help="state file and runs (default $TW_EXPERIMENT_RESULTS or benchmarks/inpainting/results)")
    ap.add_argument("--doc", default=None, help="Markdown file for the report (default: docs/results/inpainting.md; "
                    "with --tiny: <results-dir>/experiment_tiny.md)")
    args = ap.parse_args(argv)
    p = PRESETS["tiny" if args.tiny else args.preset]
    if args.steps:
        p = replace(p, steps=args.steps)
    results = Path(args.results_dir)
    doc = Path(args.doc) if args.doc else (results / "experiment_tiny.md" if p.name == "tiny" else DOC)
    state = State(results / f"experiment_{p.name}.json", p)
    queue = build_queue(p, args.datasets, args.models, args.seeds)
    import torchworks.inpainting  # noqa: F401  (registers masks and classical inpainters)

    if args.dry_run:
        if args.recalibrate:
            for m in list(state.data["calibration"]):
                state.set_calibration(m, None)
        dry_run(p, state, queue, results, args.threads, calibrate_missing=not args.no_calibrate)
        return 0
    codes: list[int] = []
    failed: list[str] = []
    if not args.report_only:
        if args.workers < 1:
            raise SystemExit(f"--workers must be >= 1, got {args.workers}")
        helpers = [subprocess.Popen([sys.executable, __file__, *_without_workers(argv if argv is not None
                                                                                  else sys.argv[1:]),
                                     "--no-report"]) for _ in range(args.workers - 1)]
        try:
            run_queue(p, state, queue, results, args.threads, args.budget_minutes)
        finally:
            codes = [h.wait() for h in helpers]
        state.refresh()
        if any(codes):
            print(f"worker exit codes: {codes}", file=sys.stderr)
        failed = [k for k, j in state.data["jobs"].items() if j.get("status") == "failed" and j.get("run") == RUN_TOKEN]
        if failed:
            print(f"failed jobs (see their errors in the state file): {', '.join(failed)}", file=sys.stderr)
    if not args.no_report:
        write_report(p, state, queue, results, doc)
    return 1 if not args.report_only and (any(codes) or failed) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Step-time calibration and job-time estimates of the inpainting experiment (see ``experiment.py``)."""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

from experiment_plan import Preset, run_dir, run_id, test_images, train_config
from experiment_state import State


class _Stepper:
    """The engine's manual-optimisation interface, without the engine (for calibration only)."""

    def __init__(self, optimizers: list[Any]) -> None:
        self.optimizers = optimizers

    def step(self, index: int, loss: Any) -> None:
        opt = self.optimizers[index]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def calibrate(p: Preset, model: str, threads: int, steps: int = 2) -> dict[str, Any]:
    """Measures seconds per training step (median of ``steps`` after a warm-up) and per generator forward at
    each evaluation size (batch 1), on this machine now: wall time, and process CPU time (what the job costs on a
    core of its own; on a shared machine the wall time can be many times larger)."""
    import tempfile

    import torch

    import torchworks.inpainting.nets  # noqa: F401
    import torchworks.inpainting.task  # noqa: F401
    from torchworks.engine.config import load_run_config
    from torchworks.engine.run import build_task

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        run_cfg, task_cfg = load_run_config(train_config(p, next(iter(p.datasets)), model, 0, Path(tmp), threads))
    torch.manual_seed(0)
    task = build_task(run_cfg, task_cfg).train()
    data = task.train_dataset()
    samples = [data[i] for i in range(p.batch)]
    batch = tuple(torch.stack(t) for t in zip(*samples, strict=True))
    stepper = _Stepper(list(task.configure_optimizers()))
    times, cpu = [], []
    for i in range(steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        task.training_step(batch, stepper)
        if i:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    gen = task.generator.eval()
    fwd, fwd_cpu = {}, {}
    for size in p.eval_sizes:
        s = getattr(gen, "image_size", None) or size
        x = torch.rand(1, 4, s, s)
        with torch.inference_mode():
            gen(x)
            t0, c0 = time.perf_counter(), time.process_time()
            gen(x)
        fwd[str(size)], fwd_cpu[str(size)] = time.perf_counter() - t0, time.process_time() - c0
    return {"sec_per_step": sorted(times)[len(times) // 2], "cpu_per_step": sorted(cpu)[len(cpu) // 2],
            "fwd_s": fwd, "fwd_cpu_s": fwd_cpu, "threads": threads,
            "measured": datetime.datetime.now().isoformat(timespec="seconds")}


CLASSICAL_S_256 = 0.1
"""Rough seconds per image and method of a classical fill at 256 px (docs/results/inpainting.md: 0.04-0.13 s);
scaled with the pixel count."""


def estimate(job: dict[str, Any], p: Preset, state: State, results: Path, clock: str = "wall") -> float | None:
    """Seconds the job should take, from finished runs of the same model or the calibration; None if unknown.

    ``clock="wall"`` extrapolates the measured wall times (at the load of the moment they were taken);
    ``"cpu"`` the CPU times, i.e. the time on an otherwise idle core.
    """
    step_key, fwd_key = ("cpu_per_step", "fwd_cpu_s") if clock == "cpu" else ("sec_per_step", "fwd_s")
    n_img = {d: len(test_images(s)) for d, s in p.datasets.items()}[job["dataset"]]
    n_fam = len(p.families)
    if job["kind"] == "classical":
        return n_img * n_fam * len(p.classical) * sum(CLASSICAL_S_256 * (s / 256) ** 2 for s in p.eval_sizes)
    model = job.get("model")
    cal = state.data["calibration"].get(model) if model else None
    if job["kind"] == "train":
        done = [j["result"][step_key] for k, j in state.data["jobs"].items()
                if k.startswith("train/") and k.split("/", 1)[1].rsplit("-", 2)[1] == model
                and (j.get("result") or {}).get(step_key)]
        sps = sorted(done)[len(done) // 2] if done else (cal or {}).get(step_key, (cal or {}).get("sec_per_step"))
        if sps is None:
            return None
        last = run_dir(results, p, run_id(job["dataset"], model, job["seed"])) / "checkpoints" / "last.ckpt"
        start = _checkpoint_step(last)
        return max(0, p.steps - start) * sps + 5.0  # + engine start-up and the final checkpoint
    if job["kind"] == "eval":
        if not cal:
            return None
        fwd = cal.get(fwd_key, cal["fwd_s"])
        return n_img * n_fam * sum(fwd[str(s)] + 0.02 * (s / 128) ** 2 for s in p.eval_sizes) * 1.2
    cals = [c for c in state.data["calibration"].values()]
    size = p.eval_sizes[0]
    per = sum(c.get(fwd_key, c["fwd_s"])[str(size)] for c in cals) if cals else 0.0
    return p.grid_images * n_fam * (per + len(p.classical) * CLASSICAL_S_256 * (size / 256) ** 2) + 2.0


def _checkpoint_step(path: Path) -> int:
    if not path.exists():
        return 0
    from torchworks.core.checkpoint import load_checkpoint

    return int(load_checkpoint(path)["step"])

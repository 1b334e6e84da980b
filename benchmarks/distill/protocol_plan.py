"""What the distillation protocol runs: the methods, the rescaled schedule, one run's config, and its cost.

Rescaling rule (RepDistiller ``train_student.py``: 240 epochs of batch 64, lr 0.05, x0.1 at epochs 150/180/210,
30 extra init epochs for AB/FSP/FT): the whole schedule is mapped onto ``S`` optimisation steps of batch 64 over
the full CIFAR-10 training set, so one RepDistiller epoch becomes ``S/240`` steps, the decays fall at
``150/240 S, 180/240 S, 210/240 S`` (= 5/8, 6/8, 7/8 of ``S``) and the init stage lasts ``30/240 S = S/8``
extra steps. ``S`` is a multiple of 8 so all of them are whole steps. Batch size, lr, momentum 0.9, weight
decay 5e-4, loss weights and temperatures stay RepDistiller's. The full training set is kept (rather than a
subset seen for more epochs) because CRD's memory bank and label-aware negatives span all 50,000 images.

``S`` comes from measured costs (:func:`calibrate`): per-step CPU seconds of every method at 1 thread, one
full test-set evaluation, and the fixed per-run set-up; see :func:`compute_schedule`.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

METHODS_14 = ("kd", "fitnet", "at", "sp", "cc", "vid", "rkd", "pkt", "ab", "ft", "fsp", "nst", "crd", "ofd")
EXTRA_METHODS = ("dkd", "dist")
DISTILLED = METHODS_14 + EXTRA_METHODS
BASELINE = "none"
#: Main queue order: the baseline first (every gain needs it), then the costliest run so that two workers
#: do not end with CRD alone on one of them.
MAIN_ORDER = (BASELINE, "crd", *[m for m in DISTILLED if m != "crd"])
INIT_METHODS = frozenset({"ab", "fsp", "ft"})
TOP_SEEDED = 4  # methods that get a second seed (with the baseline), best last accuracy first

REPDISTILLER = {"epochs": 240, "milestones": (150, 180, 210), "init_epochs": 30, "lr": 0.05, "batch": 64}
TRAIN_SIZE = 50_000
STEP_MULTIPLE = 8
EVALS_PER_RUN = 8  # one full test-set evaluation every S/8 steps (the last one is the "last" accuracy)
CHECKPOINTS_PER_RUN = 16  # resume loses at most S/16 steps


def run_name(method: str, seed: int) -> str:
    """``"kd-s0"``: the queue key and run directory name of one run."""
    return f"{method}-s{seed}"


@dataclass
class Costs:
    """Measured costs (seconds of process CPU time at 1 thread) that the schedule is computed from.

    Attributes:
        step_s: per optimisation step of each method's main phase (``none`` is the plain student step).
        init_step_s: per init-phase step of AB / FSP / FT.
        eval_s: one evaluation of the 10,000 test images.
        setup_s: fixed cost of one run (build, data, final checkpoint, process start).
        note: how and when they were measured.
    """

    step_s: dict[str, float]
    init_step_s: dict[str, float] = field(default_factory=dict)
    eval_s: float = 0.0
    setup_s: float = 0.0
    note: str = ""

    def run_s(self, method: str, steps: int) -> float:
        """Estimated CPU seconds of one run of ``method`` with a main schedule of ``steps`` steps."""
        has_init = method in INIT_METHODS  # its S/8 init steps add one evaluation (every S/8 steps)
        init = steps // STEP_MULTIPLE if has_init else 0
        evals = EVALS_PER_RUN + has_init
        return (self.setup_s + evals * self.eval_s + steps * self.step_s[method]
                + init * self.init_step_s.get(method, self.step_s[method]))


@dataclass
class Schedule:
    """The rescaled schedule every run of the protocol follows (see the module docstring)."""

    steps: int  # S: main-phase optimisation steps
    batch: int = 64
    lr: float = 0.05
    train_limit: int | None = None  # None: the full training set
    val_batches: int | None = None  # None: the whole test set per evaluation
    crd_k: int | None = None  # None: the recipe's 4096 negatives
    evals: int = EVALS_PER_RUN  # evaluations per run (every S/evals steps)
    checkpoints: int = CHECKPOINTS_PER_RUN  # checkpoints per run (every S/checkpoints steps)
    tiny: bool = False

    @property
    def init_steps(self) -> int:
        """AB / FSP / FT init stage: 30 of 240 epochs -> S/8 extra steps."""
        return self.steps * REPDISTILLER["init_epochs"] // REPDISTILLER["epochs"]

    @property
    def milestone_steps(self) -> list[int]:
        """LR decays (x0.1), in main-phase steps: 150/180/210 of 240 epochs."""
        return [self.steps * m // REPDISTILLER["epochs"] for m in REPDISTILLER["milestones"]]

    @property
    def epochs(self) -> float:
        """Passes over the training set in the main phase."""
        return self.steps * self.batch / (self.train_limit or TRAIN_SIZE)

    def describe(self) -> str:
        frac = self.steps / (REPDISTILLER["epochs"] * TRAIN_SIZE / REPDISTILLER["batch"])
        return (f"S = {self.steps} steps of batch {self.batch} ({self.epochs:.2f} epochs of "
                f"{self.train_limit or TRAIN_SIZE} images; {100 * frac:.2f} % of RepDistiller's 240 epochs), lr "
                f"{self.lr} x0.1 at steps {'/'.join(map(str, self.milestone_steps))}, init stage {self.init_steps} "
                f"steps (AB/FSP/FT)")


def compute_schedule(costs: Costs, budget_minutes: float, workers: int, *, main: tuple[str, ...] = MAIN_ORDER,
                     seed_runs: int = 1 + TOP_SEEDED, margin: float = 0.9, min_steps: int = 64) -> Schedule:
    """The largest ``S`` (a multiple of 8) whose runs fit the budget.

    The CPU time of a run is linear in ``S`` (:meth:`Costs.run_s`), so the queue's total is ``A + K*S`` with
    ``A`` the fixed costs (set-up and evaluations) and ``K`` the summed per-step costs (init stages at 1/8).
    The second-seed runs (the baseline plus ``seed_runs - 1`` distilled methods, not known in advance) are
    costed at the baseline's step and the mean distilled step. Available: ``budget_minutes * 60 * workers``
    core-seconds (one single-thread worker per core) times ``margin`` (the workers share memory bandwidth and
    the queue's tail leaves a core idle).

    Raises:
        ValueError: the budget does not even cover the fixed costs plus ``min_steps`` steps per run.
    """
    distilled = [m for m in main if m != BASELINE]
    mean_step = statistics.fmean(costs.step_s[m] for m in distilled) if distilled else costs.step_s[BASELINE]
    fixed = costs.setup_s + EVALS_PER_RUN * costs.eval_s
    a = sum(costs.run_s(m, 0) for m in main) + seed_runs * fixed
    k = sum(costs.step_s[m] + (costs.init_step_s.get(m, costs.step_s[m]) / STEP_MULTIPLE
                               if m in INIT_METHODS else 0.0) for m in main)
    if seed_runs:
        k += costs.step_s[BASELINE] + (seed_runs - 1) * mean_step
    available = budget_minutes * 60 * workers * margin
    steps = int((available - a) / k) // STEP_MULTIPLE * STEP_MULTIPLE
    if steps < min_steps:
        raise ValueError(f"a budget of {budget_minutes} min on {workers} worker(s) leaves {steps} steps per run "
                         f"(fixed costs {a / 60:.1f} core-min, {k:.2f} core-s per step of every run); raise "
                         "--budget-minutes")
    return Schedule(steps=steps)


def tiny_schedule() -> Schedule:
    """A few steps on a small subset: for tests and smoke runs, not results."""
    return Schedule(steps=8, batch=16, train_limit=128, val_batches=2, crd_k=64, evals=2, checkpoints=4, tiny=True)


def run_config(method: str, seed: int, schedule: Schedule, out_dir: str, threads: int = 1,
               dataset: str = "cifar10") -> dict[str, Any]:
    """The engine run config (plain data) of one protocol run."""
    from torchworks.distill.recipes import method_terms

    terms = [dataclasses.asdict(t) for t in method_terms(method)]
    for t in terms:
        if t["name"] == "crd" and schedule.crd_k is not None:
            t["args"]["k"] = schedule.crd_k
    init = schedule.init_steps if method in INIT_METHODS else 0
    s = schedule.steps
    return {
        "task": {
            "name": "distill", "teacher": "resnet56", "student": "resnet20",
            "teacher_ckpt": None if dataset == "synthetic" else "pretrained:resnet56_cifar10",
            "losses": terms, "init_steps": init,
            "dataset": dataset, "holdout": 0, "train_limit": schedule.train_limit, "crop_padding": 4, "flip": True,
            "synthetic_size": schedule.train_limit or 64,
            "optimizer": "sgd", "lr": schedule.lr, "momentum": 0.9, "weight_decay": 5e-4, "weight_decay_scope": "all",
            "schedule": "step", "total_steps": s, "warmup_steps": 0, "gamma": 0.1,
            "milestones": [m / REPDISTILLER["epochs"] for m in REPDISTILLER["milestones"]],
            "channels_last": True,
        },
        "trainer": {
            "max_steps": s + init, "batch_size": schedule.batch, "val_batch_size": 256 if not schedule.tiny else 32,
            "eval_every": max(1, s // schedule.evals), "log_every": max(1, s // 64),
            "checkpoint_every": max(1, s // schedule.checkpoints), "keep_checkpoints": 1,
            "limit_val_batches": schedule.val_batches, "precision": "bf16-mixed", "threads": threads,
            "drop_last": True, "progress": False, "tensorboard": False, "plots": False,
        },
        "seed": seed,
        "out_dir": out_dir,
    }


# --- calibration ------------------------------------------------------------------------------------------------
def _task(method: str, init: int, dataset: str):
    from torchworks.core.config import from_dict
    from torchworks.distill.task import DistillationTask, DistillConfig

    cfg = run_config(method, 0, Schedule(steps=8 * max(1, init)), "unused", dataset=dataset)["task"]
    cfg = {k: v for k, v in cfg.items() if k != "name"}
    cfg["init_steps"] = init
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DistillationTask(from_dict(DistillConfig, cfg))


def _median_step(task, batches, steps: int, warmup: int = 1) -> float:
    """Median CPU seconds of fetch + training_step + backward + SGD step under bf16 autocast."""
    opt = task.configure_optimizers()
    times = []
    for i in range(warmup + steps):
        c0 = time.process_time()
        batch = batches()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = task.training_step(batch)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        if i >= warmup:
            times.append(time.process_time() - c0)
    return statistics.median(times)


def calibrate(methods: tuple[str, ...] = MAIN_ORDER, steps: int = 3, batch: int = 64, dataset: str = "cifar10",
              log=print) -> Costs:
    """Measures :class:`Costs` at tiny scale: a few steps of every method on real batches, 1 thread."""
    import numpy as np

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    step_s, init_s, setup = {}, {}, []
    eval_s = 0.0
    for m in methods:
        c0 = time.process_time()
        task = _task(m, 10**6 if m in INIT_METHODS else 0, dataset)
        ds = task.train_dataset()
        setup.append(time.process_time() - c0)

        def batches(ds=ds):
            items = [ds[int(i)] for i in rng.integers(0, len(ds), batch)]
            return tuple(torch.stack([torch.as_tensor(it[j]) for it in items]) for j in range(len(items[0])))

        task.train()
        if m in INIT_METHODS:
            init_s[m] = _median_step(task, batches, steps)
            task.step_count.fill_(10**6)  # past the init phase: time the main phase
        step_s[m] = _median_step(task, batches, steps)
        log(f"calibrate {m:7s} step {1e3 * step_s[m]:6.0f} ms" + (f"  init {1e3 * init_s[m]:6.0f} ms"
                                                                   if m in init_s else ""))
        if m == BASELINE:
            eval_s = _eval_seconds(task)
            log(f"calibrate eval of 10,000 test images {eval_s:.1f} s")
    note = (f"{steps} timed steps per method after 1 warm-up, batch {batch}, bf16 autocast, 1 thread, process CPU "
            f"time, load average {_load():.1f}")
    return Costs(step_s=step_s, init_step_s=init_s, eval_s=eval_s, setup_s=statistics.fmean(setup) + 5.0,
                 note=note)


@torch.no_grad()
def _eval_seconds(task, batch: int = 256, batches: int = 3) -> float:
    """CPU seconds of one pass over 10,000 test images, extrapolated from ``batches`` batches."""
    test = task.test_dataset()
    task.eval()
    times = []
    for b in range(batches):
        c0 = time.process_time()
        x = torch.stack([test[i][0] for i in range(b * batch, (b + 1) * batch)])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            task.validation_step((x, torch.as_tensor([test[i][1] for i in range(b * batch, (b + 1) * batch)])))
        times.append(time.process_time() - c0)
    task.train()
    return statistics.median(times) * math.ceil(10_000 / batch)


def _load() -> float:
    import os

    return os.getloadavg()[0]


def costs_to_dict(costs: Costs) -> dict[str, Any]:
    return dataclasses.asdict(costs)


def costs_from_dict(data: dict[str, Any]) -> Costs:
    return Costs(**data)

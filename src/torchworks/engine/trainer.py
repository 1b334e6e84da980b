"""The one training loop: any :class:`~torchworks.engine.task.Task` on Lightning Fabric.

The same loop runs on one CPU core, a GPU, or ``devices`` DDP or FSDP processes (Fabric re-launches the current
command for ranks 1..N-1, or joins processes started by ``torchrun``/SLURM; FSDP: :mod:`~torchworks.engine.fsdp`).
Per step: zero-grad, ``training_step`` (through the DDP/FSDP wrappers, see :mod:`~torchworks.engine.wrapping`),
backward, clip, optimiser and scheduler steps; then, on their cadences, logging, evaluation (early stopping, best
checkpoint) and checkpoints.

Exact resume: a checkpoint holds weights, optimiser/scheduler states, the step and the position inside the
epoch, every rank's RNG state and the early-stopping state; data order is a pure function of
``(seed, epoch)``; validation draws from its own stream. A run stopped at step k and resumed therefore computes
bit-identical losses from step k+1 on (same devices and thread count; num_workers > 0 restarts worker
generators at the resumed epoch's start).

GANs and other manual-optimisation tasks under DDP must list their networks as separate
``trainable_modules()`` (two backward passes inside one DDP forward cannot be synchronised).
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from torchworks.core.config import dump_yaml
from torchworks.core.errors import CheckpointError, ConfigError
from torchworks.core.seeding import seed_everything, set_rng_state, set_threads
from torchworks.engine import ranks
from torchworks.engine.callbacks import BestMetric, EarlyStopping
from torchworks.engine.checkpointing import CheckpointManager, exported_model, read_training_checkpoint, restore
from torchworks.engine.config import TrainerConfig
from torchworks.engine.loaders import EngineLoader, build_loader
from torchworks.engine.logging import MetricLogger
from torchworks.engine.loop import TrainingLoop, scalars_of
from torchworks.engine.plots import plot_curves
from torchworks.engine.wrapping import FabricStepper, ModuleRouter, as_list


@dataclass
class TrainResult:
    """What a training run produced (``result.x`` or ``result["x"]``).

    Attributes:
        out_dir: the run directory.
        last_checkpoint: ``checkpoints/last.ckpt`` (resume from it), or None if none was written.
        best_checkpoint: ``checkpoints/best.ckpt`` by ``task.monitor``, or None if no evaluation reported it.
        metrics_csv: ``metrics.csv``.
        curves_png: ``curves.png``, or None when plots are off or there was nothing to plot.
        tensorboard_dir: ``tb/`` when TensorBoard events were written, else None.
        metrics: the final metrics: the last logged ``train/*`` scalars and the final ``val/*`` evaluation.
        step: optimisation steps done in total (including those before a resume).
        epoch: completed epochs.
        stopped_early: whether early stopping ended the run.
        cpu_seconds: CPU time (user + system, all threads of this process) spent in ``fit`` over the whole run,
            earlier processes of a resumed run included; ``wall_seconds`` the same in wall-clock time. Runs
            resumed from checkpoints written before this was recorded count from the resume.
        rank: this process's global rank, and world_size the number of processes.
        task: the trained task, on this process's device.
    """

    out_dir: Path
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    metrics_csv: Path | None
    curves_png: Path | None
    tensorboard_dir: Path | None
    metrics: dict[str, float]
    step: int
    epoch: int
    stopped_early: bool
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    rank: int = 0
    world_size: int = 1
    task: Any = field(default=None, repr=False)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


class Trainer:
    """Trains and evaluates tasks with the settings of a :class:`TrainerConfig`.

    Create the trainer *before* building the task: the constructor seeds every generator, so weight
    initialisation is covered by ``seed`` too (``torchworks.engine.run.train`` does this).

    Args:
        config: the engine settings.
        seed: seeds weights, data order, dropout and every other random draw of the run.
        run_config: the resolved run config as plain data, stored in every checkpoint.

    Raises:
        ConfigError: Fabric cannot provide the requested accelerator/devices/strategy/precision.
    """

    def __init__(self, config: TrainerConfig, *, seed: int = 0, run_config: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.seed = seed
        self.run_config = dict(run_config or {})
        set_threads(config.threads)
        fabric_cls = _fabric_class()
        fabric_cls.seed_everything(seed, workers=True, verbose=False)  # also seeds DataLoader workers
        seed_everything(seed)
        strategy: Any = config.strategy
        if strategy == "fsdp":  # Fabric's FSDPStrategy refuses CPUs; its FSDP2 strategy runs on both
            from torchworks.engine import fsdp

            strategy = fsdp.strategy(config.devices * config.num_nodes)
        try:
            self.fabric = fabric_cls(accelerator=config.accelerator, devices=config.devices,
                                     num_nodes=config.num_nodes, strategy=strategy,
                                     precision=config.precision)
        except Exception as exc:  # Fabric raises several types for an unusable setup; all are config errors
            raise ConfigError(f"trainer: cannot run accelerator={config.accelerator!r} devices={config.devices} "
                              f"strategy={config.strategy!r} precision={config.precision!r}: {exc}") from None
        self.step = self.epoch = self.batch_in_epoch = 0
        self.metrics: dict[str, float] = {}
        self.stopped_early = False
        self._launched = False
        self._spent = (0.0, 0.0)  # (CPU, wall) seconds of fit() in earlier processes of this run
        self._timed_from = 0  # the step the count starts at (> 0: resumed from a checkpoint without timing)
        self._clock0 = (time.process_time(), time.perf_counter())

    def fit(self, task: Any, out_dir: str | Path, resume: str | Path | None = None, *,
            overwrite: bool = False) -> TrainResult:
        """Trains ``task`` until ``max_steps``/``max_epochs`` or early stopping; writes logs, curves, checkpoints.

        Args:
            task: the task (an ``nn.Module`` following :class:`~torchworks.engine.task.Task`).
            out_dir: the run directory.
            resume: a training checkpoint (e.g. ``out_dir/checkpoints/last.ckpt``) to continue from.
            overwrite: for a fresh run, delete checkpoints an earlier run left in ``out_dir``.

        Raises:
            CheckpointError: ``resume`` is corrupt or belongs to another task/config.
            ConfigError: ``out_dir`` holds an earlier run's checkpoints and neither ``resume`` nor ``overwrite``.
        """
        cfg, fabric, out_dir = self.config, self.fabric, Path(out_dir)
        self._clock0, self._spent, self._timed_from = (time.process_time(), time.perf_counter()), (0.0, 0.0), 0
        state = read_training_checkpoint(resume) if resume is not None else None  # fail before any work
        if state is not None and bool(state.get("shards")) != self.sharded:
            raise CheckpointError(
                f"{resume} holds a sharded training state (trainer.strategy fsdp); resume it with strategy fsdp, or "
                "read its exported model with load_model" if state.get("shards") else
                f"{resume} was written without trainer.strategy fsdp; resume it with the strategy it was trained with")
        self._launch()
        rank0 = fabric.is_global_zero
        ckpts = CheckpointManager(out_dir, cfg.keep_checkpoints, enabled=rank0)
        if state is None and ckpts.has_checkpoints():
            if not overwrite:
                raise ConfigError(f"{out_dir} already holds checkpoints of an earlier run; resume with "
                                  f"--resume {ckpts.last_path}, pick another --out, or delete them")
            ckpts.clear()
            if rank0:
                shutil.rmtree(ckpts.directory / "shards", ignore_errors=True)  # an fsdp run's sharded states
        if rank0 and self.run_config:  # the resolved recipe, readable beside the run (also inside each checkpoint)
            out_dir.mkdir(parents=True, exist_ok=True)
            dump_yaml(self.run_config, out_dir / "config.yaml")
        task = fabric.to_device(task)
        if self.sharded:
            from torchworks.engine import fsdp

            fsdp.check_task(task)
        router = ModuleRouter(fabric, task)
        raw_opts = as_list(task.configure_optimizers())
        opts = fabric.setup_optimizers(*raw_opts)
        opts = list(opts) if isinstance(opts, tuple) else [opts]
        schedulers = list(task.configure_schedulers(raw_opts) or [])
        ranks.seed_stream(ranks.training_seed(self.seed, fabric.global_rank))
        patience = cfg.early_stopping_patience
        early = EarlyStopping(task.monitor, task.monitor_mode, patience, cfg.early_stopping_min_delta) \
            if patience else None
        best = BestMetric(task.monitor, task.monitor_mode)
        train = build_loader(fabric, task.train_dataset(), task, batch_size=cfg.batch_size, seed=self.seed,
                             train=True, num_workers=cfg.num_workers, drop_last=cfg.drop_last,
                             what="train_dataset()")
        val = self._val_loader(task)
        if state is not None:
            self._resume(state, task, raw_opts, schedulers, early, best, str(resume))
            if self.batch_in_epoch >= train.sampler.num_batches:  # the data set shrank since the checkpoint
                self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        logger = MetricLogger(out_dir, enabled=rank0, tensorboard=cfg.tensorboard,
                              resume_step=self.step if state is not None else None)
        stepper = FabricStepper(fabric, opts, router.wrapped[0], cfg.grad_clip)
        loop = TrainingLoop(self, task, router, raw_opts, schedulers, stepper, early, best, logger, ckpts, val)
        try:
            loop.run(train)
        finally:
            loop.close()
        curves = None
        if cfg.plots and rank0:
            title = (self.run_config.get("task") or {}).get("name")
            curves = plot_curves(logger.csv_path, out_dir / "curves.png", title=title)
        fabric.barrier()
        spent = self.timing()
        return TrainResult(
            out_dir=out_dir, metrics_csv=logger.csv_path, curves_png=curves, tensorboard_dir=logger.tensorboard_dir,
            last_checkpoint=ckpts.last_path if ckpts.last_path.exists() else None,
            best_checkpoint=ckpts.best_path if ckpts.best_path.exists() else None,
            metrics={**loop.last_train, **self.metrics}, step=self.step, epoch=self.epoch,
            stopped_early=self.stopped_early, cpu_seconds=spent["cpu_seconds"], wall_seconds=spent["wall_seconds"],
            rank=fabric.global_rank, world_size=fabric.world_size, task=task)

    def validate(self, task: Any, split: str = "val") -> dict[str, float]:
        """Evaluates ``task`` on a whole held-out set (all ranks); returns ``{"<split>/<name>": mean}``.

        Args:
            task: the task to evaluate.
            split: ``"val"`` (``task.val_dataset()``) or ``"test"`` (``task.test_dataset()``).

        Raises:
            ValueError: the task has no such set.
        """
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        self._launch()
        task = self.fabric.to_device(task)
        val = self._val_loader(task, split)
        if val is None:
            raise ValueError(f"{type(task).__name__}.{split}_dataset() is None: nothing to evaluate")
        return self._validation_metrics(task, val, prefix=split)

    @property
    def sharded(self) -> bool:
        """Whether the run shards its trainable modules (``strategy: fsdp``)."""
        return self.config.strategy == "fsdp"

    def _validation_metrics(self, task: Any, val: EngineLoader | None, prefix: str = "val",
                            sharded: bool = False) -> dict[str, float]:
        """Batch-size-weighted means of ``validation_step`` scalars over ``val``, reduced over ranks.

        With ``sharded`` modules every forward pass is a collective, so a rank with fewer batches repeats its last
        one (with weight 0) until every rank has run as many.
        """
        if val is None:
            return {}
        extra = max(ranks.gather_objects(self.fabric, len(val.sizes))) - len(val.sizes) if sharded else 0
        flags = {m: m.training for m in task.modules()}
        task.eval()
        sums: dict[str, tuple[float, float]] = {}
        seed = ranks.validation_seed(self.seed, self.fabric.global_rank)
        try:
            with torch.no_grad(), ranks.isolated_rng(seed), self.fabric.autocast():
                batch = None
                for n, batch in zip(val.sizes, val.loader, strict=False):  # sizes first: stops at the limit
                    for key, value in scalars_of(task.validation_step(batch), "validation_step").items():
                        s, w = sums.get(key, (0.0, 0.0))
                        sums[key] = (s + float(value) * n, w + n)
                if extra and batch is None:
                    raise ValueError(f"strategy fsdp: process {self.fabric.global_rank} has no validation batch; "
                                     "the validation set needs at least one sample per process")
                for _ in range(extra):
                    task.validation_step(batch)
        finally:
            for module, flag in flags.items():  # a frozen teacher kept in eval mode stays so
                module.training = flag
        totals = ranks.all_reduce_sums(self.fabric, sums)
        return {f"{prefix}/{k}": s / w for k, (s, w) in totals.items() if w > 0}

    def _val_loader(self, task: Any, split: str = "val") -> EngineLoader | None:
        dataset = getattr(task, "test_dataset", lambda: None)() if split == "test" else task.val_dataset()
        if dataset is None:
            return None
        cfg = self.config
        return build_loader(self.fabric, dataset, task, batch_size=cfg.eval_batch_size, seed=self.seed, train=False,
                            num_workers=cfg.num_workers, limit_batches=cfg.limit_val_batches,
                            what=f"{split}_dataset()")

    def _launch(self) -> None:
        # Under `fabric run` the processes exist already and launch() would raise.
        if not self._launched and not int(os.environ.get("LT_CLI_USED", "0")):
            self.fabric.launch()
        self._launched = True

    def _resume(self, state: Mapping[str, Any], task: Any, optimizers: list[Any], schedulers: list[Any],
                early: EarlyStopping | None, best: BestMetric, source: str) -> None:
        if self.sharded:
            from torchworks.engine import fsdp

            fsdp.restore(state, task, optimizers, schedulers, source)
        else:
            restore(state, task, optimizers, schedulers, source)
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        if early is not None and state.get("early_stopping"):
            early.load_state_dict(state["early_stopping"])
        if state.get("best"):
            best.load_state_dict(state["best"])
        self.metrics = dict(state.get("metrics") or {})
        timing = state.get("timing") or {}
        self._spent = (float(timing.get("cpu_seconds", 0.0)), float(timing.get("wall_seconds", 0.0)))
        self._timed_from = int(timing.get("from_step", 0)) if timing else self.step
        saved = state.get("rng") or []
        if len(saved) == self.fabric.world_size:
            set_rng_state(saved[self.fabric.global_rank])
        else:
            warnings.warn(f"{source} was written by {len(saved)} process(es), resuming on {self.fabric.world_size}:"
                          " random streams restart, so the run continues but not bit-identically", stacklevel=3)

    def _state(self, task: Any, optimizers: list[Any], schedulers: list[Any], early: EarlyStopping | None,
               best: BestMetric, rngs: list[Any], shards: Path | None = None) -> dict[str, Any]:
        """The training state to save; with ``shards`` (``strategy: fsdp``, called on every rank) the sharded
        tensors go to that folder and the state refers to it."""
        if shards is None:
            weights, opt_states, export = task.state_dict(), [o.state_dict() for o in optimizers], exported_model(task)
            where = {}
        else:
            from torchworks.engine import fsdp

            rest = fsdp.save_shards(self.fabric, shards, task, optimizers)
            weights, opt_states = rest["task"], rest["optimizers"]
            export = fsdp.full_tensors(exported_model(task))
            where = {"shards": shards.relative_to(shards.parent.parent).as_posix()}
        return {
            "task": weights,
            "optimizers": opt_states,
            "schedulers": [s.state_dict() for s in schedulers],
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "world_size": self.fabric.world_size, "rng": rngs,
            "early_stopping": early.state_dict() if early is not None else None,
            "best": best.state_dict(), "metrics": dict(self.metrics), "config": self.run_config,
            "timing": self.timing(), **export, **where,
        }

    def timing(self) -> dict[str, float]:
        """``{"cpu_seconds", "wall_seconds", "from_step"}``: time spent in ``fit`` so far, earlier processes of the
        run included, counted from step ``from_step`` (0, unless resumed from a checkpoint without timing)."""
        return {"cpu_seconds": self._spent[0] + time.process_time() - self._clock0[0],
                "wall_seconds": self._spent[1] + time.perf_counter() - self._clock0[1], "from_step": self._timed_from}


def _fabric_class() -> Any:
    try:
        from lightning_fabric import Fabric
    except ImportError:
        try:
            from lightning.fabric import Fabric
        except ImportError:
            raise ImportError("the training engine needs lightning-fabric: pip install 'torchworks[train]'") from None
    return Fabric


__all__ = ["Trainer", "TrainResult"]

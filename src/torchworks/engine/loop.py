"""The step-by-step body of :meth:`Trainer.fit <torchworks.engine.trainer.Trainer.fit>`.

Order within one step, fixed because exact resume depends on it: optimisation step, counters (step, position
in the epoch), training log, evaluation (best metric, early stopping, plateau schedulers), checkpoint. A
checkpoint therefore always holds the state *after* everything that step did, and the run that resumes from it
starts with the next step's batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from torchworks.core.seeding import rng_state
from torchworks.engine import ranks
from torchworks.engine.callbacks import describe
from torchworks.engine.loaders import EngineLoader


class TrainingLoop:
    """One ``fit`` call's moving parts; :meth:`run` trains until the trainer's limits or early stopping.

    Args:
        trainer: the :class:`~torchworks.engine.trainer.Trainer` (holds config, Fabric, step counters, metrics).
        task: the task.
        router: routes ``training_step`` through the Fabric wrappers.
        optimizers: the task's (unwrapped) optimisers.
        schedulers: the task's schedulers.
        stepper: the Fabric-backed optimiser stepper (also used for clipping in automatic optimisation).
        early: early stopping, or None.
        best: tracker of the best monitored value (``best.ckpt``).
        logger: the metric logger.
        ckpts: the checkpoint manager.
        val: the validation loader, or None.
    """

    def __init__(self, trainer: Any, task: Any, router: Any, optimizers: list[Any], schedulers: list[Any],
                 stepper: Any, early: Any, best: Any, logger: Any, ckpts: Any, val: EngineLoader | None) -> None:
        self.trainer, self.task, self.router = trainer, task, router
        self.optimizers, self.schedulers, self.stepper = optimizers, schedulers, stepper
        self.early, self.best, self.logger, self.ckpts, self.val = early, best, logger, ckpts, val
        self.last_train: dict[str, float] = {}
        self.pbar: Any = None
        self._last_eval_step: int | None = None
        self._batch_epoch = trainer.epoch  # epoch of the latest step's batch: the `epoch` column of the logs
        self._warned_monitor = False

    def run(self, train: EngineLoader) -> None:
        """Trains from the trainer's current position to the end of the run."""
        t, cfg = self.trainer, self.trainer.config
        total = cfg.max_steps
        if cfg.max_epochs is not None:
            total = min(total, cfg.max_epochs * train.sampler.num_batches)
        from tqdm import tqdm

        self.pbar = tqdm(total=total, initial=min(t.step, total), desc="train", unit="step", dynamic_ncols=True,
                         disable=not (cfg.progress and t.fabric.is_global_zero))
        done = self._finished()
        while not done:
            train.start_epoch(t.seed, t.epoch, t.batch_in_epoch)
            for batch in train.loader:
                scalars = self._step(batch)
                self._batch_epoch = t.epoch
                t.step += 1
                t.batch_in_epoch += 1
                if t.batch_in_epoch >= train.sampler.num_batches:
                    t.epoch, t.batch_in_epoch = t.epoch + 1, 0
                done = self._finished()
                if self._after_step(scalars, done):
                    done = True
                if done:
                    break
        if self._last_eval_step != t.step:  # resumed at (or past) the end: still report and save the final state
            self._after_step(None, True)

    def close(self) -> None:
        """Closes the progress bar and flushes the logs (also after an error)."""
        if self.pbar is not None:
            self.pbar.close()
        self.logger.close()

    def _finished(self) -> bool:
        t, cfg = self.trainer, self.trainer.config
        return t.step >= cfg.max_steps or (cfg.max_epochs is not None and t.epoch >= cfg.max_epochs)

    def _step(self, batch: Any) -> dict[str, Any]:
        fabric, stepper = self.trainer.fabric, self.stepper
        stepper.grad_norms.clear()
        if self.task.manual_optimization:
            with fabric.autocast():
                out = scalars_of(self.router.training_step(batch, stepper), "training_step")
        else:
            for opt in stepper.optimizers:
                opt.zero_grad(set_to_none=True)
            with fabric.autocast():
                raw = self.router.training_step(batch)
            out = scalars_of(raw, "training_step")
            loss = raw.get("loss")
            if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
                raise ValueError(f"{type(self.task).__name__}.training_step must return {{'loss': tensor with grad,"
                                 f" ...}}; got {loss!r} (set manual_optimization = True to step optimisers yourself)")
            fabric.backward(loss)  # outside autocast, as PyTorch recommends
            for i, opt in enumerate(stepper.optimizers):
                stepper.clip(i)
                opt.step()
        for sched in self.schedulers:
            if not isinstance(sched, ReduceLROnPlateau):  # those step on evaluations, see _evaluate
                sched.step()
        norms = stepper.grad_norms
        if len(norms) == 1:
            out["grad_norm"] = next(iter(norms.values()))
        else:
            out.update({f"grad_norm_{i}": v for i, v in norms.items()})
        return out

    def _after_step(self, scalars: dict[str, Any] | None, done: bool) -> bool:
        """Logs, evaluates and checkpoints as due; returns True if early stopping ends the run."""
        t, cfg = self.trainer, self.trainer.config
        if scalars is not None:
            if t.step % cfg.log_every == 0 or done:
                self._log_train(scalars)
            self.pbar.update(1)
        improved = stop = False
        if (cfg.eval_every and t.step % cfg.eval_every == 0) or done:
            improved, stop = self._evaluate()
        periodic = scalars is not None and bool(cfg.checkpoint_every) and t.step % cfg.checkpoint_every == 0
        if periodic or improved or done or stop:
            self._save(periodic=periodic, best=improved)
        return stop

    def _log_train(self, scalars: Mapping[str, Any]) -> None:
        t = self.trainer
        values = {k: float(v) for k, v in scalars.items()}
        if self.schedulers:
            for i, opt in enumerate(self.optimizers):
                values["lr" if len(self.optimizers) == 1 else f"lr_{i}"] = float(opt.param_groups[0]["lr"])
        named = {f"train/{k}": v for k, v in ranks.reduce_means(t.fabric, values).items()}
        self.last_train = named
        self.logger.log(named, t.step, self._batch_epoch)
        if "train/loss" in named:
            self.pbar.set_postfix(loss=f"{named['train/loss']:.4g}", epoch=self._batch_epoch, refresh=False)

    def _evaluate(self) -> tuple[bool, bool]:
        t, task = self.trainer, self.task
        metrics = t._validation_metrics(task, self.val, sharded=t.sharded)
        self._last_eval_step = t.step
        if metrics:
            t.metrics = metrics
            self.logger.log(metrics, t.step, self._batch_epoch)
        value = {**self.last_train, **metrics}.get(task.monitor)
        if value is None:
            if (metrics or self.early is not None) and not self._warned_monitor and t.fabric.is_global_zero:
                warnings.warn(f"task.monitor {task.monitor!r} is not among the metrics "
                              f"({', '.join(metrics) or 'none'}): no best.ckpt and no early stopping", stacklevel=2)
            self._warned_monitor = True
            return False, False
        improved = self.best.update(value, t.step)
        stop = self.early.update(value, t.step) if self.early is not None else False
        for sched in self.schedulers:
            if isinstance(sched, ReduceLROnPlateau):
                sched.step(value)
        t.stopped_early = t.stopped_early or stop
        if metrics and not self.pbar.disable:
            note = " (best)" if improved else (" (early stop)" if stop else "")
            self.pbar.write(f"step {t.step}: {describe(metrics)}{note}")
        return improved, stop

    def _save(self, *, periodic: bool, best: bool) -> None:
        t = self.trainer
        self.logger.flush()
        rngs = ranks.gather_objects(t.fabric, rng_state())  # collective: every rank takes part
        if t.sharded:  # every rank writes its shards and takes part in gathering the exported model
            from torchworks.engine import fsdp

            shards = self.ckpts.directory / fsdp.SHARDS_DIR / f"step-{t.step:07d}"
            state = t._state(self.task, self.optimizers, self.schedulers, self.early, self.best, rngs, shards)
            self.ckpts.save(state, t.step, periodic=periodic, best=best)
            if t.fabric.is_global_zero:
                fsdp.prune_shards(self.ckpts)
        elif t.fabric.is_global_zero:
            state = t._state(self.task, self.optimizers, self.schedulers, self.early, self.best, rngs)
            self.ckpts.save(state, t.step, periodic=periodic, best=best)
        t.fabric.barrier()


def scalars_of(out: Any, hook: str) -> dict[str, Any]:
    """The loggable scalars of a step's output: numbers and one-element tensors (anything else is ignored)."""
    if not isinstance(out, Mapping):
        raise TypeError(f"{hook} must return a mapping of names to scalars, got {type(out).__name__}")
    found: dict[str, Any] = {}
    for key, value in out.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            found[str(key)] = value.detach()
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found[str(key)] = value
    return found

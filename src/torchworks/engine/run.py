"""Entry points behind ``torchworks train`` and ``torchworks eval``: config in, trained task or metrics out.

Tasks are found in the ``TASKS`` registry, so the module that registers a task must have been imported before
a config naming it is loaded (the CLI imports the domain packages; scripts import the task's module).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from torchworks.core.checkpoint import load_weights
from torchworks.core.config import apply_overrides, load_yaml, to_dict
from torchworks.core.errors import CheckpointError
from torchworks.core.registry import TASKS
from torchworks.engine.checkpointing import read_training_checkpoint
from torchworks.engine.config import RunConfig, load_run_config

ConfigSource = str | os.PathLike[str] | Mapping[str, Any] | RunConfig


def build_task(run_cfg: RunConfig, task_cfg: Any) -> nn.Module:
    """Builds the task a run config names: ``factory(task_cfg, data_dir=run_cfg.data_dir)``.

    Raises:
        TypeError: the registered factory returned something that is not a task module.
    """
    name = run_cfg.task["name"]
    task = TASKS.get(name)(task_cfg, data_dir=run_cfg.data_dir)
    missing = [h for h in ("training_step", "train_dataset", "configure_optimizers") if not hasattr(task, h)]
    if not isinstance(task, nn.Module) or missing:
        raise TypeError(f"task factory {name!r} returned {type(task).__name__}, not a Task module "
                        f"(missing: {', '.join(missing) or 'nn.Module base'})")
    return task


def train(config: ConfigSource, overrides: Iterable[str] = (), resume: str | os.PathLike[str] | None = None,
          out_dir: str | os.PathLike[str] | None = None, data_dir: str | os.PathLike[str] | None = None,
          overwrite: bool = False, **trainer_overrides: Any) -> Any:
    """Trains the task a run config describes.

    Args:
        config: a YAML path, plain data, or a :class:`RunConfig`.
        overrides: ``"a.b=value"`` strings (``--set``), applied before validation.
        resume: a training checkpoint to continue from (``out_dir/checkpoints/last.ckpt``).
        out_dir: replaces the config's ``out_dir`` (``--out``).
        data_dir: replaces the config's ``data_dir``.
        overwrite: start afresh even if ``out_dir`` holds an earlier run's checkpoints (they are deleted).
        **trainer_overrides: trainer fields such as ``threads=4``, ``devices=2``, ``strategy="ddp"``
            (``None`` values are ignored, so CLI flags that were not given can be passed through as is).

    Returns:
        A :class:`~torchworks.engine.trainer.TrainResult`: ``out_dir``, ``last_checkpoint``,
        ``best_checkpoint``, ``metrics_csv``, ``curves_png``, ``tensorboard_dir``, final ``metrics``, ``step``,
        ``epoch``, ``stopped_early``, ``rank``, ``world_size`` and the trained ``task``.

    Raises:
        ConfigError: the config or an override does not fit the schema, or ``out_dir`` holds another run.
        CheckpointError: ``resume`` is corrupt or does not fit the task.
    """
    from torchworks.engine.trainer import Trainer  # Fabric is heavy: import it only when training

    run_cfg, task_cfg = _load(config, overrides, out_dir, data_dir, trainer_overrides)
    trainer = Trainer(run_cfg.trainer, seed=run_cfg.seed, run_config=to_dict(run_cfg))  # seeds before build
    if resume is not None and hasattr(task_cfg, "for_checkpoint"):  # e.g. a vocabulary learned at start-up
        task_cfg = task_cfg.for_checkpoint(resume)
    task = build_task(run_cfg, task_cfg)
    return trainer.fit(task, run_cfg.out_dir, resume=resume, overwrite=overwrite)


def evaluate(config: ConfigSource | None, ckpt: str | os.PathLike[str], overrides: Iterable[str] = (),
             data_dir: str | os.PathLike[str] | None = None, split: str | None = None,
             **trainer_overrides: Any) -> dict[str, float]:
    """Evaluates a checkpoint on the test set (or validation set) of the task a config describes.

    Args:
        config: the run config; None uses the config stored inside the checkpoint.
        ckpt: a training checkpoint (``last.ckpt``, ``best.ckpt`` or a step checkpoint).
        overrides: ``"a.b=value"`` strings applied to the config.
        data_dir: replaces the config's ``data_dir``.
        split: ``"test"`` or ``"val"``; None picks the test set when the task has one, else the validation set.
        **trainer_overrides: trainer fields, e.g. ``val_batch_size=256`` or ``limit_val_batches=10``.

    Returns:
        ``{"<split>/<name>": value}``: batch-size-weighted means of the task's ``validation_step`` scalars.

    Raises:
        CheckpointError: the checkpoint is corrupt, has no embedded config (when ``config`` is None), or its
            weights do not fit the task.
    """
    from torchworks.engine.trainer import Trainer

    state = read_training_checkpoint(ckpt)
    if config is None:
        config = state.get("config")
        if not isinstance(config, Mapping) or "task" not in config:
            raise CheckpointError(f"{ckpt} holds no run config; pass the config file it was trained with")
    run_cfg, task_cfg = _load(config, overrides, None, data_dir, trainer_overrides)
    trainer = Trainer(run_cfg.trainer, seed=run_cfg.seed, run_config=to_dict(run_cfg))
    if hasattr(task_cfg, "for_checkpoint"):
        task_cfg = task_cfg.for_checkpoint(ckpt)
    task = build_task(run_cfg, task_cfg)
    load_weights(task, state["task"], source=str(ckpt))
    if split is None:
        split = "test" if getattr(task, "test_dataset", lambda: None)() is not None else "val"
    return trainer.validate(task, split=split)


def _load(config: ConfigSource, overrides: Iterable[str], out_dir: Any, data_dir: Any,
          trainer_overrides: Mapping[str, Any]) -> tuple[RunConfig, Any]:
    """Loads the config with overrides and explicit arguments merged in as plain data, validated like YAML."""
    if isinstance(config, str | os.PathLike):
        data = load_yaml(Path(config))
    elif isinstance(config, RunConfig):
        data = to_dict(config)
    else:
        data = copy.deepcopy(dict(config))
    data = apply_overrides(data, overrides)
    # Explicit arguments (CLI flags such as --out or --threads) win over --set, being the more specific.
    if out_dir is not None:
        data["out_dir"] = str(out_dir)
    if data_dir is not None:
        data["data_dir"] = str(data_dir)
    extra = {k: v for k, v in trainer_overrides.items() if v is not None}
    section = data.get("trainer")
    if extra and (section is None or isinstance(section, Mapping)):  # anything else: from_dict reports it
        data["trainer"] = {**(section or {}), **extra}
    return load_run_config(data)

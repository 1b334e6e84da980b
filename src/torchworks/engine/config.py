"""Run and trainer configs: what one ``torchworks train`` needs, read strictly from plain YAML.

A run config has four parts::

    task:             # ``name`` picks a registered task; the other keys are that task's own config
      name: gpt_char
      n_layer: 2
    trainer: {max_steps: 2000, batch_size: 64, eval_every: 200}
    seed: 0
    out_dir: runs/gpt_char
    data_dir: null    # where the task looks for its data (null: its own default)

``--set a.b=value`` overrides apply to the plain data *before* validation, so a bad override is reported exactly
like a bad YAML value: the dotted path, the value, and what would be accepted.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from torchworks.core.config import apply_overrides, from_dict, load_yaml, to_dict
from torchworks.core.errors import ConfigError
from torchworks.core.registry import TASKS

MAX_SEED = 2**32 - 1  # the largest seed NumPy (and so Lightning's seed_everything) accepts


@dataclass
class TrainerConfig:
    """How the engine trains; every field has a default so a recipe states only what it changes.

    Attributes:
        max_steps: optimisation steps to run (the run ends at whichever of ``max_steps``/``max_epochs`` comes first).
        max_epochs: passes over the training set, or None for no epoch limit.
        batch_size: training batch size per process (the global batch is ``batch_size * devices``).
        val_batch_size: validation batch size per process; None uses ``batch_size``.
        eval_every: evaluate every this many steps (0: only at the end); the run always ends with an evaluation.
        log_every: log training scalars every this many steps.
        checkpoint_every: write ``checkpoints/step-XXXXXXX.ckpt`` every this many steps (0: only at the end).
        keep_checkpoints: how many step checkpoints to keep (older ones are deleted; ``last``/``best`` stay).
        early_stopping_patience: stop after this many evaluations without improvement of ``task.monitor``
            (None: never stop early).
        early_stopping_min_delta: the smallest change of the monitored metric that counts as an improvement.
        grad_clip: clip the total gradient 2-norm (per optimiser) to this value; None: no clipping.
        precision: "32-true", or "bf16-mixed" for bfloat16 autocast with float32 weights.
        threads: torch intra-op threads per process; None keeps torch's default.
        devices: processes/devices to train on (per node).
        num_nodes: machines taking part; each runs ``devices`` processes, started by ``torchrun`` or SLURM (the
            global batch is then ``batch_size * devices * num_nodes``).
        strategy: "auto", "ddp" for data-parallel training across ``devices * num_nodes`` processes, or "fsdp"
            to shard weights, gradients and optimiser states across them (torch FSDP2 through Fabric, CPU or GPU;
            checkpoints are sharded too, see :mod:`~torchworks.engine.fsdp`).
        accelerator: "cpu" (default, reproducible anywhere), "gpu", or "auto".
        num_workers: data-loading worker processes per training process.
        drop_last: drop each epoch's last incomplete training batch (for layers such as BatchNorm).
        progress: show a progress bar (rank 0 only).
        tensorboard: also write TensorBoard events to ``out_dir/tb`` when tensorboard is installed.
        plots: draw ``out_dir/curves.png`` at the end of training.
        limit_val_batches: evaluate on at most this many batches per process; None: the whole validation set.
    """

    max_steps: int = 1000
    max_epochs: int | None = None
    batch_size: int = 32
    val_batch_size: int | None = None
    eval_every: int = 200
    log_every: int = 10
    checkpoint_every: int = 0
    keep_checkpoints: int = 3
    early_stopping_patience: int | None = None
    early_stopping_min_delta: float = 0.0
    grad_clip: float | None = None
    precision: Literal["32-true", "bf16-mixed"] = "32-true"
    threads: int | None = None
    devices: int = 1
    num_nodes: int = 1
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    accelerator: Literal["cpu", "auto", "gpu"] = "cpu"
    num_workers: int = 0
    drop_last: bool = False
    progress: bool = True
    tensorboard: bool = True
    plots: bool = True
    limit_val_batches: int | None = None

    def __post_init__(self) -> None:
        at_least = {
            "max_steps": 1, "max_epochs": 1, "batch_size": 1, "val_batch_size": 1, "eval_every": 0,
            "log_every": 1, "checkpoint_every": 0, "keep_checkpoints": 0, "early_stopping_patience": 1,
            "threads": 1, "devices": 1, "num_nodes": 1, "num_workers": 0, "limit_val_batches": 1,
        }
        for name, low in at_least.items():
            value = getattr(self, name)
            if value is not None and value < low:
                raise ValueError(f"{name} must be >= {low}, got {value!r}")
        if self.early_stopping_min_delta < 0:
            raise ValueError(f"early_stopping_min_delta must be >= 0, got {self.early_stopping_min_delta!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be a positive number or null, got {self.grad_clip!r}")
        if self.strategy == "fsdp" and self.devices * self.num_nodes < 2:
            raise ValueError("strategy 'fsdp' shards the model across processes and needs devices * num_nodes >= 2, "
                             f"got {self.devices * self.num_nodes}; use strategy 'auto' for one process")

    @property
    def eval_batch_size(self) -> int:
        """The validation batch size actually used."""
        return self.val_batch_size or self.batch_size


@dataclass(kw_only=True)
class RunConfig:
    """One training run: which task with which settings, how to train it, and where to write.

    Attributes:
        task: ``{"name": <registered task>, **task settings}``; after :func:`load_run_config` it holds the
            resolved settings (defaults filled in).
        out_dir: where logs, curves and checkpoints go.
        trainer: the engine settings.
        seed: seeds weight initialisation, data order and every random number the run draws; an integer in
            ``0..MAX_SEED`` (what NumPy and Lightning accept). A seed repeat of a recipe is this one value
            changed (``torchworks train CONFIG --seed 3``), not another file.
        data_dir: root the task reads its data from; None lets the task use its default.
    """

    task: dict[str, Any]
    out_dir: str
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 0
    data_dir: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be in 0..{MAX_SEED}, got {self.seed!r}")


def load_run_config(source: str | os.PathLike[str] | Mapping[str, Any] | RunConfig,
                    overrides: Iterable[str] = ()) -> tuple[RunConfig, Any]:
    """Reads, overrides and validates a run config.

    Args:
        source: a YAML file, plain data, or a :class:`RunConfig`.
        overrides: ``"a.b=value"`` strings applied before validation.

    Returns:
        The run config (``task`` resolved to plain data with defaults) and the task's config instance (the
        dataclass registered with the task, or the plain settings when the task registered none).

    Raises:
        FileNotFoundError: ``source`` names a missing file.
        ConfigError: malformed YAML, unknown keys (with close matches), wrong types, or a missing/unknown task.
    """
    if isinstance(source, str | os.PathLike):
        data = load_yaml(Path(source))
    elif isinstance(source, RunConfig):
        data = to_dict(source)
    elif isinstance(source, Mapping):
        data = copy.deepcopy(dict(source))
    else:
        raise TypeError(f"config must be a path, a mapping or a RunConfig, got {type(source).__name__}")
    data = apply_overrides(data, overrides)
    if not isinstance(data.get("task"), Mapping):
        raise ConfigError(f"the config needs a 'task' section with at least task.name; {_known_tasks()}")
    run = from_dict(RunConfig, data)
    task_cfg, resolved = _task_config(run.task)
    run.task = resolved
    return run, task_cfg


def _task_config(section: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Validates the ``task`` section against the config dataclass registered with the task."""
    name = section.get("name")
    if name is None or name == "":
        raise ConfigError(f"task.name is missing; {_known_tasks()}")
    if not isinstance(name, str):
        raise ConfigError(f"task.name must be a string, got {name!r}")
    if name not in TASKS:
        close = TASKS.close_matches(name)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else _known_tasks()
        raise ConfigError(f"task.name: unknown task {name!r}; {hint}")
    settings = {k: v for k, v in section.items() if k != "name"}
    cls = TASKS.meta(name).get("config")
    if cls is None:
        return settings, {"name": name, **settings}
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"task {name!r} registered config={cls!r}, which is not a dataclass")
    task_cfg = from_dict(cls, settings, path="task")
    return task_cfg, {"name": name, **to_dict(task_cfg)}


def _known_tasks() -> str:
    names = TASKS.names()
    if not names:
        return "no tasks are registered (import the package that defines them)"
    more = f" and {len(names) - 20} more" if len(names) > 20 else ""
    return f"known tasks: {', '.join(names[:20])}{more}"

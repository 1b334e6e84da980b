"""Entry points behind ``torchworks train`` and ``torchworks eval``: config in, trained task or metrics out.

Tasks are found in the ``TASKS`` registry, so the module that registers a task must have been imported before
a config naming it is loaded (the CLI imports the domain packages; scripts import the task's module).

Seeds are overrides, not files: ``train(config, seed=3)`` (``torchworks train CONFIG --seed 3``) runs the recipe
with seed 3 in ``<out_dir>/seed3``, and :func:`train_seeds` runs a list of seeds, one folder each, resuming
whatever an earlier call left unfinished. A run is thus named by (config, seed), and :func:`seed_dir` says where
it lives.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from torchworks.core.checkpoint import load_weights
from torchworks.core.config import apply_overrides, load_yaml, to_dict
from torchworks.core.errors import CheckpointError, ConfigError
from torchworks.core.registry import TASKS
from torchworks.engine.checkpointing import CheckpointManager, read_training_checkpoint
from torchworks.engine.config import MAX_SEED, RunConfig, load_run_config

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
          overwrite: bool = False, seed: int | None = None, **trainer_overrides: Any) -> Any:
    """Trains the task a run config describes.

    Args:
        config: a YAML path, plain data, or a :class:`RunConfig`.
        overrides: ``"a.b=value"`` strings (``--set``), applied before validation.
        resume: a training checkpoint to continue from (``out_dir/checkpoints/last.ckpt``).
        out_dir: replaces the config's ``out_dir`` (``--out``).
        data_dir: replaces the config's ``data_dir``.
        overwrite: start afresh even if ``out_dir`` holds an earlier run's checkpoints (they are deleted).
        seed: replaces the config's ``seed`` (``--seed``; wins over ``--set seed=``); unless ``out_dir`` is
            given, the run then goes to :func:`seed_dir` of the config's ``out_dir`` (``<out_dir>/seed<seed>``).
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

    run_cfg, task_cfg = _load(config, overrides, out_dir, data_dir, trainer_overrides, seed=seed)
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
    weights = state["task"]
    if state.get("shards"):  # written with strategy fsdp: assemble the shards in this process
        from torchworks.engine.fsdp import read_full

        weights = read_full(state, str(ckpt))
    load_weights(task, weights, source=str(ckpt))
    if split is None:
        split = "test" if getattr(task, "test_dataset", lambda: None)() is not None else "val"
    return trainer.validate(task, split=split)


def resolve(config: ConfigSource, overrides: Iterable[str] = (), *, seed: int | None = None,
            out_dir: str | os.PathLike[str] | None = None, data_dir: str | os.PathLike[str] | None = None,
            **trainer_overrides: Any) -> RunConfig:
    """The run config :func:`train` would run with these arguments (validated, task defaults filled in).

    Raises:
        ConfigError: as :func:`train`.
    """
    return _load(config, overrides, out_dir, data_dir, trainer_overrides, seed=seed)[0]


def seed_dir(out_dir: str | os.PathLike[str], seed: int) -> Path:
    """The folder of a run whose seed was chosen on the command line: ``<out_dir>/seed<seed>``."""
    return Path(out_dir) / f"seed{seed}"


@dataclass
class SeedRun:
    """What :func:`train_seeds` did for one seed.

    Attributes:
        seed: the seed.
        out_dir: its run folder.
        status: ``"trained"`` (from scratch), ``"resumed"`` (from the folder's ``last.ckpt``) or ``"finished"``
            (an earlier call completed it; nothing was run).
        step: the step the run ended at.
        metrics: its final metrics (those stored in ``last.ckpt`` for a finished run).
        result: the :class:`~torchworks.engine.trainer.TrainResult` (None for a finished run).
    """

    seed: int
    out_dir: Path
    status: str
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    result: Any = None


def train_seeds(config: ConfigSource, seeds: Sequence[int], overrides: Iterable[str] = (),
                out_dir: str | os.PathLike[str] | None = None, data_dir: str | os.PathLike[str] | None = None,
                overwrite: bool = False, report: Callable[[SeedRun], None] | None = None,
                **trainer_overrides: Any) -> list[SeedRun]:
    """Trains one run per seed, one after another, each in ``<out_dir>/seed<k>`` (:func:`seed_dir`).

    Calling it again with the same arguments continues where it stopped: a seed whose folder holds a finished
    run is left alone, one that was interrupted resumes from its ``checkpoints/last.ckpt`` (exactly, as
    ``--resume`` does), and one without checkpoints starts. Every seed's config and existing checkpoint is
    checked before the first run starts, so a mistake stops the call before anything is written.

    Args:
        config, overrides, data_dir, trainer_overrides: as :func:`train`.
        seeds: distinct seeds in ``0..MAX_SEED``.
        out_dir: the parent of the seed folders; None: the config's ``out_dir``.
        overwrite: start every seed afresh, deleting its earlier checkpoints.
        report: called with each seed's :class:`SeedRun` as soon as it is done (e.g. to print it).

    Returns:
        One :class:`SeedRun` per seed, in the order given.

    Raises:
        ConfigError: no seeds, a repeated or out-of-range seed, several seeds with ``devices > 1`` (one process
            group per command: run one ``--seed`` per command instead), a config error, a seed folder holding
            another seed's run or step checkpoints without ``last.ckpt``.
        CheckpointError: a seed folder's ``last.ckpt`` is corrupt.
    """
    seeds = list(seeds)
    if not seeds:
        raise ConfigError("--seeds names no seed")
    for i, k in enumerate(seeds):
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_SEED:
            raise ConfigError(f"--seeds: seed must be an integer in 0..{MAX_SEED}, got {k!r}")
        if k in seeds[:i]:
            raise ConfigError(f"--seeds gives seed {k} twice")
    overrides = list(overrides)
    if out_dir is None:
        out_dir = resolve(config, overrides, data_dir=data_dir, **trainer_overrides).out_dir
    plan = []
    for k in seeds:
        folder = seed_dir(out_dir, k)
        run_cfg = resolve(config, overrides, seed=k, out_dir=folder, data_dir=data_dir, **trainer_overrides)
        if len(seeds) > 1 and run_cfg.trainer.devices > 1:
            raise ConfigError(f"--seeds with {len(seeds)} seeds runs them in one process, which cannot start "
                              f"{run_cfg.trainer.devices} devices more than once; give one --seed per command")
        plan.append((k, folder, None if overwrite else _earlier_run(folder, k, run_cfg)))
    done = []
    for k, folder, earlier in plan:
        if earlier is not None and earlier[1]:
            state = earlier[0]
            run = SeedRun(k, folder, "finished", int(state["step"]), dict(state.get("metrics") or {}))
        else:
            resume = folder / "checkpoints" / "last.ckpt" if earlier is not None else None
            result = train(config, overrides, resume=resume, out_dir=folder, data_dir=data_dir,
                           overwrite=overwrite, seed=k, **trainer_overrides)
            run = SeedRun(k, folder, "resumed" if resume else "trained", result.step, dict(result.metrics or {}),
                          result)
        done.append(run)
        if report is not None:
            report(run)
    return done


def _earlier_run(folder: Path, seed: int, run_cfg: RunConfig) -> tuple[dict[str, Any], bool] | None:
    """``(last.ckpt state, finished?)`` of the run an earlier call left in ``folder``, or None when there is none."""
    ckpts = CheckpointManager(folder)
    if not ckpts.last_path.exists():
        if ckpts.has_checkpoints():
            raise ConfigError(f"{folder} holds step checkpoints but no last.ckpt; resume one with "
                              f"torchworks train CONFIG --seed {seed} --out {folder} --resume FILE, or delete them")
        return None
    state = read_training_checkpoint(ckpts.last_path)
    held = (state.get("config") or {}).get("seed")
    if held is not None and held != seed:
        raise ConfigError(f"{folder} holds a run of seed {held}, not {seed}; move it or pass --overwrite")
    t = run_cfg.trainer
    stopped = (state.get("early_stopping") or {}).get("stopped_step") is not None
    finished = (int(state["step"]) >= t.max_steps or stopped
                or (t.max_epochs is not None and int(state["epoch"]) >= t.max_epochs))
    return state, finished


def _load(config: ConfigSource, overrides: Iterable[str], out_dir: Any, data_dir: Any,
          trainer_overrides: Mapping[str, Any], seed: int | None = None) -> tuple[RunConfig, Any]:
    """Loads the config with overrides and explicit arguments merged in as plain data, validated like YAML."""
    if isinstance(config, str | os.PathLike):
        data = load_yaml(Path(config))
    elif isinstance(config, RunConfig):
        data = to_dict(config)
    else:
        data = copy.deepcopy(dict(config))
    data = apply_overrides(data, overrides)
    # Explicit arguments (CLI flags such as --out, --seed or --threads) win over --set, being the more specific.
    if seed is not None:
        data["seed"] = seed
        if out_dir is None and isinstance(data.get("out_dir"), str):  # anything else: from_dict reports it
            data["out_dir"] = str(seed_dir(data["out_dir"], seed))
    if out_dir is not None:
        data["out_dir"] = str(out_dir)
    if data_dir is not None:
        data["data_dir"] = str(data_dir)
    extra = {k: v for k, v in trainer_overrides.items() if v is not None}
    section = data.get("trainer")
    if extra and (section is None or isinstance(section, Mapping)):  # anything else: from_dict reports it
        data["trainer"] = {**(section or {}), **extra}
    return load_run_config(data)

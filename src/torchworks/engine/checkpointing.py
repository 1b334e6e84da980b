"""Where training checkpoints go, which ones are kept, and how one is read back for a resume.

Layout under ``out_dir/checkpoints/``:

* ``step-0001000.ckpt``: written every ``checkpoint_every`` steps; only the newest ``keep_checkpoints`` stay.
* ``last.ckpt``: the most recent state, updated at every save (resume from this one).
* ``best.ckpt``: the state at the best evaluation of ``task.monitor`` so far.

A state is written once and the other names are hard links to the same file (a copy where the file system has
no hard links), so a save costs one write however many names it gets. Every write is atomic
(:func:`~torchworks.core.checkpoint.save_checkpoint`), and a link replaces its name atomically too.

Keys of a training checkpoint: ``task`` (state_dict), ``optimizers``, ``schedulers`` (lists of state_dicts),
``step``, ``epoch``, ``batch_in_epoch``, ``world_size``, ``rng`` (one :func:`~torchworks.core.seeding.rng_state`
per rank), ``early_stopping``, ``best``, ``metrics``, ``config`` (the resolved run config) and, when the task
exports a deployable model, ``model_spec`` + ``model`` so :func:`~torchworks.core.checkpoint.load_model` works
on the file alone.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from torchworks.core.atomic import atomic_path
from torchworks.core.checkpoint import load_checkpoint, load_weights, save_checkpoint
from torchworks.core.errors import CheckpointError

CKPT_DIR = "checkpoints"
LAST = "last.ckpt"
BEST = "best.ckpt"
_STEP_RE = re.compile(r"^step-(\d+)\.ckpt$")
REQUIRED_KEYS = ("task", "optimizers", "schedulers", "step", "epoch", "batch_in_epoch")


class CheckpointManager:
    """Writes, links and prunes the checkpoints of one run (rank 0 only: a disabled manager does nothing).

    Args:
        out_dir: the run directory; checkpoints go to ``out_dir/checkpoints``.
        keep: how many ``step-*.ckpt`` files to keep (0: none, only ``last``/``best``).
        enabled: False on every rank but 0.
    """

    def __init__(self, out_dir: str | Path, keep: int = 3, enabled: bool = True) -> None:
        self.directory = Path(out_dir) / CKPT_DIR
        self.keep = keep
        self.enabled = enabled

    @property
    def last_path(self) -> Path:
        return self.directory / LAST

    @property
    def best_path(self) -> Path:
        return self.directory / BEST

    def step_path(self, step: int) -> Path:
        return self.directory / f"step-{step:07d}.ckpt"

    def step_checkpoints(self) -> list[Path]:
        """Existing ``step-*.ckpt`` files, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := _STEP_RE.match(p.name))]
        return [p for _, p in sorted(found)]

    def has_checkpoints(self) -> bool:
        """Whether an earlier run already left checkpoints here."""
        return self.last_path.exists() or bool(self.step_checkpoints())

    def clear(self) -> None:
        """Deletes the checkpoints an earlier run left (``last``, ``best`` and step files)."""
        if not self.enabled:
            return
        for path in [*self.step_checkpoints(), self.last_path, self.best_path]:
            path.unlink(missing_ok=True)

    def save(self, state: Mapping[str, Any], step: int, *, periodic: bool, best: bool) -> None:
        """Saves ``state`` as ``last.ckpt``, plus ``step-XXXXXXX.ckpt`` if ``periodic`` and ``best.ckpt`` if
        ``best``."""
        if not self.enabled:
            return
        names = ([self.step_path(step)] if periodic else []) + [self.last_path] + ([self.best_path] if best else [])
        primary = save_checkpoint(names[0], state)
        for name in names[1:]:
            _link_or_copy(primary, name)
        if periodic:
            existing = self.step_checkpoints()
            for old in existing[: max(0, len(existing) - self.keep)]:
                old.unlink(missing_ok=True)


def read_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Loads a checkpoint and checks it is a training checkpoint (not e.g. a bare ``save_model`` file).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: corrupt, truncated, or missing the training state.
    """
    state = load_checkpoint(path)
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} is not a training checkpoint (no {', '.join(missing)}); "
                              "resume needs a file written by the trainer, e.g. checkpoints/last.ckpt")
    return state


def restore(state: Mapping[str, Any], task: nn.Module, optimizers: Sequence[Any], schedulers: Sequence[Any],
            source: str) -> None:
    """Loads the task weights, optimiser and scheduler states of a training checkpoint.

    Raises:
        CheckpointError: the checkpoint was written for another task, model size or optimiser setup.
    """
    upgrade = getattr(task, "upgrade_state_dict", None)
    load_weights(task, upgrade(state["task"]) if upgrade else state["task"], source=source)
    for kind, objs, saved in (("optimizer", optimizers, state["optimizers"]),
                              ("scheduler", schedulers, state["schedulers"])):
        if len(saved) != len(objs):
            raise CheckpointError(f"{source} holds {len(saved)} {kind} state(s) but the task configures "
                                  f"{len(objs)}; was it written with another task config?")
        for i, (obj, sd) in enumerate(zip(objs, saved, strict=True)):
            try:
                obj.load_state_dict(sd)
            except (KeyError, ValueError, TypeError, RuntimeError) as exc:
                raise CheckpointError(f"{source}: {kind} {i} state does not fit ({exc})") from None


def exported_model(task: Any) -> dict[str, Any]:
    """``{"model_spec", "model"}`` from ``task.export_model()``, or ``{}`` when the task exports nothing."""
    exported = task.export_model()
    if exported is None:
        return {}
    model, spec = exported
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise ValueError(f"{type(task).__name__}.export_model() must return (model, {{'name': ..., 'kwargs': ...}}),"
                         f" got spec {spec!r}")
    return {"model_spec": {"name": spec["name"], "kwargs": dict(spec.get("kwargs") or {})},
            "model": model.state_dict()}


def _link_or_copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        tmp.unlink()  # os.link makes the name itself
        try:
            os.link(src, tmp)
        except OSError:  # no hard links on this file system
            shutil.copyfile(src, tmp)

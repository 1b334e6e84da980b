"""The ``Task`` protocol: what a domain gives the shared training engine.

A task is an ``nn.Module`` that owns its models, losses and data sets; the engine owns the loop (devices,
distribution, progress, logging, evaluation cadence, checkpoints, resume, early stopping, clipping, precision).

Automatic optimisation (the default): ``training_step`` returns ``{"loss": tensor, **scalars}``; the engine
calls backward, clips and steps every optimiser from ``configure_optimizers``.

Manual optimisation (``manual_optimization = True``, e.g. GANs with a generator and a discriminator): the engine
passes an :class:`OptimizerStepper` as ``training_step(batch, opt)``; the task calls ``opt.step(i, loss)`` for
each optimiser it wants to update (zero-grad, backward through Fabric, clipping and the step happen there) and
returns the scalars to log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import torch
from torch import nn


class OptimizerStepper(Protocol):
    """Handle given to manual-optimisation tasks."""

    optimizers: list[torch.optim.Optimizer]

    def step(self, index: int, loss: torch.Tensor) -> None:
        """Zero-grads optimiser ``index``, back-propagates ``loss``, clips and steps it."""


class Task(nn.Module):
    """Base class for trainable tasks; subclasses override the hooks below.

    Attributes:
        manual_optimization: if True, ``training_step`` receives an :class:`OptimizerStepper`.
        monitor: the validation metric used for early stopping and "best" checkpoints, and ``monitor_mode``
            ("min" or "max") says which direction is better.
    """

    manual_optimization: bool = False
    monitor: str = "val/loss"
    monitor_mode: str = "min"

    def train_dataset(self) -> torch.utils.data.Dataset:
        """The training set (map-style: the engine shards, shuffles and resumes it)."""
        raise NotImplementedError

    def val_dataset(self) -> torch.utils.data.Dataset | None:
        """The validation set, or None for none."""
        return None

    def test_dataset(self) -> torch.utils.data.Dataset | None:
        """The held-out test set used by ``torchworks eval``, or None to evaluate on the validation set."""
        return None

    def collate_fn(self) -> Callable[[list[Any]], Any] | None:
        """Optional collate function for both loaders."""
        return None

    def training_step(self, batch: Any, opt: OptimizerStepper | None = None) -> Mapping[str, Any]:
        """One step on ``batch``; returns ``{"loss": ..., other scalars}``."""
        raise NotImplementedError

    def validation_step(self, batch: Any) -> Mapping[str, Any]:
        """Scalars for one validation batch; the engine averages them weighted by batch size."""
        raise NotImplementedError

    def configure_optimizers(self) -> torch.optim.Optimizer | list[torch.optim.Optimizer]:
        """Optimiser(s) over :meth:`trainable_modules`' parameters."""
        params = [p for m in self.trainable_modules() for p in m.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=1e-3)

    def configure_schedulers(self, optimizers: list[torch.optim.Optimizer]) -> list[Any]:
        """Optional LR schedulers, stepped once per optimisation step."""
        return []

    def trainable_modules(self) -> Iterable[nn.Module]:
        """Modules whose parameters train (a frozen teacher is left out). Default: the whole task."""
        return [self]

    def export_model(self) -> tuple[nn.Module, dict[str, Any]] | None:
        """The deployable model and its ``{"name", "kwargs"}`` registry spec, saved with every checkpoint."""
        return None

    def upgrade_state_dict(self, state: Mapping[str, Any]) -> Mapping[str, Any]:
        """A checkpoint's task weights as this task expects them, before they are loaded on resume: a task whose
        config adds state that an older checkpoint lacks (e.g. a weight average turned on mid-run) fills it in
        here. Default: unchanged."""
        return state

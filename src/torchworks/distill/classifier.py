"""``cifar_classifier``: supervised training of a zoo model on CIFAR (the teachers and the no-KD baselines).

Also holds the optimiser/schedule pieces shared with :mod:`torchworks.distill.task`: SGD with momentum and a
per-step LR schedule (linear warm-up, then cosine to zero or RepDistiller's x0.1 steps at fractions of training).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from torchworks.core.checkpoint import build_model, load_checkpoint, load_weights
from torchworks.core.errors import CheckpointError
from torchworks.core.registry import TASKS
from torchworks.distill.cifar_data import CifarData, CifarSplits
from torchworks.engine.task import Task


@dataclass
class OptimConfig:
    """SGD and its per-step LR schedule.

    Attributes:
        lr: peak learning rate (RepDistiller: 0.05 at batch 64; 0.1 at batch 128 is the classic ResNet recipe).
        momentum, nesterov, weight_decay: SGD settings (weight decay on every parameter, as in RepDistiller).
        schedule: ``cosine`` (to 0 at ``total_steps``), ``step`` (x``gamma`` at each fraction in ``milestones``
            of ``total_steps``; 150/180/210 of 240 epochs is ``[0.625, 0.75, 0.875]``) or ``constant``.
        total_steps: length of the schedule; 0 means the trainer's ``max_steps`` is not known here, so the
            schedule stays constant after warm-up.
        warmup_steps: linear warm-up from ``lr/10`` (0: none).
    """

    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    total_steps: int = 0
    warmup_steps: int = 0
    milestones: list[float] = field(default_factory=lambda: [0.625, 0.75, 0.875])
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"optim.lr must be positive, got {self.lr}")
        if self.total_steps < 0 or self.warmup_steps < 0:
            raise ValueError(f"optim.total_steps/warmup_steps must be >= 0, got {self.total_steps}/{self.warmup_steps}")
        if any(not 0 < m < 1 for m in self.milestones):
            raise ValueError(f"optim.milestones are fractions of total_steps in (0, 1), got {self.milestones}")

    def factor(self, step: int) -> float:
        """LR multiplier at optimisation step ``step`` (0-based)."""
        if self.warmup_steps and step < self.warmup_steps:
            return 0.1 + 0.9 * step / self.warmup_steps
        if self.total_steps <= 0 or self.schedule == "constant":
            return 1.0
        if self.schedule == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            t = min(1.0, (step - self.warmup_steps) / span)
            return 0.5 * (1.0 + math.cos(math.pi * t))
        return self.gamma ** sum(step >= m * self.total_steps for m in self.milestones)

    def build(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        """SGD over ``params``."""
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, nesterov=self.nesterov,
                               weight_decay=self.weight_decay)

    def scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """A per-step ``LambdaLR`` following :meth:`factor`."""
        return torch.optim.lr_scheduler.LambdaLR(optimizer, self.factor)


def to_memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Images in channels-last layout when asked (16-20% faster convolutions on CPU, same values)."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Top-1 accuracy of (B, K) logits against (B,) labels, as a float scalar in [0, 1]."""
    return (logits.argmax(1) == y).float().mean()


@dataclass
class CifarClassifierConfig:
    """Settings of the ``cifar_classifier`` task.

    Attributes:
        model: registered zoo model (``resnet56``, ``resnet20``, ``wrn_40_2``, ...).
        model_args: keyword overrides for it (``num_classes`` is set from the data).
        data: which data and split (see :class:`~torchworks.distill.cifar_data.CifarData`).
        optim: SGD and LR schedule.
        channels_last: run convolutions in channels-last layout.
        label_smoothing: cross-entropy label smoothing.
        init_ckpt: start from the weights of this ``save_model`` file or training checkpoint (same model), e.g.
            a second schedule after a first one (optimiser and LR schedule start afresh).
    """

    model: str = "resnet20"
    model_args: dict[str, Any] = field(default_factory=dict)
    data: CifarData = field(default_factory=CifarData)
    optim: OptimConfig = field(default_factory=OptimConfig)
    channels_last: bool = True
    label_smoothing: float = 0.0
    init_ckpt: str | None = None


class CifarClassifier(Task):
    """Cross-entropy training of a zoo model; validation reports loss and top-1 accuracy."""

    monitor = "val/acc"
    monitor_mode = "max"

    def __init__(self, cfg: CifarClassifierConfig, data_dir: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.model_kwargs = {"num_classes": cfg.data.num_classes, **cfg.model_args}
        self.model = build_model(cfg.model, **self.model_kwargs)
        if cfg.init_ckpt is not None:
            state = load_checkpoint(cfg.init_ckpt)
            name = (state.get("model_spec") or {}).get("name")
            if name != cfg.model or "model" not in state:
                raise CheckpointError(f"init_ckpt {cfg.init_ckpt} holds model {name!r}, not {cfg.model!r}")
            load_weights(self.model, state["model"], source=cfg.init_ckpt)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.splits = CifarSplits(cfg.data, data_dir)

    def train_dataset(self):
        return self.splits.train()

    def val_dataset(self):
        return self.splits.val()

    def test_dataset(self):
        return self.splits.test()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(to_memory_format(x, self.cfg.channels_last))

    def training_step(self, batch, opt=None):
        x, y = batch[0], batch[1]
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
        return {"loss": loss, "acc": accuracy(logits, y).detach()}

    @torch.no_grad()
    def validation_step(self, batch):
        x, y = batch[0], batch[1]
        logits = self(x)
        return {"loss": F.cross_entropy(logits, y), "acc": accuracy(logits, y)}

    def configure_optimizers(self):
        return self.cfg.optim.build(list(self.model.parameters()))

    def configure_schedulers(self, optimizers):
        return [self.cfg.optim.scheduler(optimizers[0])]

    def trainable_modules(self):
        return [self.model]

    def export_model(self):
        return self.model, {"name": self.cfg.model, "kwargs": self.model_kwargs}


@TASKS.register("cifar_classifier", config=CifarClassifierConfig)
def cifar_classifier(cfg: CifarClassifierConfig, data_dir: str | None = None) -> CifarClassifier:
    """Builds the CIFAR classifier task from its config."""
    return CifarClassifier(cfg, data_dir=data_dir)

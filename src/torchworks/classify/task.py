"""``fashion_classifier``: supervised Fashion-MNIST classification as an engine :class:`Task`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset

from torchworks.core.checkpoint import build_model
from torchworks.core.registry import TASKS
from torchworks.engine.task import Task


@dataclass
class FashionTaskConfig:
    """Settings of the Fashion-MNIST classifier task.

    Attributes:
        model: registered model name (``fashion_mlp`` or ``fashion_cnn``).
        model_args: keyword overrides for the model factory.
        lr: AdamW learning rate; ``weight_decay`` its decoupled weight decay.
        schedule: ``cosine`` decays the LR to 0 over ``total_steps`` (0 = constant LR).
        holdout: the last ``holdout`` training images form the validation set (the test set stays unseen).
        train_limit: use only the first N training images (tiny configs and overfitting tests).
        augment: random horizontal flips of training images.
    """

    model: str = "fashion_mlp"
    model_args: dict[str, Any] = field(default_factory=dict)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: Literal["constant", "cosine"] = "cosine"
    total_steps: int = 0
    holdout: int = 5000
    train_limit: int | None = None
    augment: bool = False

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.holdout < 0 or self.holdout >= 60000:
            raise ValueError(f"holdout must be in [0, 60000), got {self.holdout}")


class _Flip(Dataset):
    """Wraps a dataset of (image, label) and flips images left-right with probability 1/2."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        x, y = self.base[i]
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x, y


class FashionClassifier(Task):
    """Cross-entropy training of a registered classifier; validation reports loss and accuracy."""

    monitor = "val/acc"
    monitor_mode = "max"

    def __init__(self, cfg: FashionTaskConfig, data_dir: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.data_dir = data_dir
        self.model = build_model(cfg.model, **cfg.model_args)
        self._train: Dataset | None = None

    def _full_train(self) -> Dataset:
        from torchworks.data.fashion_mnist import FashionMNIST

        if self._train is None:
            self._train = FashionMNIST("train", data_dir=self.data_dir)
        return self._train

    def train_dataset(self) -> Dataset:
        full = self._full_train()
        n = len(full) - self.cfg.holdout
        if self.cfg.train_limit is not None:
            n = min(n, self.cfg.train_limit)
        ds: Dataset = Subset(full, range(n))
        return _Flip(ds) if self.cfg.augment else ds

    def val_dataset(self) -> Dataset | None:
        full = self._full_train()
        if self.cfg.holdout == 0:
            return None
        return Subset(full, range(len(full) - self.cfg.holdout, len(full)))

    def test_dataset(self) -> Dataset:
        from torchworks.data.fashion_mnist import FashionMNIST

        return FashionMNIST("test", data_dir=self.data_dir)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, opt=None):
        x, y = batch
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        return {"loss": loss, "acc": acc.detach()}

    @torch.no_grad()
    def validation_step(self, batch):
        x, y = batch
        logits = self.model(x)
        return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(1) == y).float().mean()}

    def configure_optimizers(self):
        return torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def configure_schedulers(self, optimizers):
        if self.cfg.schedule == "cosine" and self.cfg.total_steps > 0:
            return [torch.optim.lr_scheduler.CosineAnnealingLR(optimizers[0], T_max=self.cfg.total_steps)]
        return []

    def trainable_modules(self):
        return [self.model]

    def export_model(self):
        return self.model, {"name": self.cfg.model, "kwargs": self.cfg.model_args}


@TASKS.register("fashion_classifier", config=FashionTaskConfig)
def fashion_classifier(cfg: FashionTaskConfig, data_dir: str | None = None) -> FashionClassifier:
    """Builds the Fashion-MNIST task from its config."""
    return FashionClassifier(cfg, data_dir=data_dir)

"""Tiny tasks for the engine tests, registered as ``_test_*`` (importing twice registers once).

``_test_regression``: an MLP (optionally behind a frozen random projection) fits ``y = sin(x @ w)`` on an
indexed data set; it records what the engine did to it (indices seen, wrapper types during steps, gradient
norms at the optimiser step, whether autocast was on) so tests can check the engine from the task's side.

``_test_two_opt``: manual optimisation with two linear maps, each stepped by its own SGD from a loss that
depends on both, so a leaked gradient would show in the update.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from torchworks.core.checkpoint import build_model
from torchworks.core.registry import MODELS, TASKS
from torchworks.engine.task import Task


class IndexedRegression(Dataset):
    """``n`` samples ``{"index", "x": (dim,), "y": (1,)}`` with ``y = sin(x @ w)``; fixed by ``seed``."""

    def __init__(self, n: int, dim: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, dim, generator=gen)
        w = torch.randn(dim, 1, generator=torch.Generator().manual_seed(1234)) / dim**0.5
        self.y = torch.sin(2 * self.x @ w)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"index": i, "x": self.x[i], "y": self.y[i]}


def _test_mlp(dim: int, hidden: int, dropout: float = 0.0) -> nn.Module:
    return nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Dropout(dropout), nn.Linear(hidden, 1))


@dataclass
class ToyConfig:
    n_train: int = 64
    n_val: int = 32
    dim: int = 8
    hidden: int = 32
    dropout: float = 0.0
    lr: float = 1e-2
    optimizer: str = "adamw"
    scheduler: bool = False
    frozen_input: bool = False
    constant_val: bool = False
    track_grad_norm: bool = False


class ToyRegression(Task):
    def __init__(self, cfg: ToyConfig, data_dir: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.frozen = None
        if cfg.frozen_input:
            self.frozen = nn.Linear(cfg.dim, cfg.dim)
            self.frozen.requires_grad_(False)
        self.net = build_model("_test_mlp", dim=cfg.dim, hidden=cfg.hidden, dropout=cfg.dropout)
        self.seen: list[list[int]] = []
        self.module_types: set[tuple[str, str, str]] = set()  # (attribute, type during a step, inner type)
        self.clipped_norms: list[float] = []
        self.autocast_seen: set[bool] = set()

    def trainable_modules(self):
        return [self.net] if self.frozen is not None else [self]

    def train_dataset(self):
        return IndexedRegression(self.cfg.n_train, self.cfg.dim, seed=1)

    def val_dataset(self):
        return IndexedRegression(self.cfg.n_val, self.cfg.dim, seed=2) if self.cfg.n_val else None

    def _predict(self, x):
        return self.net(self.frozen(x) if self.frozen is not None else x)

    def training_step(self, batch, opt=None):
        self.seen.append(batch["index"].tolist())
        for name, module in self._modules.items():
            if module is not None:
                inner = getattr(module, "_forward_module", module)
                self.module_types.add((name, type(module).__name__, type(inner).__name__))
        self.autocast_seen.add(torch.is_autocast_enabled("cpu"))
        pred = self._predict(batch["x"]).float()
        loss = F.mse_loss(pred, batch["y"])
        return {"loss": loss, "mae": (pred - batch["y"]).abs().mean()}

    def validation_step(self, batch):
        if self.cfg.constant_val:
            return {"loss": 1.0}
        pred = self._predict(batch["x"]).float()
        return {"loss": F.mse_loss(pred, batch["y"]), "mae": (pred - batch["y"]).abs().mean()}

    def configure_optimizers(self):
        params = list(self.net.parameters())
        if self.cfg.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=self.cfg.lr)
        else:
            opt = torch.optim.AdamW(params, lr=self.cfg.lr)
        if self.cfg.track_grad_norm:
            opt.register_step_pre_hook(self._record_norm)
        return opt

    def _record_norm(self, optimizer, args, kwargs):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        self.clipped_norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

    def configure_schedulers(self, optimizers):
        if not self.cfg.scheduler:
            return []
        return [torch.optim.lr_scheduler.StepLR(optimizers[0], step_size=3, gamma=0.7)]

    def export_model(self):
        c = self.cfg
        return self.net, {"name": "_test_mlp", "kwargs": {"dim": c.dim, "hidden": c.hidden, "dropout": c.dropout}}


@dataclass
class TwoOptConfig:
    lr_a: float = 0.1
    lr_b: float = 0.05


class TwoOptTask(Task):
    manual_optimization = True
    monitor = "train/loss"

    def __init__(self, cfg: TwoOptConfig, data_dir: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.a = nn.Linear(4, 1, bias=False)
        self.b = nn.Linear(4, 1, bias=False)

    @staticmethod
    def losses(a, b, x):
        """The two losses, as functions of the two maps (the test recomputes them by hand)."""
        loss_a = lambda: ((a(x) + b(x) - 1) ** 2).mean()  # noqa: E731
        loss_b = lambda: ((2 * a(x) - b(x)) ** 2).mean()  # noqa: E731
        return loss_a, loss_b

    def trainable_modules(self):
        return [self.a, self.b]

    def train_dataset(self):
        return IndexedRegression(8, 4, seed=3)

    def training_step(self, batch, opt=None):
        loss_a, loss_b = self.losses(self.a, self.b, batch["x"])
        la = loss_a()
        opt.step(0, la)  # a's update; la also puts gradients on b, which b's step must ignore
        lb = loss_b()
        opt.step(1, lb)
        return {"loss": la.detach() + lb.detach(), "loss_a": la, "loss_b": lb}

    def configure_optimizers(self):
        return [torch.optim.SGD(self.a.parameters(), lr=self.cfg.lr_a),
                torch.optim.SGD(self.b.parameters(), lr=self.cfg.lr_b)]


if "_test_mlp" not in MODELS:
    MODELS.add("_test_mlp", _test_mlp)
if "_test_regression" not in TASKS:
    TASKS.add("_test_regression", ToyRegression, config=ToyConfig)
if "_test_two_opt" not in TASKS:
    TASKS.add("_test_two_opt", TwoOptTask, config=TwoOptConfig)

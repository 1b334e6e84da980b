"""``seq_memory``: the note's memory experiments as one engine :class:`Task`.

An experiment names a data generator (:mod:`torchworks.sequence.memory_data`), its loss and its layout
(many-to-one or many-to-many, uni- or bidirectional). The model is ``seq_lstm`` or the memoryless ``seq_mlp``
(by default sized to the LSTM's parameter count, the fair comparison of the conflict experiment).

Metrics (training and validation): ``loss``; ``acc``, the fraction of scored outputs that are right (argmax for
classes, p > 0.5 for 0/1 targets, |error| < ``tolerance`` for values); ``seq_acc``, the fraction of sequences
whose every scored output is right.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from torchworks.core.checkpoint import build_model
from torchworks.core.errors import ConfigError
from torchworks.core.registry import TASKS
from torchworks.engine.task import Task
from torchworks.sequence import memory_data as md
from torchworks.sequence.models import mlp_hidden_for_params, seq_lstm


@dataclass(frozen=True)
class Experiment:
    """One memory experiment: data, layout and loss.

    Attributes:
        generate: ``f(n, generator, **params) -> {"x", "y", "score"}``.
        input_size, output_size: F and O of the model.
        loss: "ce" (classes), "bce" (0/1 per step) or "mse" (values).
        many_to_many: one prediction per step (else one per sequence).
        bidirectional: default layout of the LSTM.
        tolerance: |error| below which a value counts as right ("mse" only; 0.04 as Hochreiter 1997).
    """

    generate: Callable[..., dict]
    input_size: int
    output_size: int
    loss: Literal["ce", "bce", "mse"]
    many_to_many: bool
    bidirectional: bool = False
    tolerance: float = 0.04
    summary: str = ""


EXPERIMENTS: dict[str, Experiment] = {
    "counter": Experiment(md.counter, 3, 4, "ce", True, summary="a^n X b^n: emit as many b's as a's, then end"),
    "ab-memory": Experiment(md.ab_memory, 4, 2, "ce", False, summary="A x..x Y -> a, B x..x Y -> b"),
    "conflict": Experiment(md.conflict, 5, 5, "ce", True, summary="3,0,1,2 -> 3 vs 4,0,1,2 -> 4 (next value)"),
    "echo": Experiment(md.echo, 10, 10, "ce", False, summary="output the value read at a fixed earlier index"),
    "many-to-one": Experiment(md.adding, 2, 1, "mse", False, summary="adding problem: sum of two marked values"),
    "many-to-many": Experiment(md.cumsum, 1, 1, "bce", True, summary="running sum > T/4 at every step"),
    "bidirectional": Experiment(lambda n, gen, **kw: md.cumsum(n, gen, reverse=True, **kw), 1, 1, "bce", True,
                                bidirectional=True, summary="sum from t to the end > T/4 (needs the future)"),
}


def get_experiment(name: str) -> Experiment:
    """The experiment registered as ``name``; ConfigError listing the known ones otherwise."""
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown memory experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


@dataclass
class MemoryConfig:
    """Settings of a memory experiment.

    Attributes:
        experiment: a key of :data:`EXPERIMENTS`.
        model: "lstm" or "mlp" (memoryless baseline).
        hidden_size: LSTM units (per direction); num_layers stacked layers.
        bidirectional: None uses the experiment's default.
        mlp_hidden: MLP width; None matches the LSTM's parameter count.
        params: keyword arguments of the generator (``lag``, ``n_max``, ``length``, ...).
        n_train, n_val, n_test: samples drawn per split (each split from its own seed).
        data_seed: seeds the data (the run seed seeds weights and order).
        lr: Adam learning rate.
        forget_bias, input_bias: initial forget/input-gate biases of the LSTM (for long lags, see ``SequenceNet``).
        tolerance: |error| counted as right for value targets (None: the experiment's, 0.04).
    """

    experiment: str = "counter"
    model: Literal["lstm", "mlp"] = "lstm"
    hidden_size: int = 16
    num_layers: int = 1
    bidirectional: bool | None = None
    mlp_hidden: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    n_train: int = 1024
    n_val: int = 256
    n_test: int = 512
    data_seed: int = 0
    lr: float = 1e-2
    forget_bias: float = 1.0
    input_bias: float = 0.0
    tolerance: float | None = None

    def __post_init__(self) -> None:
        get_experiment(self.experiment)
        if min(self.n_train, self.n_val, self.n_test) < 1:
            raise ValueError("n_train, n_val and n_test must be >= 1")


class TensorDictDataset(Dataset):
    """Map-style view of ``{name: tensor (N, ...)}``; item i is ``{name: tensor[i]}``."""

    def __init__(self, tensors: dict[str, Tensor]) -> None:
        sizes = {len(t) for t in tensors.values()}
        if len(sizes) != 1:
            raise ValueError(f"tensors must share their first dimension, got sizes {sizes}")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}


def score_outputs(out: Tensor, y: Tensor, score: Tensor, exp: Experiment) -> dict[str, Tensor]:
    """Loss and accuracies of model outputs.

    Args:
        out: (B, T, O) or (B, O) model outputs (logits for "ce"/"bce").
        y: (B, T) or (B,) targets; score: same shape, bool, True = counts.
        exp: the experiment (loss kind, tolerance).

    Returns:
        ``{"loss", "acc", "seq_acc"}`` scalars.
    """
    if exp.loss == "ce":
        logits = out[score]  # (S, O): scored outputs only
        target = y[score].long()
        loss = F.cross_entropy(logits, target)
        correct = out.argmax(-1) == y
    else:
        pred = out.squeeze(-1)  # (B, T) or (B,)
        if exp.loss == "bce":
            loss = F.binary_cross_entropy_with_logits(pred[score], y[score].float())
            correct = (pred > 0) == (y > 0.5)
        else:
            loss = F.mse_loss(pred[score], y[score].float())
            correct = (pred - y).abs() < exp.tolerance
    correct = correct | ~score
    acc = correct[score].float().mean()
    seq = correct.reshape(correct.shape[0], -1).all(dim=1).float().mean()
    return {"loss": loss, "acc": acc.detach(), "seq_acc": seq.detach()}


class MemoryTask(Task):
    """Trains an LSTM (or the MLP baseline) on one memory experiment."""

    def __init__(self, cfg: MemoryConfig, data_dir: str | None = None) -> None:
        super().__init__()
        self.cfg, self.exp = cfg, get_experiment(cfg.experiment)
        if cfg.tolerance is not None:
            self.exp = dataclasses.replace(self.exp, tolerance=cfg.tolerance)
        self.spec = model_spec(cfg)
        self.model = build_model(self.spec["name"], **self.spec["kwargs"])

    def make_split(self, split: str, n: int | None = None, **params: Any) -> dict[str, Tensor]:
        """Draws a split ("train", "val", "test") from its own seed; ``params`` override the config's."""
        offset = {"train": 0, "val": 1, "test": 2}[split]
        gen = torch.Generator().manual_seed(1000 * self.cfg.data_seed + offset)
        size = n or {"train": self.cfg.n_train, "val": self.cfg.n_val, "test": self.cfg.n_test}[split]
        return self.exp.generate(size, gen, **{**self.cfg.params, **params})

    def _dataset(self, split: str) -> TensorDictDataset:
        data = self.make_split(split)
        return TensorDictDataset({k: data[k] for k in ("x", "y", "score")})

    def train_dataset(self) -> Dataset:
        return self._dataset("train")

    def val_dataset(self) -> Dataset:
        return self._dataset("val")

    def test_dataset(self) -> Dataset:
        return self._dataset("test")

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def training_step(self, batch, opt=None):
        return score_outputs(self.model(batch["x"]), batch["y"], batch["score"], self.exp)

    @torch.no_grad()
    def validation_step(self, batch):
        return score_outputs(self.model(batch["x"]), batch["y"], batch["score"], self.exp)

    @torch.no_grad()
    def evaluate(self, data: dict[str, Tensor]) -> dict[str, float]:
        """Metrics on a generated split (any length: LSTMs run on longer sequences than they trained on)."""
        self.eval()
        return {k: float(v) for k, v in score_outputs(self.model(data["x"]), data["y"], data["score"],
                                                      self.exp).items()}

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)

    def trainable_modules(self):
        return [self.model]

    def export_model(self):
        return self.model, self.spec


def model_spec(cfg: MemoryConfig) -> dict[str, Any]:
    """``{"name", "kwargs"}`` of the model a memory config trains (the MLP sized like the LSTM if asked)."""
    exp = get_experiment(cfg.experiment)
    bidir = exp.bidirectional if cfg.bidirectional is None else cfg.bidirectional
    lstm_kw = {"input_size": exp.input_size, "hidden_size": cfg.hidden_size, "output_size": exp.output_size,
               "num_layers": cfg.num_layers, "many_to_many": exp.many_to_many, "bidirectional": bidir,
               "forget_bias": cfg.forget_bias, "input_bias": cfg.input_bias}
    if cfg.model == "lstm":
        return {"name": "seq_lstm", "kwargs": lstm_kw}
    kw: dict[str, Any] = {"input_size": exp.input_size, "output_size": exp.output_size,
                          "many_to_many": exp.many_to_many}
    if not exp.many_to_many:
        gen = torch.Generator().manual_seed(0)
        kw["seq_len"] = int(exp.generate(1, gen, **cfg.params)["x"].shape[1])
    width = cfg.mlp_hidden
    if width is None:
        target = seq_lstm(**lstm_kw).count_params()
        width = mlp_hidden_for_params(target, exp.input_size * kw.get("seq_len", 1), exp.output_size)
    kw["hidden"] = [int(width)]
    return {"name": "seq_mlp", "kwargs": kw}


@TASKS.register("seq_memory", config=MemoryConfig)
def seq_memory(cfg: MemoryConfig, data_dir: str | None = None) -> MemoryTask:
    """Builds a memory experiment task (``data_dir`` is unused: the data are synthetic)."""
    return MemoryTask(cfg, data_dir=data_dir)

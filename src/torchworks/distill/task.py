"""``distill``: a student learns from a frozen teacher through any weighted combination of distillation losses.

A distillation task is the shared classification task (:class:`~torchworks.classify.task.ClassificationTask`:
data, split, crop/flip augmentation, normalisation, validation, optimiser, warm-up + schedule) with a teacher and
loss terms added. Per step: the teacher runs under ``no_grad`` (eval mode; OFD's reference uses BN batch
statistics, see ``teacher_bn``) on the same augmented batch as the student, the student runs once with features,
and ``loss = sum_i w_i * term_i`` over the configured terms (``ce``, ``kd``, ``crd``, ``at``, ...). Learnable loss
parts (regressors, connectors, embeddings, VID variances, FT translator) train with the student in one
optimiser; the teacher is left out of it and of ``trainable_modules()`` (so it is never wrapped in DDP) and never
receives gradients.

Init phase (``init_steps``): RepDistiller first trains AB / FSP (and FitNet in ``mode="paper"``) alone on the
student's feature layers, and FT's paraphraser on the teacher maps; then the main phase drops those terms (their
weight is inert, as in RepDistiller) and trains everything else. The LR schedule starts after the init phase.

References:
    Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015, arXiv:1503.02531.
    Reference implementation of the recipe: HobbitLong/RepDistiller ``train_student.py``, ``helper/loops.py``.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from torchworks.classify.task import ClassificationTask, ClassifierRecipe, accuracy, lr_schedule
from torchworks.core.checkpoint import model_spec
from torchworks.core.errors import CheckpointError, ShapeError
from torchworks.core.registry import TASKS
from torchworks.distill.networks import build_network, load_network
from torchworks.distill.recipes import LossTerm
from torchworks.distill.terms import TermSet

PRETRAINED_DIR = Path(__file__).parent / "pretrained"


@dataclass
class DistillConfig(ClassifierRecipe):
    """Settings of the ``distill`` task: a :class:`~torchworks.classify.task.ClassifierRecipe` (data, augmentation,
    optimiser, schedule: the same keys as ``image_classifier``, with RepDistiller's CIFAR defaults: CIFAR-10
    validated on its test set, crop (pad 4) + flip, SGD lr 0.05 momentum 0.9, weight decay 5e-4 on every
    parameter, channels-last) plus the teacher, the student and the loss terms.

    Attributes:
        teacher, student: a registered model name (``resnet56``) or the import path of any factory returning an
            ``nn.Module`` whose ``forward(x)`` gives logits (``mypkg.nets:small_cnn``; see
            :mod:`~torchworks.distill.networks`); ``teacher_args``/``student_args`` their keyword arguments
            (``num_classes`` comes from the data). Zoo models expose numbered feature lists; any model can be
            tapped by module path (``student_layers: [layer3.1.conv2]`` in a loss term).
        teacher_ckpt: the teacher's weights: a file from ``save_model`` or the trainer (it must hold the
            ``teacher`` model), a plain safetensors state dict, ``pretrained:<name>`` for a file shipped in
            ``torchworks/distill/pretrained``, or None for an untrained teacher (tests and timing only; a
            warning is issued).
        losses: the weighted terms (see :class:`~torchworks.distill.recipes.LossTerm`).
        init_steps: steps of the init phase (needed by ``ab``, ``fsp``, ``ft`` and ``fitnet`` in paper mode).
        teacher_bn: ``eval`` (running statistics), ``batch`` (BN batch statistics, running statistics untouched:
            what OFD's reference does), or ``auto`` (``batch`` when an ``ofd`` term is present).
        cache_teacher_logits: remember the teacher logits per training index (logit-only losses and no
            augmentation only, since the teacher's output depends on the augmented view).
    """

    dataset: str = "cifar10"
    holdout: int = 0
    crop_padding: int = 4
    flip: bool = True
    optimizer: Literal["adamw", "sgd"] = "sgd"
    lr: float = 0.05
    weight_decay: float = 5e-4
    weight_decay_scope: Literal["weights", "all"] = "all"
    channels_last: bool = True
    teacher: str = "resnet56"
    student: str = "resnet20"
    teacher_args: dict[str, Any] = field(default_factory=dict)
    student_args: dict[str, Any] = field(default_factory=dict)
    teacher_ckpt: str | None = None
    losses: list[LossTerm] = field(default_factory=lambda: [LossTerm("ce", 0.1), LossTerm("kd", 0.9)])
    init_steps: int = 0
    teacher_bn: Literal["auto", "eval", "batch"] = "auto"
    cache_teacher_logits: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.losses:
            raise ValueError("losses is empty: give at least one term, e.g. [{name: ce}, {name: kd, weight: 0.9}]")
        if self.init_steps < 0:
            raise ValueError(f"init_steps must be >= 0, got {self.init_steps}")


def resolve_teacher_ckpt(path: str) -> Path:
    """``pretrained:<name>`` -> the shipped file (``.safetensors`` added if missing); other paths unchanged."""
    if path.startswith("pretrained:"):
        name = path.split(":", 1)[1]
        file = PRETRAINED_DIR / (name if name.endswith(".safetensors") else f"{name}.safetensors")
        if not file.is_file():
            shipped = sorted(p.stem for p in PRETRAINED_DIR.glob("*.safetensors"))
            raise FileNotFoundError(f"no shipped teacher {name!r}; shipped: {shipped or 'none'}")
        return file
    return Path(path).expanduser()


def load_teacher(cfg: DistillConfig, num_classes: int) -> nn.Module:
    """Builds the teacher (registry name or import path), with the weights of ``teacher_ckpt`` when given.

    The teacher's keyword arguments are ``teacher_args`` if any, else those stored in its checkpoint.

    Raises:
        FileNotFoundError: the checkpoint does not exist.
        CheckpointError: the checkpoint holds another model (both names are given), weights that do not fit,
            or another class count.
    """
    if cfg.teacher_ckpt is None:
        warnings.warn(f"distill: no teacher_ckpt, the {cfg.teacher} teacher is untrained", stacklevel=3)
        return build_network(cfg.teacher, cfg.teacher_args, num_classes)
    path = resolve_teacher_ckpt(cfg.teacher_ckpt)
    if not path.is_file():
        raise FileNotFoundError(f"teacher checkpoint not found: {path}")
    try:
        teacher = load_network(path, cfg.teacher, kwargs=cfg.teacher_args or None, num_classes=num_classes)
    except CheckpointError as exc:
        raise CheckpointError(f"teacher checkpoint does not fit teacher {cfg.teacher!r}: {exc}") from exc
    out = getattr(teacher, "num_classes", None) or _out_features(teacher)
    if out is not None and out != num_classes:
        raise CheckpointError(f"teacher checkpoint {path} predicts {out} classes but the data has {num_classes}")
    return teacher


def _out_features(model: nn.Module) -> int | None:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return last[-1].out_features if last else None


class DistillationTask(ClassificationTask):
    """Trains ``student`` from a frozen ``teacher`` with the configured loss terms (see the module docstring).

    The classification task underneath trains the student (stored as ``student``, its checkpoint prefix) and
    supplies the data, the batch preparation, validation, optimiser and schedule.
    """

    model_attr = "student"

    def __init__(self, cfg: DistillConfig, data_dir: str | None = None) -> None:
        k = cfg.num_classes
        student = build_network(cfg.student, cfg.student_args, k)
        names = {t.name for t in cfg.losses}
        needs_index = "crd" in names or cfg.cache_teacher_logits
        super().__init__(cfg, student, data_dir, return_index=needs_index)
        self.student_kwargs = dict(model_spec(self.student)["kwargs"])
        teacher = load_teacher(cfg, k)
        teacher.requires_grad_(False)
        if cfg.channels_last:
            teacher.to(memory_format=torch.channels_last)
        self.teacher = teacher.eval()
        self.terms = TermSet(cfg, self.student, self.teacher, self.data if "crd" in names else None)
        self.losses = self.terms.modules
        self.teacher_batch_bn = cfg.teacher_bn == "batch" or (cfg.teacher_bn == "auto" and "ofd" in names)
        self.register_buffer("step_count", torch.zeros((), dtype=torch.long))
        if cfg.cache_teacher_logits:
            self._check_cache_allowed()
            n = self.data.num_train_total
            self.register_buffer("_logit_cache", torch.zeros(n, k), persistent=False)
            self.register_buffer("_logit_cached", torch.zeros(n, dtype=torch.bool), persistent=False)

    def _check_cache_allowed(self) -> None:
        feature_terms = [t.name for t in self.cfg.losses if t.name not in ("ce", "kd", "dkd", "dist")]
        if feature_terms:
            raise ValueError(f"cache_teacher_logits needs logit-only losses; {feature_terms} read teacher features")
        if self.cfg.augments:
            raise ValueError("cache_teacher_logits with augmentation (crop_padding/flip) would reuse the logits of "
                             "the first augmented view for every later view (Beyer et al. 2022: it hurts); set "
                             "crop_padding: 0 and flip: false")

    # --- modes ----------------------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> DistillationTask:
        """Sets the student and loss parts to ``mode``; the teacher always stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    @property
    def in_init_phase(self) -> bool:
        """True during the first ``init_steps`` optimisation steps."""
        return int(self.step_count) < self.cfg.init_steps

    # --- the step -------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _teacher_mode(self):
        """BN batch statistics for the teacher without touching its running statistics (OFD's train mode)."""
        if not self.teacher_batch_bn:
            yield
            return
        bns = [m for m in self.teacher.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [(m.training, m.track_running_stats) for m in bns]
        for m in bns:
            m.training, m.track_running_stats = True, False  # batch stats, running buffers neither used nor updated
        try:
            yield
        finally:
            for m, (tr, track) in zip(bns, saved, strict=True):
                m.training, m.track_running_stats = tr, track

    @torch.no_grad()
    def _teacher_outputs(self, x: torch.Tensor, idx: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
        if self.cfg.cache_teacher_logits and idx is not None and not self.terms.teacher_reads_features:
            hit = self._logit_cached[idx]
            if bool(hit.all()):
                return self._logit_cache[idx], {}
        with self._teacher_mode():
            logits, feats = self.terms.run_teacher(self.teacher, x)
        logits = logits.float()
        if self.cfg.cache_teacher_logits and idx is not None:
            self._logit_cache[idx] = logits
            self._logit_cached[idx] = True
        return logits, feats

    def training_step(self, batch, opt=None):
        images, y = batch[0], batch[1]
        idx = batch[2] if len(batch) > 2 else None
        if idx is None and self.terms.needs_index:
            raise ValueError("distill: the crd term needs dataset indices but the training batches are "
                             "(image, label) only; use a data set that returns (image, label, index)")
        x = self.prepare(images, train=True)  # one augmented view, seen by both networks
        if self.terms.uses_teacher:
            t_logits, t_feats = self._teacher_outputs(x, idx)
        else:  # CE only (the no-distillation baseline): the teacher is not run at all
            t_logits, t_feats = None, {}
        s_logits, s_feats = self.terms.run_student(self.student, x)
        init = self.in_init_phase
        parts = self.terms.losses(s_logits, s_feats, t_logits, t_feats, y, idx, init_phase=init)
        loss = sum(w * v for w, v in parts.values())
        self.step_count += 1
        out = {"loss": loss, "acc": accuracy(s_logits, y).detach(), "phase_init": float(init)}
        out.update({f"loss_{n}": v.detach() for n, (_, v) in parts.items()})
        return out

    # --- optimisation ---------------------------------------------------------------------------------------------
    def configure_schedulers(self, optimizers):
        # The schedule (warm-up included) starts after the init phase.
        return [torch.optim.lr_scheduler.LambdaLR(optimizers[0], lr_schedule(self.cfg, delay=self.cfg.init_steps))]

    def trainable_modules(self):
        # Each loss with parameters separately: called through its own (DDP) wrapper; the teacher never.
        return [self.student, *[m for m in self.losses if any(p.requires_grad for p in m.parameters())]]

    def export_model(self):
        return self.student, {"name": self.cfg.student, "kwargs": self.student_kwargs}


@TASKS.register("distill", config=DistillConfig)
def distill(cfg: DistillConfig, data_dir: str | None = None) -> DistillationTask:
    """Builds the distillation task from its config."""
    return DistillationTask(cfg, data_dir=data_dir)


__all__ = ["DistillConfig", "DistillationTask", "ShapeError", "load_teacher", "resolve_teacher_ckpt"]

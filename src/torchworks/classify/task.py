"""``image_classifier``: supervised image classification as an engine :class:`Task`, the base of every classifier.

One task for every image classifier in the package: the Fashion-MNIST MLP/CNN, the ViTs and their CNN partners,
the CIFAR ResNet teachers, and (through :class:`~torchworks.distill.task.DistillationTask`, which adds a teacher
and loss terms) the distilled students. Per step:

* data: uint8 batches from :class:`~torchworks.classify.data.ClassificationData` (the fixed-permutation split);
  :meth:`ClassificationTask.prepare` converts them to float in [0, 1], augments training batches (random crop
  with zero padding, horizontal flip: :mod:`~torchworks.classify.augment`) and normalises with the data set's
  mean/std;
* loss: cross-entropy with optional label smoothing (validation reports plain cross-entropy) and top-1 accuracy;
* optimiser: AdamW or SGD (momentum, optional Nesterov); weight decay on every parameter or on the Linear/Conv
  weights only (norms, biases, positions and [CLS] tokens undecayed, as for ViTs);
* schedule: the engine's warm-up + cosine (or warm-up + steps), :mod:`torchworks.engine.schedules`.

References:
    Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021 (AdamW, warm-up, label smoothing for ViT).
    Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019 (AdamW).
    Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016 (label smoothing).
    He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (SGD + momentum, crop/flip on CIFAR).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from torchworks.classify.augment import random_crop_flip
from torchworks.classify.data import DATASETS, ClassificationData
from torchworks.core.checkpoint import build_model, load_checkpoint, load_weights
from torchworks.core.errors import CheckpointError
from torchworks.core.registry import TASKS
from torchworks.engine.schedules import WarmupCosine, WarmupMultiStep
from torchworks.engine.task import Task

__all__ = ["ClassificationTask", "ClassifierRecipe", "ImageClassifier", "ImageClassifierConfig", "accuracy",
           "lr_schedule"]


def accuracy(logits: Tensor, y: Tensor) -> Tensor:
    """Top-1 accuracy of (B, K) logits against (B,) int64 labels, as a float scalar in [0, 1]."""
    return (logits.argmax(1) == y).float().mean()


@dataclass
class ClassifierRecipe:
    """How a classifier trains (everything but the network): data, augmentation, loss, optimiser, schedule.

    Attributes:
        dataset: ``fashion_mnist`` (1 x 28 x 28), ``cifar10``, ``cifar100`` (3 x 32 x 32), or, without files,
            ``synthetic`` (3 x 32 x 32 bands, 10 classes) and ``synthetic_textures`` (1 x 8 x 8, 4 classes).
        holdout: training images held out for validation (fixed permutation); 0 validates on the test set.
        train_limit: train on only the first N remaining images (None: all).
        crop_padding: random-crop zero padding in pixels (0: no crop); ``flip``: random horizontal flips.
        normalize: subtract the data set's mean and divide by its std (False: images stay in [0, 1]).
        label_smoothing: cross-entropy label smoothing for training.
        optimizer: ``adamw`` (``betas``) or ``sgd`` (``momentum``, ``nesterov``); ``lr`` its peak LR.
        weight_decay: decoupled (AdamW) or L2 (SGD) weight decay; ``weight_decay_scope`` ``weights`` applies it to
            Linear/Conv weights only, ``all`` to every parameter.
        schedule: ``cosine`` (to ``min_lr_ratio`` at ``total_steps``) or ``step`` (x ``gamma`` at each fraction
            in ``milestones`` of ``total_steps``), both after ``warmup_steps`` of linear warm-up; ``total_steps``
            0 keeps the LR constant after the warm-up (see :mod:`torchworks.engine.schedules`).
        channels_last: run the network on channels-last images (faster convolutions on CPU; same values).
        synthetic_size: images per split of the synthetic data sets.
    """

    dataset: str = "fashion_mnist"
    holdout: int = 5000
    train_limit: int | None = None
    crop_padding: int = 0
    flip: bool = False
    normalize: bool = True
    label_smoothing: float = 0.0
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.05
    weight_decay_scope: Literal["weights", "all"] = "weights"
    schedule: Literal["cosine", "step"] = "cosine"
    warmup_steps: int = 0
    total_steps: int = 0
    min_lr_ratio: float = 0.0
    milestones: list[float] = field(default_factory=lambda: [0.625, 0.75, 0.875])
    gamma: float = 0.1
    channels_last: bool = False
    synthetic_size: int = 64

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {self.dataset!r}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        for name in ("holdout", "crop_padding", "warmup_steps", "total_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.train_limit is not None and self.train_limit < 1:
            raise ValueError(f"train_limit must be >= 1 or null, got {self.train_limit}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if any(not 0 < m < 1 for m in self.milestones):
            raise ValueError(f"milestones are fractions of total_steps in (0, 1), got {self.milestones}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise ValueError("nesterov needs optimizer: sgd with momentum > 0")
        self.betas = tuple(self.betas)

    @property
    def num_classes(self) -> int:
        """Classes of the data set."""
        return DATASETS[self.dataset].num_classes

    @property
    def augments(self) -> bool:
        """Whether training batches are augmented (the same image gives different views)."""
        return bool(self.crop_padding or self.flip)


def lr_schedule(cfg: ClassifierRecipe, delay: int = 0) -> WarmupCosine | WarmupMultiStep:
    """The LR multiplier a recipe asks for (``delay``: steps of an initialisation phase before it starts)."""
    if cfg.schedule == "step":
        return WarmupMultiStep(cfg.warmup_steps, cfg.total_steps, cfg.milestones, cfg.gamma, delay=delay)
    return WarmupCosine(cfg.warmup_steps, cfg.total_steps, cfg.min_lr_ratio, delay=delay)


def _decay_groups(modules: list[nn.Module], weight_decay: float) -> list[dict[str, Any]]:
    """Linear/Conv weights decayed, every other trainable parameter (norms, biases, positions, tokens) not."""
    decay, no_decay = [], []
    for root in modules:
        for module in root.modules():
            for name, p in module.named_parameters(recurse=False):
                if p.requires_grad:
                    is_matrix = name == "weight" and isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d)
                    (decay if is_matrix else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class ClassificationTask(Task):
    """Cross-entropy training of one image classifier; validation reports loss and top-1 accuracy.

    Subclasses (the distillation task) build the network themselves and override :meth:`training_step`; the data,
    augmentation, normalisation, validation, optimiser and schedule stay these.

    Args:
        cfg: the recipe.
        model: the network, ``(B, C, H, W)`` normalised float images -> ``(B, K)`` logits.
        data_dir: searched first for the data set's files.
        return_index: training items carry their index into the full training split.

    Attributes:
        model_attr: the attribute (and state-dict prefix) the network is stored under; :attr:`net` reads it.
    """

    monitor = "val/acc"
    monitor_mode = "max"
    model_attr = "model"

    def __init__(self, cfg: ClassifierRecipe, model: nn.Module, data_dir: str | None = None,
                 return_index: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        setattr(self, self.model_attr, model)
        self.data = ClassificationData(cfg.dataset, cfg.holdout, cfg.train_limit, data_dir, cfg.synthetic_size,
                                       return_index=return_index)
        info = self.data.info
        self.register_buffer("mean", torch.tensor(info.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(info.std).view(1, -1, 1, 1), persistent=False)

    @property
    def net(self) -> nn.Module:
        """The network being trained."""
        return getattr(self, self.model_attr)

    def train_dataset(self) -> Dataset:
        return self.data.train()

    def val_dataset(self) -> Dataset:
        return self.data.val()

    def test_dataset(self) -> Dataset:
        return self.data.test()

    def prepare(self, images: Tensor, train: bool) -> Tensor:
        """uint8 (B, C, H, W) -> float (B, C, H, W), augmented when ``train``, normalised when configured."""
        x = images.float().div_(255.0)
        if train and self.cfg.augments:
            x = random_crop_flip(x, self.cfg.crop_padding, self.cfg.flip)
        if self.cfg.normalize:
            x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else x

    def forward(self, images: Tensor) -> Tensor:
        """Logits (B, K) of uint8 images (B, C, H, W), without augmentation."""
        return self.net(self.prepare(images, train=False))

    def training_step(self, batch, opt=None):
        images, y = batch[0], batch[1]
        logits = self.net(self.prepare(images, train=True))
        loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
        return {"loss": loss, "acc": accuracy(logits, y).detach()}

    @torch.no_grad()
    def validation_step(self, batch):
        images, y = batch[0], batch[1]
        logits = self(images)
        return {"loss": F.cross_entropy(logits, y), "acc": accuracy(logits, y)}

    def configure_optimizers(self):
        c = self.cfg
        modules = list(self.trainable_modules())
        if c.weight_decay_scope == "weights":
            params: Any = _decay_groups(modules, c.weight_decay)
            wd = {}
        else:
            params = [p for m in modules for p in m.parameters() if p.requires_grad]
            wd = {"weight_decay": c.weight_decay}
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov, **wd)
        return torch.optim.AdamW(params, lr=c.lr, betas=c.betas, **wd)

    def configure_schedulers(self, optimizers):
        return [torch.optim.lr_scheduler.LambdaLR(optimizers[0], lr_schedule(self.cfg))]

    def trainable_modules(self):
        return [self.net]


@dataclass
class ImageClassifierConfig(ClassifierRecipe):
    """Settings of the ``image_classifier`` task: a :class:`ClassifierRecipe` and the network it trains.

    Attributes:
        model: registered model name; ``model_args`` its keyword overrides (``num_classes`` defaults to the data
            set's).
        init_ckpt: start from the weights of this ``save_model`` file or training checkpoint (same model), e.g.
            a second schedule after a first one (optimiser and schedule start afresh).
    """

    model: str = "vit_tiny_patch4_28"
    model_args: dict[str, Any] = field(default_factory=dict)
    init_ckpt: str | None = None


class ImageClassifier(ClassificationTask):
    """:class:`ClassificationTask` of a registered model built from the config."""

    def __init__(self, cfg: ImageClassifierConfig, data_dir: str | None = None) -> None:
        kwargs = {"num_classes": DATASETS[cfg.dataset].num_classes, **cfg.model_args}
        model = build_model(cfg.model, **kwargs)
        if cfg.init_ckpt is not None:
            state = load_checkpoint(cfg.init_ckpt)
            name = (state.get("model_spec") or {}).get("name")
            if name != cfg.model or "model" not in state:
                raise CheckpointError(f"init_ckpt {cfg.init_ckpt} holds model {name!r}, not {cfg.model!r}")
            load_weights(model, state["model"], source=cfg.init_ckpt)
        super().__init__(cfg, model, data_dir)
        self.model_kwargs = kwargs

    def export_model(self):
        return self.model, {"name": self.cfg.model, "kwargs": self.model_kwargs}


@TASKS.register("image_classifier", config=ImageClassifierConfig)
def image_classifier(cfg: ImageClassifierConfig, data_dir: str | None = None) -> ImageClassifier:
    """Builds the image classification task from its config."""
    return ImageClassifier(cfg, data_dir=data_dir)

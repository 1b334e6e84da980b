"""``image_classifier``: any registered image model on Fashion-MNIST or CIFAR-10, with the small-data ViT recipe.

The recipe is what a ViT trained from scratch on 28-32 px images needs (and what the CNN it is compared with gets
too, so the comparison differs only in the model): batch-level random crop with zero padding + horizontal flip
(torch ops on the whole batch, no torchvision), label smoothing, AdamW with decoupled weight decay on the weight
matrices only, and a per-step LR schedule of linear warm-up then cosine decay.

Images are kept as one uint8 tensor per split; a batch leaves the loader as uint8 (B, C, H, W) and is converted
to float, augmented (training only) and normalised in :meth:`ImageClassifier.prepare`. The shared CIFAR-10
copy is class-major, so its holdout is drawn with a fixed permutation (seed 12345), independent of the run seed.

References:
    Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021 (AdamW, warm-up, label smoothing for ViT).
    Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019 (AdamW);
    "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017 (cosine schedule).
    Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016 (label smoothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from torchworks.core.checkpoint import build_model
from torchworks.core.registry import TASKS
from torchworks.engine.task import Task
from torchworks.transformer.gpt.task import WarmupCosine

__all__ = ["ImageClassifier", "ImageClassifierConfig", "crop_flip", "random_crop_flip"]

SPLIT_SEED = 12345
#: Per-channel (mean, std) of the training images in [0, 1] units.
STATS = {"fashion_mnist": ((0.2860,), (0.3530,)),
         "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
         "synthetic": ((0.5,), (0.25,))}


def crop_flip(images: Tensor, padding: int, dy: Tensor, dx: Tensor, flip: Tensor) -> Tensor:
    """Crops each image from its zero-padded copy at a given offset, then mirrors the chosen ones left-right.

    Args:
        images: (B, C, H, W) float; padding adds value 0 (black before normalisation, as torchvision pads).
        padding: pixels of zero padding on each side (>= 0).
        dy, dx: int (B,) top-left corner of each crop in the padded image, in [0, 2 * padding].
        flip: bool (B,), True = mirror that image horizontally.

    Returns:
        (B, C, H, W), same dtype and device; ``dy = dx = padding`` and no flip give the input back.
    """
    b, _, h, w = images.shape
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    for name, t in (("dy", dy), ("dx", dx)):
        if t.shape != (b,) or (t.numel() and (t.min() < 0 or t.max() > 2 * padding)):
            raise ValueError(f"{name} must be (B,) = ({b},) with values in [0, {2 * padding}], got {t.tolist()}")
    dev = images.device
    padded = F.pad(images, (padding,) * 4)
    rows = dy.to(dev)[:, None] + torch.arange(h, device=dev)  # (B, H) source row of each output row
    cols = dx.to(dev)[:, None] + torch.arange(w, device=dev)  # (B, W)
    cols = torch.where(flip.to(dev)[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=dev)[:, None, None]
    # Advanced indices split by the channel slice put their broadcast shape first: (B, H, W, C).
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def random_crop_flip(images: Tensor, padding: int = 4, flip: bool = True,
                     generator: torch.Generator | None = None) -> Tensor:
    """Random crop after zero padding (offsets uniform in [0, 2p]^2) and a horizontal flip with probability 1/2.

    The random numbers are drawn on the CPU from ``generator`` (torch's global RNG if None, which the engine
    seeds and checkpoints), so a seed gives the same batch on any device.

    Args:
        images: (B, C, H, W) float.
        padding: zero padding per side; 0 turns the crop off.
        flip: draw horizontal flips.
        generator: optional CPU generator.

    Returns:
        (B, C, H, W) augmented images; the order of the batch (and so its labels) is unchanged.
    """
    b = images.shape[0]
    offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator)
    mirror = torch.rand(b, generator=generator) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    return crop_flip(images, padding, offsets[0], offsets[1], mirror)


@dataclass
class ImageClassifierConfig:
    """Settings of the ``image_classifier`` task.

    Attributes:
        dataset: ``fashion_mnist`` (1 x 28 x 28), ``cifar10`` (3 x 32 x 32) or ``synthetic`` (1 x 8 x 8 noisy
            stripes/checkerboard/noise, 4 classes: tests, no files).
        model: registered model name; ``model_args`` its keyword overrides.
        holdout: training images held out for validation (drawn with a fixed permutation); 0 validates on test.
        train_limit: train on only the first N remaining images (None: all).
        crop_padding: random-crop zero padding in pixels (0: no crop); ``flip`` random horizontal flips.
        label_smoothing: cross-entropy label smoothing for training (validation reports plain cross-entropy).
        lr: peak AdamW learning rate; ``betas``; ``weight_decay`` applies to Linear/Conv weights only.
        warmup_steps: linear warm-up steps; ``total_steps`` end of the cosine (0: constant after warm-up);
            ``min_lr_ratio`` the final LR as a fraction of ``lr``.
        channels_last: run the model on channels-last images (faster convolutions on CPU; same values).
        synthetic_size: images per split for ``synthetic``.
    """

    dataset: str = "fashion_mnist"
    model: str = "vit_tiny_patch4_28"
    model_args: dict[str, Any] = field(default_factory=dict)
    holdout: int = 5000
    train_limit: int | None = None
    crop_padding: int = 0
    flip: bool = False
    label_smoothing: float = 0.0
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.05
    warmup_steps: int = 0
    total_steps: int = 0
    min_lr_ratio: float = 0.0
    channels_last: bool = False
    synthetic_size: int = 64

    def __post_init__(self) -> None:
        if self.dataset not in STATS:
            raise ValueError(f"dataset must be one of {sorted(STATS)}, got {self.dataset!r}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        for name in ("holdout", "crop_padding", "warmup_steps", "total_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.train_limit is not None and self.train_limit < 1:
            raise ValueError(f"train_limit must be >= 1 or null, got {self.train_limit}")
        self.betas = tuple(self.betas)


class TensorImages(Dataset):
    """uint8 images (N, C, H, W) and int64 labels (N,); items are ``(uint8 image (C, H, W), label)``."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or len(images) != len(labels):
            raise ValueError(f"need uint8 (N, C, H, W) images and N labels, got {images.dtype} "
                             f"{tuple(images.shape)} and {len(labels)} labels")
        self.images, self.labels = images, labels.to(torch.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.images[i], self.labels[i]

    def __getitems__(self, indices: list[int]) -> list[tuple[Tensor, Tensor]]:
        idx = torch.as_tensor(indices, dtype=torch.long)  # one gather per batch instead of one per item
        return list(zip(self.images[idx].unbind(0), self.labels[idx].unbind(0), strict=True))


def load_split(dataset: str, split: str, data_dir: str | None = None, synthetic_size: int = 64):
    """uint8 images (N, C, H, W) and int64 labels (N,) of ``split`` (``train``/``test``) of ``dataset``."""
    if dataset == "fashion_mnist":
        from torchworks.data.fashion_mnist import load_fashion_mnist

        images, labels = load_fashion_mnist(split, data_dir)
        images = images[:, None]
    elif dataset == "cifar10":
        from torchworks.data.cifar import load_cifar10

        images, labels = load_cifar10(split, data_dir)
        images = images.transpose(0, 3, 1, 2)
    else:
        # Textures every patch shows, unchanged by flips and shifts: horizontal stripes, vertical stripes,
        # checkerboard, plain noise.
        rng = np.random.default_rng(0 if split == "train" else 1)
        labels = rng.integers(0, 4, size=synthetic_size)
        images = rng.integers(0, 100, size=(synthetic_size, 1, 8, 8), dtype=np.uint8)
        r, c = np.mgrid[:8, :8]
        patterns = np.stack([r % 2 == 0, c % 2 == 0, (r + c) % 2 == 0, np.zeros((8, 8), bool)])
        images += (155 * patterns[labels][:, None]).astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(np.asarray(labels, dtype=np.int64))


class ImageClassifier(Task):
    """Cross-entropy training of a registered image classifier; validation reports loss and top-1 accuracy."""

    monitor = "val/acc"
    monitor_mode = "max"

    def __init__(self, cfg: ImageClassifierConfig, data_dir: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.data_dir = data_dir
        self.model = build_model(cfg.model, **cfg.model_args)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        mean, std = STATS[cfg.dataset]
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self._splits: dict[str, tuple[Tensor, Tensor]] = {}

    def _arrays(self, split: str) -> tuple[Tensor, Tensor]:
        if split not in self._splits:
            self._splits[split] = load_split(self.cfg.dataset, split, self.data_dir, self.cfg.synthetic_size)
        return self._splits[split]

    def _train_val_indices(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(self._arrays("train")[1])
        if self.cfg.holdout >= n:
            raise ValueError(f"holdout={self.cfg.holdout} leaves no training images (the split has {n})")
        order = np.random.default_rng(SPLIT_SEED).permutation(n)
        train, val = order[: n - self.cfg.holdout], order[n - self.cfg.holdout:]
        return np.sort(train[: self.cfg.train_limit]), np.sort(val)

    def _subset(self, split: str, idx: np.ndarray | None = None) -> TensorImages:
        images, labels = self._arrays(split)
        if idx is not None:
            t = torch.from_numpy(idx)
            images, labels = images[t], labels[t]
        return TensorImages(images, labels)

    def train_dataset(self) -> Dataset:
        return self._subset("train", self._train_val_indices()[0])

    def val_dataset(self) -> Dataset:
        if self.cfg.holdout == 0:
            return self.test_dataset()
        return self._subset("train", self._train_val_indices()[1])

    def test_dataset(self) -> Dataset:
        return self._subset("test")

    def prepare(self, images: Tensor, train: bool) -> Tensor:
        """uint8 (B, C, H, W) -> normalised float (B, C, H, W); augmented when ``train``."""
        x = images.float().div_(255.0)
        if train and (self.cfg.crop_padding or self.cfg.flip):
            x = random_crop_flip(x, self.cfg.crop_padding, self.cfg.flip)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else x

    def forward(self, images: Tensor) -> Tensor:
        """Logits (B, K) of uint8 images (B, C, H, W) (no augmentation)."""
        return self.model(self.prepare(images, train=False))

    def training_step(self, batch, opt=None):
        images, y = batch
        logits = self.model(self.prepare(images, train=True))
        loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
        return {"loss": loss, "acc": (logits.argmax(1) == y).float().mean().detach()}

    @torch.no_grad()
    def validation_step(self, batch):
        images, y = batch
        logits = self(images)
        return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(1) == y).float().mean()}

    def configure_optimizers(self):
        decay, no_decay = [], []
        for module in self.model.modules():
            for name, p in module.named_parameters(recurse=False):
                is_matrix = name == "weight" and isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d)
                (decay if is_matrix else no_decay).append(p)  # norms, biases, positions, [CLS]: no decay
        groups = [{"params": decay, "weight_decay": self.cfg.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=self.cfg.lr, betas=self.cfg.betas)

    def configure_schedulers(self, optimizers):
        c = self.cfg
        # nanoGPT's warm-up (step k < W: (k + 1) / (W + 1)) and cosine to min_lr_ratio at total_steps; without
        # total_steps the multiplier stays at 1 after warm-up.
        schedule = (WarmupCosine(c.warmup_steps, c.total_steps, c.min_lr_ratio) if c.total_steps > 0
                    else WarmupCosine(c.warmup_steps, c.warmup_steps, 1.0))
        return [torch.optim.lr_scheduler.LambdaLR(optimizers[0], schedule)]

    def trainable_modules(self):
        return [self.model]

    def export_model(self):
        return self.model, {"name": self.cfg.model, "kwargs": self.cfg.model_args}


@TASKS.register("image_classifier", config=ImageClassifierConfig)
def image_classifier(cfg: ImageClassifierConfig, data_dir: str | None = None) -> ImageClassifier:
    """Builds the image classification task from its config."""
    return ImageClassifier(cfg, data_dir=data_dir)

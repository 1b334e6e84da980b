"""``ict_prior``: training ICT's appearance-prior transformer through the shared engine.

Each sample is a photo crop (the inpainting tasks' data: :class:`~torchworks.inpainting.task.PhotoSplit`) and a
LaMa training mask. The crop is area-downsampled to the prior's token grid and quantized to the palette; the
tokens covered by the hole (max-pool cover), plus ``extra_mask`` of the others at random (BERT-style, so the model
also learns from context away from holes), are hidden, and the loss is cross-entropy on the hidden tokens. The
palette is fitted once with k-means on pixels of the downsampled training photos (``palette_pixels`` of them,
seeded) and saved in the model, so the exported prior carries it.

References:
    Wan et al., ICCV 2021, section 3.2; raywzy/ICT ``Transformer/main.py`` (AdamW lr 3e-4, betas (0.9, 0.95)).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from torchworks.core.checkpoint import build_model
from torchworks.core.registry import TASKS
from torchworks.engine.task import Task
from torchworks.inpainting.ict.palette import downsample, fit_palette, hole_tokens, quantize
from torchworks.inpainting.ict.prior import masked_token_loss
from torchworks.inpainting.task import PhotoDataConfig, PhotoSplit

__all__ = ["IctPriorConfig", "IctPriorTask"]


@dataclass
class IctPriorConfig(PhotoDataConfig):
    """Settings of ``ict_prior`` (the data fields are :class:`PhotoDataConfig`'s).

    Attributes:
        model, model_args: a registered ``ict_prior_*`` transformer and overrides.
        extra_mask: fraction of the visible tokens also hidden at random in training.
        palette_pixels: pixels sampled for the k-means palette.
        lr, betas, weight_decay: AdamW (ICT: 3e-4, (0.9, 0.95), 0).
    """

    model: str = "ict_prior_small"
    model_args: dict[str, Any] = field(default_factory=dict)
    extra_mask: float = 0.15
    palette_pixels: int = 200_000
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.extra_mask < 1.0:
            raise ValueError(f"extra_mask must be in [0, 1), got {self.extra_mask}")
        self.betas = tuple(self.betas)


class IctPriorTask(Task):
    """Masked-token training of an :class:`~torchworks.inpainting.ict.prior.AppearancePrior`."""

    monitor = "val/loss"

    def __init__(self, cfg: IctPriorConfig, data_dir: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.prior = build_model(cfg.model, **cfg.model_args)
        self.photos = PhotoSplit(cfg)
        self._palette_ready = False

    def _ensure_palette(self) -> None:
        """Fits the palette on the training photos (deterministic; a resumed run loads the same values)."""
        if self._palette_ready:
            return
        size = self.prior.size
        rng = np.random.default_rng((self.cfg.seed, 77))
        lows = [downsample(torch.from_numpy(p).permute(2, 0, 1)[None].float() / 255.0, size)
                for p in self.photos.photos()[0]]
        pixels = torch.cat([lo.permute(0, 2, 3, 1).reshape(-1, 3) for lo in lows])
        pick = torch.from_numpy(rng.choice(len(pixels), min(self.cfg.palette_pixels, len(pixels)), replace=False))
        self.prior.palette.copy_(fit_palette(pixels[pick], self.prior.vocab, seed=self.cfg.seed))
        self._palette_ready = True

    def train_dataset(self) -> Dataset:
        self._ensure_palette()
        return self.photos.train()

    def val_dataset(self) -> Dataset | None:
        self._ensure_palette()
        return self.photos.val()

    def test_dataset(self) -> Dataset | None:
        return self.val_dataset()

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # a resumed palette wins
        self._palette_ready = True
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _tokens(self, image: torch.Tensor, mask: torch.Tensor, extra: float) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.prior.size
        tokens = quantize(downsample(image, size), self.prior.palette)
        unknown = hole_tokens(mask, size)
        if extra > 0:
            unknown |= torch.rand(unknown.shape, device=unknown.device) < extra
        return tokens, unknown

    def training_step(self, batch, opt=None):
        image, mask = batch
        tokens, unknown = self._tokens(image, mask, self.cfg.extra_mask)
        logits = self.prior(tokens, unknown)
        loss = masked_token_loss(logits, tokens, unknown)
        with torch.no_grad():
            acc = (logits.argmax(-1) == tokens)[unknown].float().mean()
        return {"loss": loss, "token_acc": acc, "hidden": unknown.float().mean()}

    @torch.no_grad()
    def validation_step(self, batch):
        image, mask = batch
        tokens, unknown = self._tokens(image, mask, 0.0)
        logits = self.prior(tokens, unknown)
        pred = logits.argmax(-1)
        # colour error of the argmax palette image in the hole, as a PSNR on the token grid
        err = ((self.prior.palette[pred] - self.prior.palette[tokens]) ** 2).sum(-1)[unknown].mean() / 3
        return {"loss": masked_token_loss(logits, tokens, unknown),
                "token_acc": (pred == tokens)[unknown].float().mean(),
                "psnr_tokens": -10 * torch.log10(err.clamp_min(1e-10))}

    def configure_optimizers(self):
        c = self.cfg
        return torch.optim.AdamW(self.prior.parameters(), lr=c.lr, betas=c.betas, weight_decay=c.weight_decay)

    def trainable_modules(self):
        return [self.prior]

    def export_model(self):
        return self.prior, {"name": self.cfg.model, "kwargs": self.cfg.model_args}


@TASKS.register("ict_prior", config=IctPriorConfig)
def ict_prior(cfg: IctPriorConfig, data_dir: str | None = None) -> IctPriorTask:
    """ICT appearance-prior transformer (masked palette tokens)."""
    return IctPriorTask(cfg, data_dir=data_dir)

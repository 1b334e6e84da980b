"""Attention-rollout pictures for a trained ViT: each image next to the patches its [CLS] token drew on.

matplotlib (the ``[train]`` extra) is imported only when a figure is drawn.

References:
    Abnar and Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020 (attention rollout).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from torchworks.transformer.vit.model import ViT, attention_rollout

__all__ = ["rollout_maps", "save_rollout_grid"]


@torch.no_grad()
def rollout_maps(model: ViT, images: Tensor, residual: float = 0.5) -> tuple[Tensor, Tensor]:
    """Predictions and [CLS] rollout maps upsampled to the image size.

    Args:
        model: a :class:`ViT` (put in eval mode here).
        images: normalised model input (B, C, H, W) float.
        residual: weight of the skip connection in the rollout.

    Returns:
        logits (B, K) and rollout maps (B, H, W), each rescaled to [0, 1] for display (nearest upsampling, so
        every patch stays a visible square).
    """
    model.eval()
    logits, maps = model(images, need_weights=True)
    r = attention_rollout(maps, residual)  # (B, h, w)
    r = r - r.amin(dim=(1, 2), keepdim=True)
    r = r / r.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    return logits, F.interpolate(r[:, None], size=images.shape[-2:], mode="nearest")[:, 0]


def save_rollout_grid(path: str | Path, rows: Sequence[tuple[str, Tensor, Tensor, Sequence[str]]],
                      dpi: int = 80) -> Path:
    """Draws one row of image / rollout-overlay pairs per data set and saves a PNG.

    Args:
        path: output PNG.
        rows: ``(row_title, pictures, maps, captions)``: pictures (B, C, H, W) float in [0, 1] (C = 1 or 3),
            maps (B, H, W) in [0, 1] from :func:`rollout_maps`, one caption per picture.
        dpi: resolution (the default keeps the file small).

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(2 * len(rows), cols, figsize=(1.45 * cols, 3.1 * len(rows)), squeeze=False)
    for i, (title, pictures, maps, captions) in enumerate(rows):
        for j in range(cols):
            top, bottom = axes[2 * i, j], axes[2 * i + 1, j]
            top.axis("off")
            bottom.axis("off")
            if j >= len(pictures):
                continue
            pic = pictures[j].permute(1, 2, 0).clamp(0, 1).cpu().numpy()
            gray = pic.shape[-1] == 1
            top.imshow(pic[..., 0] if gray else pic, cmap="gray" if gray else None, interpolation="nearest")
            top.set_title(captions[j], fontsize=7)
            bottom.imshow(pic.mean(-1), cmap="gray", interpolation="nearest")
            bottom.imshow(maps[j].cpu().numpy(), cmap="inferno", alpha=0.6, interpolation="nearest")
        axes[2 * i, 0].text(-0.15, 0.5, title, transform=axes[2 * i, 0].transAxes, rotation=90, va="center",
                            ha="right", fontsize=8)
        axes[2 * i + 1, 0].text(-0.15, 0.5, "rollout", transform=axes[2 * i + 1, 0].transAxes, rotation=90,
                                va="center", ha="right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path

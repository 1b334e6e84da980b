"""The colour palette of ICT's appearance prior: k-means centres in RGB, pixels as palette indices.

ICT (Wan et al., ICCV 2021) represents the low-resolution image as tokens: every pixel of the 32x32 downsampled
photo becomes the index of its nearest colour in a palette (iGPT's 512 ImageNet clusters in the paper). Here the
palette is fitted on the training photos themselves with k-means (k-means++ seeding, then Lloyd iterations), so
no external file is needed and the palette matches the domain.

References:
    Wan et al., "High-Fidelity Pluralistic Image Completion with Transformers", ICCV 2021 (section 3.1).
    Arthur & Vassilvitskii, "k-means++: The Advantages of Careful Seeding", SODA 2007.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["downsample", "fit_palette", "hole_tokens", "quantize", "dequantize"]


def fit_palette(pixels: Tensor, k: int, iters: int = 30, seed: int = 0) -> Tensor:
    """k-means centres of RGB pixels.

    Args:
        pixels: (N, 3) float colours in [0, 1].
        k: palette size (2 <= k <= N).
        iters: Lloyd iterations after the k-means++ seeding.
        seed: seeds the k-means++ draws.

    Returns:
        (k, 3) float32 centres in [0, 1], sorted by luminance so indices are stable between runs.
    """
    if pixels.dim() != 2 or pixels.shape[1] != 3:
        raise ValueError(f"pixels must be (N, 3), got {tuple(pixels.shape)}")
    if not 2 <= k <= pixels.shape[0]:
        raise ValueError(f"palette size must be in 2..{pixels.shape[0]} (the number of pixels), got {k}")
    x = pixels.float()
    g = torch.Generator().manual_seed(seed)
    centres = x[torch.randint(len(x), (1,), generator=g)]
    d2 = torch.cdist(x, centres).squeeze(1) ** 2
    for _ in range(1, k):  # k-means++: the next centre with probability proportional to the squared distance
        nxt = x[torch.multinomial(d2 / d2.sum() if d2.sum() > 0 else torch.ones_like(d2), 1, generator=g)]
        centres = torch.cat([centres, nxt])
        d2 = torch.minimum(d2, ((x - nxt) ** 2).sum(1))
    for _ in range(iters):
        assign = torch.cdist(x, centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).unsqueeze(1).float()
        empty = counts.squeeze(1) == 0
        centres = torch.where(empty.unsqueeze(1), centres, sums / counts.clamp_min(1))
    lum = centres @ torch.tensor([0.299, 0.587, 0.114])
    return centres[lum.argsort()].contiguous()


def downsample(image: Tensor, size: int) -> Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 3, size, size) by area averaging (ICT uses bilinear; area does not alias)."""
    return F.interpolate(image, size=(size, size), mode="area")


def hole_tokens(mask: Tensor, size: int) -> Tensor:
    """(B, 1, H, W) hole mask -> (B, size * size) bool: a token is unknown if ANY pixel under it is a hole.

    The conservative cover (max-pooling rather than ICT's nearest resize) means no hole pixel is guided by a
    token that averaged hole content into its colour.
    """
    return (F.adaptive_max_pool2d(mask.float(), (size, size)) > 0).flatten(1)


def quantize(low: Tensor, palette: Tensor) -> Tensor:
    """(B, 3, h, w) colours -> (B, h * w) long indices of the nearest palette entries (squared RGB distance)."""
    flat = low.permute(0, 2, 3, 1).reshape(-1, 3)  # (B*h*w, 3)
    return torch.cdist(flat, palette.to(flat)).argmin(1).view(low.shape[0], -1)


def dequantize(tokens: Tensor, palette: Tensor, size: int) -> Tensor:
    """(B, size * size) indices -> (B, 3, size, size) palette colours."""
    return palette[tokens].view(tokens.shape[0], size, size, 3).permute(0, 3, 1, 2).contiguous()

"""The standard small-image augmentations, on whole batches: random crop after zero padding, horizontal flip.

Torch ops on a (B, C, H, W) batch (no torchvision, no per-image Python loop): every image gets its own crop
offset and flip, drawn on the CPU so that a seed gives the same batch on any device. Zero padding is black
before normalisation, as torchvision's ``RandomCrop(size, padding=p)`` pads.

References:
    Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep Convolutional Neural Networks", NIPS 2012
    (random crops and horizontal reflections); He et al., "Deep Residual Learning", CVPR 2016, section 4.2 (the
    CIFAR recipe: 4-pixel padding, 32 x 32 crop, flip).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["crop_flip", "random_crop_flip"]


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

"""The :class:`Inpainter` interface and the mask operations every method shares (dilation, feathering, padding).

Conventions: images are RGB float32 in [0, 1], (B, 3, H, W); masks are (B, 1, H, W) with **1 = hole**. An
inpainter only *fills*; compositing (keeping every pixel outside the hole bit for bit) is done once, by the
pipeline in :mod:`torchworks.inpainting.pipeline`, so no method can break that guarantee.
"""

from __future__ import annotations

import abc

import torch
import torch.nn.functional as F

from torchworks.core.errors import TorchworksError


class MaskError(TorchworksError, ValueError):
    """A mask that cannot be used: wrong size, no hole at all, or nothing but hole."""


class InpaintInputError(TorchworksError, ValueError):
    """An image or mask of an unsupported type, shape, dtype or value range."""


class MissingExtraError(TorchworksError, ImportError):
    """A method needs an optional package that is not installed; the message says which one."""


class Inpainter(abc.ABC):
    """A hole-filling method.

    Subclasses implement :meth:`fill`. Class attributes tell the pipeline how to call it:

    Attributes:
        name: registry name.
        pad_mod: the fill runs on sizes that are multiples of this (learned models with 3 stride-2 stages: 8);
            the pipeline pads by reflection and crops back.
        working_size: longest side the method was made for (learned models: their training size times a few);
            larger crops are downscaled for the fill and the fill upscaled back. ``None`` = any size.
        default_dilate: hole dilation in pixels used when the caller passes none (learned models leave colour
            fringes on tight masks, lama #311/#320, so they will default to a few pixels; classical methods to 0).
        default_feather: whether the dilation ring is blended linearly by default.
    """

    name: str = "inpainter"
    pad_mod: int = 1
    working_size: int | None = None
    default_dilate: int = 0
    default_feather: bool = False

    @abc.abstractmethod
    def fill(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Predicts the hole.

        Args:
            image: (B, 3, H, W) float32 RGB in [0, 1]; hole pixels hold arbitrary values and must be ignored.
            mask: (B, 1, H, W) float32 in {0, 1}, 1 = hole; every image has at least one known pixel.

        Returns:
            (B, 3, H, W) float32 in [0, 1]; only values inside the hole are used.
        """

    def run(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:meth:`fill` on inputs padded (reflect) to a multiple of :attr:`pad_mod`, cropped back.

        Args:
            image: (B, 3, H, W) float32 RGB in [0, 1].
            mask: (B, 1, H, W) float32 in {0, 1}, 1 = hole.

        Returns:
            (B, 3, H, W) float32 in [0, 1], trustworthy inside the hole only.
        """
        h, w = image.shape[-2:]
        ph, pw = (-h) % self.pad_mod, (-w) % self.pad_mod
        if ph or pw:
            # Reflection needs pad < size; replicate covers the tiny images where it does not hold.
            mode = "reflect" if ph < h and pw < w else "replicate"
            image = F.pad(image, (0, pw, 0, ph), mode=mode)
            mask = F.pad(mask, (0, pw, 0, ph), mode="constant", value=0.0)
        out = self.fill(image, mask)
        return out[..., :h, :w].clamp(0.0, 1.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _grow(mask: torch.Tensor, step: int) -> torch.Tensor:
    # Alternating a 3x3 square and a 3x3 cross gives an octagonal disk: close to round at a fraction of the cost
    # of a (2r+1)^2 convolution, which matters on multi-megapixel masks.
    if step % 2 == 1:
        return F.max_pool2d(mask, 3, stride=1, padding=1)
    return torch.maximum(F.max_pool2d(mask, (3, 1), stride=1, padding=(1, 0)),
                         F.max_pool2d(mask, (1, 3), stride=1, padding=(0, 1)))


def dilate_mask(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Grows the hole by ``radius`` pixels (octagonal structuring element).

    Args:
        mask: (B, 1, H, W) float32 or bool, 1 = hole.
        radius: pixels to grow, >= 0.

    Returns:
        (B, 1, H, W) float32 in {0, 1}.
    """
    return blend_weights(mask, radius, feather=False)


def blend_weights(mask: torch.Tensor, dilate: int, feather: bool) -> torch.Tensor:
    """Per-pixel weight of the fill when compositing: 1 in the hole, 0 outside its dilation.

    With ``feather`` the weight falls linearly across the dilation ring (``(d + 1 - k) / (d + 1)`` at ring step
    ``k``), so a fill meets the photo without a seam; without it the ring is filled fully (weight 1).

    Args:
        mask: (B, 1, H, W) float32 or bool, 1 = hole.
        dilate: ring width in pixels, >= 0.
        feather: ramp the ring linearly instead of filling it fully.

    Returns:
        (B, 1, H, W) float32 in [0, 1]; > 0 exactly on the dilated hole.
    """
    if not isinstance(dilate, int) or dilate < 0:
        raise ValueError(f"dilate must be a non-negative integer (pixels), got {dilate!r}")
    cur = mask.float()
    acc = cur.clone()
    for step in range(1, dilate + 1):
        cur = _grow(cur, step)
        acc += cur
    if not feather:
        return cur
    # acc counts in how many of the nested dilations a pixel lies: d + 1 in the hole, d + 1 - k at ring step k.
    return acc / (dilate + 1)


def check_mask(mask: torch.Tensor) -> None:
    """Raises :class:`MaskError` when an image of the batch has no hole or no known pixel.

    Args:
        mask: (B, 1, H, W) bool or {0, 1} float, 1 = hole.
    """
    area = mask.float().flatten(1).mean(1)
    for i, a in enumerate(area.tolist()):
        where = f" (image {i} of the batch)" if mask.shape[0] > 1 else ""
        if a == 0.0:
            raise MaskError(f"the mask has no hole pixels{where}: nothing to inpaint (holes are 1/white, "
                            "the rest 0/black)")
        if a == 1.0:
            raise MaskError(f"the mask covers the whole image{where}: no known pixel is left to inpaint from; "
                            "was the mask inverted? (holes are 1/white)")

"""Running an inpainter on photos of any size: crop-around-hole and resize strategies, and exact compositing.

The pipeline works on images in their *native* dtype (uint8, uint16 or float) and converts only the crops it
fills to float, so a 12-megapixel photo with a small hole costs a crop, not the photo. Every pixel outside the
(dilated) hole is copied from the input, so it is bit-exact whatever the method does.

Strategies (``strategy=``):
    ``"full"``: fill the whole image at its size.
    ``"crop"``: fill one crop per group of hole components: their box plus ``margin`` pixels of context, grown to
        a multiple of the method's ``pad_mod`` (IOPaint's Crop strategy, margin 128 there too).
    ``"resize"``: fill a downscaled copy of the whole image (longest side ``resize_limit``, IOPaint: 1280) and
        upscale the fill into the hole.
    ``"auto"`` (default): ``"crop"`` when the longest side exceeds ``crop_trigger`` (IOPaint: 800) and the crops
        cover under half of the image, else ``"full"``; any crop longer than the method's ``working_size`` is
        resized for the fill. Classical methods have no working size, so they always run at full resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from torchworks.inpainting.base import Inpainter, blend_weights

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open
STRATEGIES = ("auto", "full", "crop", "resize")


def hole_boxes(hole: torch.Tensor, margin: int) -> list[Box]:
    """Boxes around the hole's connected components, grown by ``margin`` and merged while they overlap.

    Args:
        hole: (H, W) bool, True = hole.
        margin: context in pixels around each component.

    Returns:
        Disjoint boxes clipped to the image; each contains its components and ``margin`` pixels around them.
    """
    h, w = hole.shape
    boxes: list[Box] = []
    try:
        import cv2

        n, _, stats, _ = cv2.connectedComponentsWithStats(hole.to(torch.uint8).numpy(), connectivity=8)
        for x, y, bw, bh, _area in stats[1:n].tolist():
            boxes.append((y, y + bh, x, x + bw))
    except ImportError:  # without OpenCV: one box around the whole hole
        ys, xs = torch.nonzero(hole.any(1)).flatten(), torch.nonzero(hole.any(0)).flatten()
        if len(ys):
            boxes.append((int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1))
    boxes = [(max(y0 - margin, 0), min(y1 + margin, h), max(x0 - margin, 0), min(x1 + margin, w))
             for y0, y1, x0, x1 in boxes]
    merged = True
    while merged:  # few boxes in practice; quadratic merging is fine
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]:
                    boxes[i] = (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes


def grow_to_multiple(box: Box, mod: int, h: int, w: int) -> Box:
    """Grows ``box`` to sides that are multiples of ``mod``, inside an (h, w) image when it fits.

    Growing with real context beats padding; where the image is too small, the method's own reflect padding
    takes over (see :meth:`Inpainter.run`).
    """
    y0, y1, x0, x1 = box

    def grow(a: int, b: int, size: int) -> tuple[int, int]:
        extra = (-(b - a)) % mod
        if b - a + extra > size:
            return a, b
        b2 = min(b + extra, size)
        return a - (extra - (b2 - b)), b2

    y0, y1 = grow(y0, y1, h)
    x0, x1 = grow(x0, x1, w)
    return y0, y1, x0, x1


def plan_boxes(hole: torch.Tensor, inpainter: Inpainter, strategy: str, margin: int, crop_trigger: int) -> list[Box]:
    """The regions to fill for one image.

    Args:
        hole: (H, W) bool, True = hole (the dilation ring must fit in ``margin``).
        inpainter: the method (its ``pad_mod`` aligns the crops).
        strategy: one of :data:`STRATEGIES`.
        margin: context pixels around each hole component.
        crop_trigger: ``"auto"`` crops only images whose longest side exceeds this.
    """
    h, w = hole.shape
    whole = [(0, h, 0, w)]
    if strategy in ("full", "resize") or (strategy == "auto" and max(h, w) <= crop_trigger):
        return whole
    boxes = [grow_to_multiple(b, inpainter.pad_mod, h, w) for b in hole_boxes(hole, margin)]
    area = sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in boxes)
    if strategy == "auto" and area > 0.5 * h * w:
        return whole
    return boxes


def _bbox(region: torch.Tensor) -> Box:
    """Bounding box of the True pixels of an (H, W) bool tensor (which has at least one)."""
    ys, xs = torch.nonzero(region.any(1)).flatten(), torch.nonzero(region.any(0)).flatten()
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1


def fill_resized(inpainter: Inpainter, image: torch.Tensor, mask: torch.Tensor, limit: int | None,
                 region: Box) -> torch.Tensor:
    """Runs the method at a longest side of at most ``limit``; returns its fill over ``region`` at full size.

    Args:
        image: (B, 3, H, W) float32 in [0, 1].
        mask: (B, 1, H, W) float32 in {0, 1}, 1 = hole.
        limit: longest side for the fill; ``None`` or a larger image runs at full size.
        region: (y0, y1, x0, x1) part of the image whose fill is wanted (the hole's box).

    Returns:
        (B, 3, y1 - y0, x1 - x0) float32 in [0, 1], to be used inside the hole only.
    """
    y0, y1, x0, x1 = region
    h, w = image.shape[-2:]
    if limit is None or max(h, w) <= limit:
        return inpainter.run(image, mask)[..., y0:y1, x0:x1]
    s = limit / max(h, w)
    size = (max(round(h * s), 1), max(round(w * s), 1))
    small = F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
    # Any hole pixel marks its low-res cell as hole, so thin scratches do not vanish when downscaling.
    small_mask = (F.adaptive_max_pool2d(mask, size) > 0).float()
    fill = inpainter.run(small, small_mask)
    # Upsample only the region: grid_sample at the pixel centres F.interpolate(align_corners=False) would use,
    # which on a 12-megapixel photo with a small hole is thousands of times less work than a full upsample.
    ys = (torch.arange(y0, y1, dtype=torch.float32) + 0.5) / h * 2 - 1
    xs = (torch.arange(x0, x1, dtype=torch.float32) + 0.5) / w * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)[None].expand(fill.shape[0], -1, -1, -1)
    up = F.grid_sample(fill, grid, mode="bicubic", padding_mode="border", align_corners=False)
    return up.clamp(0.0, 1.0)


def _scale_of(dtype: torch.dtype) -> float:
    if dtype == torch.uint8:
        return 255.0
    if dtype in (torch.uint16, torch.int32):
        return 65535.0
    if dtype.is_floating_point:
        return 1.0
    raise ValueError(f"unsupported image dtype {dtype}; use uint8, uint16 or float in [0, 1]")


def inpaint_native(inpainter: Inpainter, image: torch.Tensor, hole: torch.Tensor, *, dilate: int = 0,
                   feather: bool = False, strategy: str = "auto", margin: int = 128, crop_trigger: int = 800,
                   resize_limit: int | None = None) -> torch.Tensor:
    """Fills the hole of each image and composites exactly.

    Args:
        inpainter: the method.
        image: (B, C, H, W) uint8 (0-255), uint16 (0-65535) or float (0-1); C = 1 (gray), 2 (gray + alpha),
            3 (RGB) or 4 (RGBA). Alpha is never changed.
        hole: (B, 1, H, W) bool, True = hole; every image has a hole and a known pixel.
        dilate: grow the hole by this many pixels before filling.
        feather: blend the dilation ring linearly instead of replacing it.
        strategy: one of :data:`STRATEGIES` (see the module docstring).
        margin: context pixels around each crop (raised to ``dilate + 1`` so the ring fits in its crop).
        crop_trigger: ``"auto"`` crops only images whose longest side exceeds this.
        resize_limit: longest side for the fill; default the method's ``working_size`` (``"resize"``: 1280).

    Returns:
        (B, C, H, W) tensor of the input's dtype; equal to ``image`` wherever the dilated hole is not.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if image.dim() != 4 or image.shape[1] not in (1, 2, 3, 4):
        raise ValueError(f"image must be (B, C, H, W) with C in 1..4, got {tuple(image.shape)}")
    scale = _scale_of(image.dtype)
    ncol = 1 if image.shape[1] <= 2 else 3
    limit = resize_limit or inpainter.working_size or (1280 if strategy == "resize" else None)
    margin = max(margin, dilate + 1)
    out = image.clone()
    for b in range(image.shape[0]):
        for y0, y1, x0, x1 in plan_boxes(hole[b, 0], inpainter, strategy, margin, crop_trigger):
            native = image[b:b + 1, :ncol, y0:y1, x0:x1]
            col = native.to(torch.float32) / scale  # (1, ncol, h, w)
            alpha = blend_weights(hole[b:b + 1, :, y0:y1, x0:x1], dilate, feather)
            ry0, ry1, rx0, rx1 = _bbox(alpha[0, 0] > 0)  # blend only where the hole is, not the whole crop
            fill = fill_resized(inpainter, col.expand(-1, 3, -1, -1), (alpha > 0).float(), limit,
                                (ry0, ry1, rx0, rx1))
            if ncol == 1:  # gray in, gray out: the methods treat channels alike, so the mean loses nothing
                fill = fill.mean(1, keepdim=True)
            a = alpha[..., ry0:ry1, rx0:rx1]
            keep = native[..., ry0:ry1, rx0:rx1]
            blended = a * fill + (1.0 - a) * col[..., ry0:ry1, rx0:rx1]
            if scale != 1.0:
                blended = (blended * scale).round().clamp(0, scale).to(image.dtype)
            else:
                blended = blended.to(image.dtype)
            out[b:b + 1, :ncol, y0 + ry0:y0 + ry1, x0 + rx0:x0 + rx1] = torch.where(a > 0, blended, keep)
    return out

"""Inpainting hole generators: LaMa's irregular strokes and boxes, their mixture, centre squares, outpainting bands.

Every generator is seeded and deterministic: ``gen(h, w, seed=s)`` returns the same mask on every machine, and
``gen.batch(n, h, w, seed=s)`` gives sample ``i`` the stream ``(s, i)``, so a batch does not depend on its size.
Masks are float32 tensors with **1 = hole** (the package convention), shape (1, H, W) or (B, 1, H, W).

Strokes are rasterised in NumPy (a "capsule", a segment with round caps), which is what ``cv2.line`` draws for
thick lines, so this module needs neither OpenCV nor any other optional extra.

References:
    Suvorov et al., "Resolution-robust Large Mask Inpainting with Fourier Convolutions" (LaMa), WACV 2022;
    reference generators in advimman/lama ``saicinpainting/training/data/masks.py``, evaluation sets in
    ``configs/data_gen/random_{thin,medium,thick}_{256,512}.yaml`` (``max_tamper_area: 0.5``), training masks
    in ``configs/training/data/abl-04-256-mh-dist.yaml`` (large) and ``abl-02-thin-bb.yaml`` (narrow).
    Pathak et al., "Context Encoders", CVPR 2016 (centre square of a quarter of the area).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from torchworks.core.registry import MASKS

Shape = tuple[int, int]


def _rng(seed: int | Sequence[int] | np.random.Generator | None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def line_radius(thickness: int) -> float:
    """The capsule radius that best reproduces ``cv2.line(..., thickness)`` (measured: mean area within 2 %).

    OpenCV widens odd thicknesses by half a pixel and fills boundary pixels of its polygon, so a plain
    ``thickness / 2`` undercounts thin strokes by up to 40 % and would shift LaMa's coverage statistics.
    """
    return thickness / 2.0 + 0.5 + 0.25 * (thickness % 2)


def draw_capsule(canvas: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], radius: float) -> None:
    """Sets to 1 every pixel whose centre lies within ``radius`` of the segment ``p0``-``p1`` (in place).

    Args:
        canvas: (H, W) float32 array, modified in place.
        p0, p1: segment end points as (x, y) pixel coordinates.
        radius: half the stroke width in pixels (also the radius of the round caps).
    """
    h, w = canvas.shape
    r = float(radius)
    x0, y0 = p0
    x1, y1 = p1
    xa, xb = max(int(math.floor(min(x0, x1) - r)), 0), min(int(math.ceil(max(x0, x1) + r)) + 1, w)
    ya, yb = max(int(math.floor(min(y0, y1) - r)), 0), min(int(math.ceil(max(y0, y1) + r)) + 1, h)
    if xa >= xb or ya >= yb:
        return
    ys, xs = np.mgrid[ya:yb, xa:xb].astype(np.float32)
    dx, dy = x1 - x0, y1 - y0
    seg_len2 = dx * dx + dy * dy
    # Projection of each pixel onto the segment, clamped to its ends, gives the nearest segment point.
    t = np.zeros_like(xs) if seg_len2 == 0 else np.clip(((xs - x0) * dx + (ys - y0) * dy) / seg_len2, 0.0, 1.0)
    d2 = (xs - (x0 + t * dx)) ** 2 + (ys - (y0 + t * dy)) ** 2
    canvas[ya:yb, xa:xb][d2 <= r * r] = 1.0


def irregular_mask(shape: Shape, rng: np.random.Generator, max_angle: int = 4, max_len: int = 60,
                   max_width: int = 20, min_times: int = 0, max_times: int = 10) -> np.ndarray:
    """LaMa's random brush strokes (``make_random_irregular_mask``, line variant).

    Each of ``times ~ U{min_times..max_times}`` strokes starts at a random pixel and chains 1-5 segments with
    ``angle = 0.01 + U{0..max_angle-1}`` radians (mirrored on even strokes), ``length = 10 + U{0..max_len-1}``
    and ``width = 5 + U{0..max_width-1}`` pixels; end points are clipped to the image.

    Returns:
        (H, W) float32 array in {0, 1}, 1 = hole.
    """
    h, w = shape
    mask = np.zeros((h, w), np.float32)
    for i in range(int(rng.integers(min_times, max_times + 1))):
        x, y = int(rng.integers(w)), int(rng.integers(h))
        for _ in range(1 + int(rng.integers(5))):
            angle = 0.01 + int(rng.integers(max_angle))
            if i % 2 == 0:
                angle = 2 * math.pi - angle
            length = 10 + int(rng.integers(max_len))
            width = 5 + int(rng.integers(max_width))
            # LaMa truncates toward zero and clips to [0, size] (not size - 1); kept for the same statistics.
            ex = int(np.clip(int(x + length * math.sin(angle)), 0, w))
            ey = int(np.clip(int(y + length * math.cos(angle)), 0, h))
            draw_capsule(mask, (x, y), (ex, ey), line_radius(width))
            x, y = ex, ey
    return mask


def box_mask(shape: Shape, rng: np.random.Generator, margin: int = 10, bbox_min_size: int = 30,
             bbox_max_size: int = 100, min_times: int = 0, max_times: int = 3) -> np.ndarray:
    """LaMa's random rectangles (``make_random_rectangle_mask``): sides in ``[min, max)``, ``margin`` from borders.

    Returns:
        (H, W) float32 array in {0, 1}, 1 = hole.
    """
    h, w = shape
    mask = np.zeros((h, w), np.float32)
    hi = min(bbox_max_size, h - 2 * margin, w - 2 * margin)
    if hi <= bbox_min_size:
        raise ValueError(f"a {h}x{w} image cannot hold boxes of {bbox_min_size}..{bbox_max_size} px "
                         f"with margin {margin}")
    for _ in range(int(rng.integers(min_times, max_times + 1))):
        bw, bh = int(rng.integers(bbox_min_size, hi)), int(rng.integers(bbox_min_size, hi))
        x = int(rng.integers(margin, w - margin - bw + 1))
        y = int(rng.integers(margin, h - margin - bh + 1))
        mask[y:y + bh, x:x + bw] = 1.0
    return mask


def center_mask(shape: Shape, area_ratio: float = 0.25) -> np.ndarray:
    """A centred rectangle covering ``area_ratio`` of the image (Context Encoder: 0.25; LaMa's test-time
    ``DumbAreaMaskGenerator``: 0.225). Its sides are ``sqrt(area_ratio)`` times the image's.

    Returns:
        (H, W) float32 array in {0, 1}, 1 = hole.
    """
    if not 0.0 < area_ratio <= 1.0:
        raise ValueError(f"area_ratio must be in (0, 1], got {area_ratio}")
    h, w = shape
    s = math.sqrt(area_ratio)
    mh, mw = round(h * s), round(w * s)
    mask = np.zeros((h, w), np.float32)
    top, left = (h - mh) // 2, (w - mw) // 2
    mask[top:top + mh, left:left + mw] = 1.0
    return mask


def outpainting_mask(shape: Shape, rng: np.random.Generator, min_padding: float = 0.04, max_padding: float = 0.25,
                     side_probs: Sequence[float] = (0.5, 0.5, 0.5, 0.5)) -> np.ndarray:
    """Bands along the borders to extend (LaMa's ``OutpaintingMaskGenerator``).

    Each side (left, top, right, bottom) gets a band with probability ``side_probs[k]``, of a width drawn in
    ``[min_padding, max_padding)`` of the image side; when no side was drawn, one is chosen by those weights.

    Returns:
        (H, W) float32 array in {0, 1}, 1 = hole.
    """
    if not 0.0 <= min_padding <= max_padding <= 1.0 or max_padding == 0:
        raise ValueError(f"need 0 <= min_padding <= max_padding <= 1, got {min_padding}, {max_padding}")
    probs = np.asarray(side_probs, dtype=np.float64)
    if probs.shape != (4,) or probs.min() < 0 or probs.max() > 1 or probs.sum() == 0:
        raise ValueError(f"side_probs must be 4 probabilities, not all zero, got {list(side_probs)}")
    h, w = shape
    mask = np.zeros((h, w), np.float32)

    def band(side: int) -> None:
        size = h if side in (1, 3) else w
        n = int(rng.integers(int(min_padding * size), max(int(max_padding * size), int(min_padding * size) + 1)))
        region = {0: np.s_[:, :n], 1: np.s_[:n, :], 2: np.s_[:, w - n:], 3: np.s_[h - n:, :]}[side]
        mask[region] = 1.0

    drawn = [k for k in range(4) if rng.random() < probs[k]]
    for k in drawn or [int(rng.choice(4, p=probs / probs.sum()))]:
        band(k)
    return mask


_KINDS = {"irregular": irregular_mask, "box": box_mask, "outpainting": outpainting_mask}


@dataclass
class MaskGenerator:
    """A seeded mixture of mask kinds with an area cap (LaMa's ``MixedMaskGenerator`` + ``max_tamper_area``).

    Args:
        components: ``(kind, weight, kwargs)`` triples; kinds are ``"irregular"``, ``"box"``, ``"outpainting"``,
            ``"center"``. Weights are renormalised, as in LaMa.
        max_area: masks covering more than this fraction are redrawn (LaMa's eval sets use 0.5); ``None`` = no cap.
        max_tries: redraws before giving up with a ``ValueError``.
    """

    components: list[tuple[str, float, dict[str, Any]]]
    max_area: float | None = None
    max_tries: int = 100
    probs: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for kind, weight, _ in self.components:
            if kind not in _KINDS and kind != "center":
                raise ValueError(f"unknown mask kind {kind!r}; known: {sorted([*_KINDS, 'center'])}")
            if weight < 0:
                raise ValueError(f"weights must be >= 0, got {weight} for {kind!r}")
        weights = np.array([c[1] for c in self.components], dtype=np.float64)
        if weights.sum() <= 0:
            raise ValueError("at least one mask component needs a positive weight")
        self.probs = weights / weights.sum()

    def sample(self, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
        """One (H, W) float32 mask in {0, 1} drawn from ``rng`` (1 = hole)."""
        if height < 1 or width < 1:
            raise ValueError(f"mask size must be positive, got {height}x{width}")
        for _ in range(self.max_tries):
            kind, _, kwargs = self.components[int(rng.choice(len(self.components), p=self.probs))]
            mask = center_mask((height, width), **kwargs) if kind == "center" else \
                _KINDS[kind]((height, width), rng, **kwargs)
            # LaMa rejects masks over the cap (and, implicitly, empty ones); redrawing is the same conditional law.
            if mask.any() and (self.max_area is None or mask.mean() <= self.max_area):
                return mask
        raise ValueError(f"no mask with 0 < area <= {self.max_area} after {self.max_tries} draws at {height}x{width}")

    def __call__(self, height: int, width: int, seed: int | Sequence[int] | None = 0) -> torch.Tensor:
        """One mask as a (1, H, W) float32 tensor in {0, 1}, 1 = hole; the same ``seed`` gives the same mask."""
        return torch.from_numpy(self.sample(height, width, _rng(seed)))[None]

    def batch(self, n: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
        """``n`` masks as a (n, 1, H, W) float32 tensor; sample ``i`` uses the stream ``(seed, i)``."""
        return torch.stack([self(height, width, seed=(seed, i)) for i in range(n)])


def _irregular(**kw: Any) -> tuple[str, float, dict[str, Any]]:
    return ("irregular", 1.0, {"max_angle": 4, **kw})


# LaMa's evaluation sets (configs/data_gen/random_*_{256,512}.yaml): box weight 0.3 against irregular 1.
_EVAL_PRESETS: dict[str, list[tuple[str, float, dict[str, Any]]]] = {
    "thin_256": [_irregular(min_times=4, max_times=50, max_width=10, max_len=40)],
    "medium_256": [_irregular(min_times=4, max_times=5, max_width=50, max_len=100),
                   ("box", 0.3, {"margin": 0, "bbox_min_size": 10, "bbox_max_size": 50, "min_times": 1,
                                 "max_times": 5})],
    "thick_256": [_irregular(min_times=1, max_times=5, max_width=100, max_len=200),
                  ("box", 0.3, {"margin": 10, "bbox_min_size": 30, "bbox_max_size": 150, "min_times": 1,
                                "max_times": 3})],
    "thin_512": [_irregular(min_times=4, max_times=70, max_width=20, max_len=100)],
    "medium_512": [_irregular(min_times=4, max_times=10, max_width=100, max_len=200),
                   ("box", 0.3, {"margin": 0, "bbox_min_size": 30, "bbox_max_size": 150, "min_times": 1,
                                 "max_times": 5})],
    "thick_512": [_irregular(min_times=1, max_times=5, max_width=250, max_len=450),
                  ("box", 0.3, {"margin": 10, "bbox_min_size": 30, "bbox_max_size": 300, "min_times": 1,
                                "max_times": 4})],
}


def _make_preset(name: str, components: list[tuple[str, float, dict[str, Any]]], max_area: float | None,
                 doc: str) -> None:
    def factory(**overrides: Any) -> MaskGenerator:
        return MaskGenerator(**{"components": [(k, w, dict(kw)) for k, w, kw in components],
                                "max_area": max_area, **overrides})

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = doc
    MASKS.add(name, factory)


for _name, _comps in _EVAL_PRESETS.items():
    _make_preset(_name, _comps, 0.5, f"LaMa evaluation masks random_{_name} (area capped at 50 %).")
_make_preset("lama_train_large", [
    _irregular(min_times=1, max_times=5, max_width=100, max_len=200),
    ("box", 1.0, {"margin": 10, "bbox_min_size": 30, "bbox_max_size": 150, "min_times": 1, "max_times": 4}),
], None, "LaMa training masks abl-04 ('large masks', 256 px crops), no area cap.")
_make_preset("lama_train_narrow", [
    _irregular(min_times=4, max_times=12, max_width=40, max_len=80),
    ("box", 1.0, {"margin": 0, "bbox_min_size": 30, "bbox_max_size": 128, "min_times": 1, "max_times": 1}),
], None, "LaMa training masks abl-02 ('narrow', DeepFill-v2-like, 256 px crops), no area cap.")
_make_preset("box", [("box", 1.0, {"margin": 10, "bbox_min_size": 30, "bbox_max_size": 150, "min_times": 1,
                                   "max_times": 4})], 0.5, "LaMa's box masks at 256 px parameters, capped at 50 %.")


@MASKS.register("center")
def _center(area_ratio: float = 0.25) -> MaskGenerator:
    """Centre rectangle: a quarter of the area by default (Context Encoder); LaMa's test-time one is 0.225."""
    return MaskGenerator([("center", 1.0, {"area_ratio": area_ratio})])


_make_preset("outpainting", [("outpainting", 1.0, {})], None,
             "LaMa's outpainting bands: each side with p=0.5, 4-25 % of the side.")


def scaled_mask(gen: Any, size: int, mask_size: int, seed: int | Sequence[int]) -> torch.Tensor:
    """A (1, size, size) {0, 1} mask drawn at ``mask_size`` px and area-resized (>= 0.5 is hole); never empty.

    LaMa's mask sets are specified in pixels at 256 px; drawing there and resizing keeps their geometry (stroke
    widths, hole areas) at smaller sizes, where drawing directly gives strokes too wide for the image.
    """
    m = gen(mask_size, mask_size, seed=seed)[None]
    if mask_size != size:
        m = (torch.nn.functional.interpolate(m, size=(size, size), mode="area") >= 0.5).float()
    if not m.any():  # a thin mask can vanish when shrunk: fall back to a centre square
        q = size // 4
        m[..., q:size - q, q:size - q] = 1.0
    return m[0]

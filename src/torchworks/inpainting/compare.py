"""Every registered inpainter on one photo and mask: the filled images, hole PSNR and time, side by side.

A quick look (``torchworks demo`` shows it); :mod:`torchworks.inpainting.evaluate` is the harness that compares
methods over many photos and mask families.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from torchworks.core.registry import INPAINTERS
from torchworks.inpainting import metrics
from torchworks.inpainting.api import inpaint
from torchworks.inpainting.base import MissingExtraError
from torchworks.inpainting.learned import ALIASES

RAN, UNAVAILABLE, ERROR = "ran", "not available", "error"


@dataclass
class MethodResult:
    """One method on the photo.

    Attributes:
        name, kind: registry name and its ``kind`` metadata (``learned``, ``classical``, ...).
        status: ``ran``; ``not available`` (an optional dependency is missing: not a failure); ``error``.
        filled: the inpainted photo, uint8 (H, W, 3), when it ran.
        psnr_hole: PSNR in dB over the hole pixels against the original, when it ran.
        ms: wall time of the call in milliseconds, when it ran.
        note: why it did not run (the exception's message).
    """

    name: str
    kind: str
    status: str
    filled: np.ndarray | None = None
    psnr_hole: float | None = None
    ms: float | None = None
    note: str = ""


def registered_methods() -> tuple[list[str], dict[str, str]]:
    """The registered inpainters worth comparing, and the aliases left out.

    Returns:
        ``(methods, aliases)``: methods with learned ones first, then by name; ``{alias: target}`` for names that
        are another registered method under a plain name (running them again would repeat a row).
    """
    names = INPAINTERS.names()
    aliases = {a: t for a, t in ALIASES.items() if a in names and t in names}
    methods = sorted((n for n in names if n not in aliases),
                     key=lambda n: (INPAINTERS.meta(n).get("kind") != "learned", n))
    return methods, aliases


def compare_methods(photo: np.ndarray, hole: np.ndarray, methods: Sequence[str] | None = None,
                    progress: Callable[[str], None] | None = None) -> list[MethodResult]:
    """Runs each method on ``photo`` with its default settings and scores the hole.

    A method that raises is recorded (``not available`` for a missing optional dependency, ``error`` otherwise)
    and the others still run.

    Args:
        photo: uint8 (H, W, 3) RGB.
        hole: bool (H, W), True = hole.
        methods: registry names; None is :func:`registered_methods`.
        progress: called with each method's name before it runs.

    Returns:
        One :class:`MethodResult` per method, in the order given.

    Raises:
        ValueError: ``photo`` not uint8 (H, W, 3), or ``hole`` not (H, W) or without a hole pixel.
    """
    photo, hole = np.asarray(photo), np.asarray(hole, dtype=bool)
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"photo must be uint8 (H, W, 3), got {photo.dtype} {photo.shape}")
    if hole.shape != photo.shape[:2] or not hole.any():
        raise ValueError(f"hole must be (H, W) = {photo.shape[:2]} with at least one hole pixel, got {hole.shape}")
    if methods is None:
        methods = registered_methods()[0]
    mask = hole.astype(np.uint8) * 255
    target = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    hole_t = torch.from_numpy(hole)[None, None].float()
    results = []
    for name in methods:
        if progress is not None:
            progress(name)
        kind = INPAINTERS.meta(name).get("kind", "")
        start = time.perf_counter()
        try:
            filled = inpaint(photo, mask, name)
        except MissingExtraError as exc:
            results.append(MethodResult(name, kind, UNAVAILABLE, note=str(exc)))
            continue
        except Exception as exc:  # one broken method must not hide the others
            results.append(MethodResult(name, kind, ERROR, note=f"{type(exc).__name__}: {exc}"))
            continue
        ms = 1000 * (time.perf_counter() - start)
        pred = torch.from_numpy(filled).permute(2, 0, 1)[None].float() / 255
        psnr = float(metrics.psnr(pred, target, hole_t).mean())
        results.append(MethodResult(name, kind, RAN, filled, psnr, ms))
    return results

"""Shared input handling for the distillation losses: shape checks, list coercion, spatial alignment.

Every loss funnels its inputs through these helpers so that the error messages have one format
("<method>: student ... vs teacher ...") and the teacher side is always detached in one place.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from torchworks.core.errors import ShapeError

TensorOrList = Tensor | Sequence[Tensor]


def shape_str(t: Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def as_list(method: str, x: TensorOrList, side: str) -> list[Tensor]:
    """A tensor becomes a one-element list; a list/tuple is checked to hold tensors only."""
    if isinstance(x, Tensor):
        return [x]
    if isinstance(x, Sequence) and len(x) > 0 and all(isinstance(t, Tensor) for t in x):
        return list(x)
    raise ShapeError(f"{method}: {side} must be a tensor or a non-empty list of tensors, got {type(x).__name__}")


def check_pairs(
    method: str, g_s: TensorOrList, g_t: TensorOrList, ndim: int | None = 4, expected: int | None = None
) -> tuple[list[Tensor], list[Tensor]]:
    """Coerces both sides to lists, checks equal length, batch sizes and (optionally) dimensionality.

    Unlike RepDistiller's ``zip``, which silently drops the extra layers of the longer list, a length mismatch
    is an error here.
    """
    g_s, g_t = as_list(method, g_s, "student"), as_list(method, g_t, "teacher")
    if len(g_s) != len(g_t):
        raise ShapeError(
            f"{method}: got {len(g_s)} student feature maps but {len(g_t)} teacher feature maps "
            f"(student {[shape_str(s) for s in g_s]}, teacher {[shape_str(t) for t in g_t]})"
        )
    if expected is not None and len(g_s) != expected:
        raise ShapeError(f"{method}: expected {expected} feature pairs (from the constructor), got {len(g_s)}")
    for i, (s, t) in enumerate(zip(g_s, g_t, strict=True)):
        if ndim is not None and (s.dim() != ndim or t.dim() != ndim):
            raise ShapeError(
                f"{method}: pair {i} must be {ndim}-D, got student {shape_str(s)} and teacher {shape_str(t)}"
            )
        if s.shape[0] != t.shape[0]:
            raise ShapeError(
                f"{method}: pair {i} batch sizes differ: student {shape_str(s)} vs teacher {shape_str(t)}"
            )
    return g_s, [t.detach() for t in g_t]


def check_logits(method: str, z_s: Tensor, z_t: Tensor) -> tuple[Tensor, Tensor]:
    """Logits must be (B, K) on both sides with identical shape; returns the teacher detached."""
    if z_s.dim() != 2 or z_s.shape != z_t.shape:
        raise ShapeError(
            f"{method}: student and teacher logits must both be (B, K) with equal shapes, "
            f"got student {shape_str(z_s)} and teacher {shape_str(z_t)}"
        )
    return z_s, z_t.detach()


def check_targets(method: str, target: Tensor | None, z_s: Tensor) -> Tensor:
    if target is None:
        raise ShapeError(f"{method}: needs the ground-truth labels `target` (B,) int64")
    if target.shape != (z_s.shape[0],) or target.dtype not in (torch.int64, torch.int32):
        raise ShapeError(
            f"{method}: target must be (B,) integer class ids matching logits {shape_str(z_s)}, "
            f"got {shape_str(target)} {target.dtype}"
        )
    return target.long()


def check_batch_vectors(method: str, f_s: Tensor, f_t: Tensor, same_dim: bool = False) -> tuple[Tensor, Tensor]:
    """Flattens (B, ...) features to (B, D); checks batch sizes (and D when ``same_dim``)."""
    if f_s.dim() < 2 or f_t.dim() < 2 or f_s.shape[0] != f_t.shape[0]:
        raise ShapeError(
            f"{method}: student and teacher features must be (B, ...) with the same B, "
            f"got student {shape_str(f_s)} and teacher {shape_str(f_t)}"
        )
    s, t = f_s.flatten(1), f_t.detach().flatten(1)
    if same_dim and s.shape[1] != t.shape[1]:
        raise ShapeError(
            f"{method}: needs equal feature sizes (use an embedding), got student {shape_str(f_s)} "
            f"and teacher {shape_str(f_t)}"
        )
    return s, t


def pool_to_smaller(f_s: Tensor, f_t: Tensor) -> tuple[Tensor, Tensor]:
    """Adaptive-average-pools the larger of two (B, C, H, W) maps to the other's spatial size.

    RepDistiller compares heights only and pools to a square; comparing (H, W) also covers non-square maps.
    """
    hs, ws = f_s.shape[-2:]
    ht, wt = f_t.shape[-2:]
    if (hs, ws) == (ht, wt):
        return f_s, f_t
    size = (min(hs, ht), min(ws, wt))
    if (hs, ws) != size:
        f_s = F.adaptive_avg_pool2d(f_s, size)
    if (ht, wt) != size:
        f_t = F.adaptive_avg_pool2d(f_t, size)
    return f_s, f_t


def check_mode(method: str, mode: str) -> str:
    if mode not in ("paper", "reference"):
        raise ValueError(f"{method}: mode must be 'paper' or 'reference', got {mode!r}")
    return mode

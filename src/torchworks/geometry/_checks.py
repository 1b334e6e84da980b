"""Shared input checks and small numerical helpers (private to ``torchworks.geometry``).

Every public function validates the trailing shape of its tensors here so that a wrong shape fails with the
offending shape in the message instead of deep inside a matmul.
"""

from __future__ import annotations

import torch

from torchworks.core.errors import ShapeError


def check_shape(x: torch.Tensor, tail: tuple[int | None, ...], name: str, min_dims: int | None = None) -> None:
    """Raise ShapeError unless ``x.shape`` ends with ``tail`` (None matches any size).

    Args:
        x: tensor to check.
        tail: expected trailing sizes, e.g. ``(3, 3)`` or ``(None, 2)``.
        name: argument name for the message.
        min_dims: minimum total number of dims (defaults to ``len(tail)``).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    need = len(tail) if min_dims is None else min_dims
    ok = x.dim() >= need and all(t is None or s == t for s, t in zip(x.shape[x.dim() - len(tail):], tail, strict=True))
    if not ok:
        want = "(..., " + ", ".join("N" if t is None else str(t) for t in tail) + ")"
        raise ShapeError(f"{name} must have shape {want}, got {tuple(x.shape)}")


def check_float(x: torch.Tensor, name: str) -> None:
    """Raise TypeError unless ``x`` is a floating-point tensor (integer inputs give silent garbage in OpenCV)."""
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")


def eps_of(x: torch.Tensor) -> float:
    """Machine epsilon of ``x``'s dtype."""
    return torch.finfo(x.dtype).eps


def safe_sqrt(x: torch.Tensor, tiny: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """sqrt whose gradient is finite (zero) where ``x <= tiny``; returns (sqrt, small_mask).

    The double-``where`` keeps the infinite derivative of sqrt at 0 out of the backward pass.
    """
    small = x <= tiny
    root = torch.sqrt(torch.where(small, torch.ones_like(x), x))
    return torch.where(small, torch.zeros_like(x), root), small


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrix [v]x with [v]x w = v x w.

    Args:
        v: (..., 3) vectors.

    Returns:
        (..., 3, 3) skew-symmetric matrices.
    """
    check_shape(v, (3,), "v")
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).unflatten(-1, (3, 3))


def vee(m: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`skew`: the vector of the skew-symmetric part of ``m``.

    Args:
        m: (..., 3, 3) matrices; only the antisymmetric part is read.

    Returns:
        (..., 3) vectors.
    """
    check_shape(m, (3, 3), "m")
    a = m - m.transpose(-1, -2)
    return 0.5 * torch.stack([a[..., 2, 1], a[..., 0, 2], a[..., 1, 0]], -1)


def to_homogeneous(x: torch.Tensor) -> torch.Tensor:
    """Append a 1 to the last dim: (..., D) -> (..., D + 1)."""
    return torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)


def from_homogeneous(x: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Divide by the last coordinate: (..., D + 1) -> (..., D).

    Points at infinity (last coordinate exactly 0) give inf, never a silent 0; ``eps`` > 0 clamps |w| instead.
    """
    w = x[..., -1:]
    if eps > 0:
        w = torch.where(w.abs() < eps, torch.full_like(w, eps) * torch.where(w < 0, -1.0, 1.0), w)
    return x[..., :-1] / w

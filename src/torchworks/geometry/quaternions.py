"""Unit quaternions with an explicit component order.

Every function takes a required ``order="wxyz"|"xyzw"`` keyword, because a silent default is the classic
wxyz/xyzw bug (kornia/pytorch3d print wxyz; scipy/roma/pycolmap xyzw). Every quaternion returned is canonical:
unit norm with w > 0, or, when w == 0 (a rotation by exactly pi), with its first non-zero vector component
positive, so q and -q never both appear.

References:
    Shepperd, "Quaternion from rotation matrix", J. Guidance and Control 1(3), 1978 (largest-pivot extraction).
"""

from __future__ import annotations

import torch

from torchworks.geometry._checks import check_float, check_shape, safe_sqrt
from torchworks.geometry.so3 import rotation_input_entries

QUATERNION_ORDERS = ("wxyz", "xyzw")


def _check_order(order: str) -> None:
    if order not in QUATERNION_ORDERS:
        raise ValueError(f"order must be one of {QUATERNION_ORDERS}, got {order!r}")


def _to_wxyz(q: torch.Tensor, order: str) -> torch.Tensor:
    _check_order(order)
    return q if order == "wxyz" else q.roll(1, dims=-1)


def _from_wxyz(q: torch.Tensor, order: str) -> torch.Tensor:
    return q if order == "wxyz" else q.roll(-1, dims=-1)


def matrix_to_quaternion(matrix: torch.Tensor, *, order: str, project: bool = False) -> torch.Tensor:
    """Canonical unit quaternion of a rotation matrix (Shepperd's largest-pivot method).

    Args:
        matrix: (..., 3, 3) rotation matrices.
        order: "wxyz" (scalar first) or "xyzw" (scalar last) for the output.
        project: project non-rotations onto SO(3) instead of raising ValueError.

    Returns:
        (..., 4) canonical unit quaternions in ``order``.
    """
    _check_order(order)
    q = _shepperd_rows(rotation_input_entries(matrix, project))  # (4, M)
    return _from_wxyz(_canonical_wxyz(q.transpose(0, 1)).reshape(*matrix.shape[:-2], 4), order)


def _shepperd_rows(r: torch.Tensor) -> torch.Tensor:
    # Shepperd's method on the (3, 3, M) contiguous-row layout of the entries (so3.matrix_entries); returns the
    # unit quaternions (w, x, y, z) as a (4, M) tensor of rows (sign not yet canonical).
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = r.view(9, -1).unbind(0)
    # 4 w^2, 4 x^2, 4 y^2, 4 z^2: the largest is >= 1, so dividing by its root is well conditioned.
    pivots = torch.stack([1 + r00 + r11 + r22, 1 + r00 - r11 - r22, 1 - r00 + r11 - r22, 1 - r00 - r11 + r22])
    p0, p1, p2, p3 = pivots.unbind(0)
    a, b, c = r21 - r12, r02 - r20, r10 - r01
    d, e, f = r10 + r01, r02 + r20, r21 + r12
    cands = torch.stack([p0, a, b, c, a, p1, d, e, b, d, p2, f, c, e, f, p3]).view(4, 4, -1)
    # Row k is 4 q_k * q; clamping the unused pivots keeps sqrt's infinite slope at 0 out of the gradient.
    # The largest pivot is picked by a chain of comparisons (first maximum wins, like argmax): argmax and gather
    # across the leading dimension are ~10x slower than these elementwise selections.
    best, row = p0, cands[0]
    for k in (1, 2, 3):
        larger = pivots[k] > best
        best = torch.where(larger, pivots[k], best)
        row = torch.where(larger, cands[k], row)
    q = row / (2 * torch.sqrt(best.clamp(min=0.1)))
    return q / torch.sqrt((q * q).sum(0, keepdim=True))


def _canonical_wxyz(q: torch.Tensor) -> torch.Tensor:
    # Sign choice: w > 0; at w == 0 the first non-zero of (x, y, z) is made positive so that pi rotations are unique.
    key = q[..., 0]
    for i in (1, 2, 3):
        key = torch.where(key == 0, q[..., i], key)
    return q * torch.where(key < 0, -1.0, 1.0).to(q.dtype)[..., None]


def canonicalize_quaternion(quaternion: torch.Tensor, *, order: str) -> torch.Tensor:
    """Pick the canonical sign of q or -q (w > 0, see the module docstring); does not normalize.

    Args:
        quaternion: (..., 4) quaternions in ``order``.
        order: "wxyz" or "xyzw".

    Returns:
        (..., 4) quaternions in the same order.
    """
    check_shape(quaternion, (4,), "quaternion")
    return _from_wxyz(_canonical_wxyz(_to_wxyz(quaternion, order)), order)


def convert_quaternion_order(quaternion: torch.Tensor, *, src: str, dst: str) -> torch.Tensor:
    """Reorder quaternion components between "wxyz" and "xyzw".

    Args:
        quaternion: (..., 4) quaternions in ``src`` order.
        src: order of the input.
        dst: order of the output.

    Returns:
        (..., 4) the same quaternions in ``dst`` order.
    """
    check_shape(quaternion, (4,), "quaternion")
    _check_order(dst)
    return _from_wxyz(_to_wxyz(quaternion, src), dst)


def _unit_wxyz(quaternion: torch.Tensor, order: str, project: bool) -> torch.Tensor:
    check_shape(quaternion, (4,), "quaternion")
    check_float(quaternion, "quaternion")
    q = _to_wxyz(quaternion, order)
    norm = q.norm(dim=-1, keepdim=True)
    if not project:
        tol = 1e-6 if q.dtype == torch.float64 else 1e-4
        err = (norm.detach() - 1).abs()
        if bool((err > tol).any()):
            raise ValueError(f"quaternion is not unit (max |norm - 1| = {err.max().item():.3g} > {tol}); "
                             "pass project=True to normalize")
    elif bool((norm.detach() == 0).any()):
        raise ValueError("quaternion of zero norm cannot be projected onto a rotation")
    return q / norm


def quaternion_to_matrix(quaternion: torch.Tensor, *, order: str, project: bool = False) -> torch.Tensor:
    """Rotation matrix of a unit quaternion (q and -q give the same matrix).

    Args:
        quaternion: (..., 4) unit quaternions in ``order``.
        order: "wxyz" or "xyzw".
        project: normalize non-unit quaternions instead of raising ValueError.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    w, x, y, z = _unit_wxyz(quaternion, order, project).unbind(-1)
    m = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
         2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
         2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]
    return torch.stack(m, -1).unflatten(-1, (3, 3))


def axis_angle_to_quaternion(axis_angle: torch.Tensor, *, order: str) -> torch.Tensor:
    """Canonical unit quaternion (cos(t/2), sin(t/2) r/t) of a rotation vector.

    Args:
        axis_angle: (..., 3) rotation vectors in radians.
        order: "wxyz" or "xyzw" for the output.

    Returns:
        (..., 4) canonical unit quaternions.
    """
    _check_order(order)
    check_shape(axis_angle, (3,), "axis_angle")
    check_float(axis_angle, "axis_angle")
    t2 = (axis_angle * axis_angle).sum(-1)
    t, small = safe_sqrt(t2, 1e-8)
    ts = torch.where(small, torch.ones_like(t), t)
    s = torch.where(small, 0.5 - t2 / 48 + t2 * t2 / 3840, torch.sin(ts / 2) / ts)
    c = torch.where(small, 1 - t2 / 8 + t2 * t2 / 384, torch.cos(ts / 2))
    q = torch.cat([c[..., None], s[..., None] * axis_angle], -1)
    return _from_wxyz(_canonical_wxyz(q), order)


def quaternion_to_axis_angle(quaternion: torch.Tensor, *, order: str, project: bool = False) -> torch.Tensor:
    """Rotation vector with norm in [0, pi] of a unit quaternion: 2 atan2(|v|, w) v / |v| after making w >= 0.

    Args:
        quaternion: (..., 4) unit quaternions in ``order``.
        order: "wxyz" or "xyzw".
        project: normalize non-unit quaternions instead of raising ValueError.

    Returns:
        (..., 3) rotation vectors in radians.
    """
    q = _unit_wxyz(quaternion, order, project)
    return _axis_angle_rows(q.reshape(-1, 4).transpose(0, 1)).transpose(0, 1).reshape(*q.shape[:-1], 3)


def matrix_to_axis_angle_fused(matrix: torch.Tensor, project: bool = False) -> torch.Tensor:
    """matrix -> rotation vector through the Shepperd quaternion, without the quaternion round trip's re-checks."""
    q = _shepperd_rows(rotation_input_entries(matrix, project))
    return _axis_angle_rows(q).transpose(0, 1).reshape(*matrix.shape[:-2], 3)


def _axis_angle_rows(q: torch.Tensor) -> torch.Tensor:
    # Unit quaternions as (4, M) rows (w, x, y, z), any sign -> rotation vectors as (3, M) rows, norm in [0, pi]:
    # the canonical sign of _canonical_wxyz, then 2 atan2(|v|, w) v / |v|.
    key = q[0]
    for i in (1, 2, 3):
        key = torch.where(key == 0, q[i], key)
    q = q * torch.where(key < 0, -1.0, 1.0).to(q.dtype)
    w, v = q[0], q[1:]
    n2 = (v * v).sum(0)
    n, small = safe_sqrt(n2, 1e-12)
    ns = torch.where(small, torch.ones_like(n), n)
    # atan is well conditioned everywhere; the Taylor branch only avoids 0/0 (w ~ 1 there).
    ws = torch.where(small, w, torch.ones_like(w))
    x2 = n2 / (ws * ws)
    scale = torch.where(small, 2 / ws * (1 - x2 / 3 + x2 * x2 / 5), 2 * torch.atan2(ns, w) / ns)
    return scale * v

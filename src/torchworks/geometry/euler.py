"""Euler angles for all 12 axis sequences, intrinsic and extrinsic.

``axes`` is a 3-letter string over X, Y, Z with no letter repeated twice in a row: the six Tait-Bryan sequences
(XYZ, XZY, YXZ, YZX, ZXY, ZYX) and the six proper Euler sequences (XYX, XZX, YXY, YZY, ZXZ, ZYZ).

* ``intrinsic=True``: rotate about the *moving* axes, R = R_a1(t1) R_a2(t2) R_a3(t3) (e.g. aerospace yaw-pitch-roll
  is ``axes="ZYX", intrinsic=True``).
* ``intrinsic=False``: rotate about the *fixed* world axes in the given order, R = R_a3(t3) R_a2(t2) R_a1(t1).

The frame must always be stated: guessing it is as error-prone as guessing a quaternion order.

Angles returned lie in [-pi, pi], with the middle angle in [-pi/2, pi/2] (Tait-Bryan) or [0, pi] (proper). At a
gimbal pole (middle angle within a few ulps of its limit) only the sum or difference of the outer angles is
defined; the third angle of ``axes`` is then set to 0. The poles do not lose accuracy: matrix -> angles ->
matrix is exact to ~1e-15 in float64 even one ulp away from them, and gradients stay finite there.

References:
    Bernardes and Viollet, "Quaternion to Euler angles conversion: A direct, general and computationally
    efficient method", PLoS ONE 17(11), 2022.
"""

from __future__ import annotations

import math

import torch

from torchworks.geometry._checks import check_float, check_shape, safe_sqrt
from torchworks.geometry.rotations import matrix_to_quaternion

_AXIS = {"X": 0, "Y": 1, "Z": 2}
EULER_SEQUENCES = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX", "XYX", "XZX", "YXY", "YZY", "ZXZ", "ZYZ")


def _parse(axes: str) -> list[int]:
    if not isinstance(axes, str) or axes.upper() not in EULER_SEQUENCES:
        raise ValueError(f"axes must be one of {EULER_SEQUENCES}, got {axes!r}")
    return [_AXIS[a] for a in axes.upper()]


def _elementary(angle: torch.Tensor, axis: int) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    o, i = torch.zeros_like(angle), torch.ones_like(angle)
    if axis == 0:
        m = [i, o, o, o, c, -s, o, s, c]
    elif axis == 1:
        m = [c, o, s, o, i, o, -s, o, c]
    else:
        m = [c, -s, o, s, c, o, o, o, i]
    return torch.stack(m, -1).unflatten(-1, (3, 3))


def euler_to_matrix(angles: torch.Tensor, axes: str, *, intrinsic: bool) -> torch.Tensor:
    """Rotation matrix of Euler angles.

    Args:
        angles: (..., 3) angles in radians, in the order of ``axes``.
        axes: one of :data:`EULER_SEQUENCES`.
        intrinsic: True for rotations about moving axes, False for fixed axes (see module docstring).

    Returns:
        (..., 3, 3) rotation matrices.
    """
    seq = _parse(axes)
    check_shape(angles, (3,), "angles")
    check_float(angles, "angles")
    mats = [_elementary(angles[..., k], seq[k]) for k in range(3)]
    return mats[0] @ mats[1] @ mats[2] if intrinsic else mats[2] @ mats[1] @ mats[0]


def _wrap(a: torch.Tensor) -> torch.Tensor:
    # atan2 of (sin, cos) maps to [-pi, pi] without the mod's discontinuous gradient.
    return torch.atan2(torch.sin(a), torch.cos(a))


def matrix_to_euler(matrix: torch.Tensor, axes: str, *, intrinsic: bool, project: bool = False) -> torch.Tensor:
    """Euler angles of a rotation matrix (inverse of :func:`euler_to_matrix`).

    Args:
        matrix: (..., 3, 3) rotation matrices.
        axes: one of :data:`EULER_SEQUENCES`.
        intrinsic: True for moving axes, False for fixed axes.
        project: project non-rotations onto SO(3) instead of raising ValueError.

    Returns:
        (..., 3) angles in radians in the order of ``axes``.
    """
    seq = _parse(axes)
    q = matrix_to_quaternion(matrix, order="wxyz", project=project)
    # The algorithm is stated for fixed axes; an intrinsic sequence equals the reversed extrinsic one.
    i, j, k = seq[::-1] if intrinsic else seq
    proper = i == k
    if proper:
        k = 3 - i - j
    sign = float((i - j) * (j - k) * (k - i) // 2)  # +1 for a cyclic (even) permutation of (x, y, z)
    w, v = q[..., 0], q[..., 1:]
    qi, qj, qk = v[..., i], v[..., j], v[..., k] * sign
    if proper:
        a, b, c, d = w, qi, qj, qk
    else:  # rotate the quaternion so the Tait-Bryan case reduces to the proper one
        a, b, c, d = w - qj, qi + qk, qj + w, qk - qi
    n_ab, small_ab = safe_sqrt(a * a + b * b)
    n_cd, small_cd = safe_sqrt(c * c + d * d)
    middle = 2 * torch.atan2(n_cd, n_ab)
    tol = 4 * torch.finfo(q.dtype).eps
    pole0 = middle <= tol  # outer rotations about the same axis: only their sum is defined
    pole_pi = middle >= math.pi - tol  # only their difference is defined
    one = torch.ones_like(a)
    half_sum = torch.atan2(torch.where(small_ab, 0 * one, b), torch.where(small_ab, one, a))
    half_diff = torch.atan2(torch.where(small_cd, 0 * one, d), torch.where(small_cd, one, c))
    first = half_sum - half_diff
    third = half_sum + half_diff
    zero = torch.zeros_like(first)
    # Which outer angle is zeroed at a pole: the third one *as the caller named them* (the sequences are reversed
    # for intrinsic input, so that is ``first`` here).
    if intrinsic:
        first = torch.where(pole0 | pole_pi, zero, first)
        third = torch.where(pole0, 2 * half_sum, torch.where(pole_pi, 2 * half_diff, third))
    else:
        third = torch.where(pole0 | pole_pi, zero, third)
        first = torch.where(pole0, 2 * half_sum, torch.where(pole_pi, -2 * half_diff, first))
    if not proper:
        third = third * sign
        middle = middle - math.pi / 2
    out = torch.stack([_wrap(first), middle, _wrap(third)], -1)
    return out.flip(-1) if intrinsic else out

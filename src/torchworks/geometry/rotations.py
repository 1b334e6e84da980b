"""Rotation representations: matrix, axis-angle (Rodrigues, so(3)), unit quaternion and the 6D representation.

Conventions: column vectors (``y = R @ x``), radians, right-handed. Quaternions always carry their component
order in a required ``order="wxyz"|"xyzw"`` keyword, because a silent default is the classic wxyz/xyzw bug; every
quaternion returned is *canonical*: unit norm with w > 0, or, when w == 0 (a rotation by exactly pi), with its
first non-zero vector component positive. Axis-angle vectors returned have norm in [0, pi].

Quaternion functions live in :mod:`torchworks.geometry.quaternions` and the SO(3) check in
:mod:`torchworks.geometry.so3`; both are re-exported here.

Accuracy: in float64 every matrix -> X -> matrix round trip is exact to ~1e-15 over [0, pi] including 0, 1e-8,
pi - 1e-9 and pi; gradients are finite at 0 and at pi (double-``where`` guards around every sqrt and division).

References:
    Shepperd, "Quaternion from rotation matrix", J. Guidance and Control 1(3), 1978 (largest-pivot extraction).
    Zhou et al., "On the Continuity of Rotation Representations in Neural Networks", CVPR 2019 (6D).
    Hartley et al., "Rotation Averaging", IJCV 2013 (geodesic angle).
"""

from __future__ import annotations

import torch

from torchworks.geometry._checks import check_float, check_shape, safe_sqrt
from torchworks.geometry.quaternions import (  # noqa: F401 (re-exported)
    QUATERNION_ORDERS,
    axis_angle_to_quaternion,
    canonicalize_quaternion,
    convert_quaternion_order,
    matrix_to_axis_angle_fused,
    matrix_to_quaternion,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
)
from torchworks.geometry.so3 import (  # noqa: F401
    is_rotation_matrix,
    project_to_so3,
    require_rotation,
    rotation_tolerance,
)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula R = I + sin(t)/t [r]x + (1 - cos t)/t^2 [r]x^2 with t = |r| (= SO(3) exp).

    Args:
        axis_angle: (..., 3) rotation vectors (unit axis times angle in radians); any norm.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    check_shape(axis_angle, (3,), "axis_angle")
    check_float(axis_angle, "axis_angle")
    t2 = (axis_angle * axis_angle).sum(-1)
    t, small = safe_sqrt(t2, 1e-8)
    ts = torch.where(small, torch.ones_like(t), t)
    # Taylor branches below |r| = 1e-4; the half-angle form of 1 - cos avoids cancellation above it.
    a = torch.where(small, 1 - t2 / 6 + t2 * t2 / 120, torch.sin(ts) / ts)
    half = torch.sin(ts / 2) / ts
    b = torch.where(small, 0.5 - t2 / 24 + t2 * t2 / 720, 2 * half * half)
    # [r]x^2 = r r^T - t^2 I, so R = (1 - b t^2) I + a [r]x + b r r^T: elementwise, no batched 3x3 matmuls.
    c = 1 - b * t2
    x, y, z = axis_angle.unbind(-1)
    ax, ay, az = a * x, a * y, a * z
    bxy, bxz, byz = b * x * y, b * x * z, b * y * z
    m = [c + b * x * x, bxy - az, bxz + ay,
         bxy + az, c + b * y * y, byz - ax,
         bxz - ay, byz + ax, c + b * z * z]
    return torch.stack(m, -1).unflatten(-1, (3, 3))


def matrix_to_axis_angle(matrix: torch.Tensor, project: bool = False) -> torch.Tensor:
    """Rotation vector of a rotation matrix (= SO(3) log), norm in [0, pi].

    Goes through the Shepperd quaternion, which unlike the trace/arccos formula (and cv2.Rodrigues, which
    returns 0 below 1e-5 rad) stays exact near 0 and near pi.

    Args:
        matrix: (..., 3, 3) rotation matrices.
        project: project non-rotations onto SO(3) instead of raising ValueError.

    Returns:
        (..., 3) rotation vectors in radians. At exactly pi the sign follows the canonical quaternion.
    """
    return matrix_to_axis_angle_fused(matrix, project)


so3_exp = axis_angle_to_matrix


def so3_log(matrix: torch.Tensor, project: bool = False) -> torch.Tensor:
    """Alias of :func:`matrix_to_axis_angle` (the vee of the matrix logarithm)."""
    return matrix_to_axis_angle(matrix, project=project)


def sixd_to_matrix(sixd: torch.Tensor) -> torch.Tensor:
    """Rotation from the 6D representation by Gram-Schmidt (Zhou et al. 2019).

    Args:
        sixd: (..., 6) = first two columns of a matrix, (a1, a2), not necessarily orthonormal.

    Returns:
        (..., 3, 3) rotation matrices with columns (b1, b2, b1 x b2).
    """
    check_shape(sixd, (6,), "sixd")
    a1, a2 = sixd[..., :3], sixd[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True)
    b2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = b2 / b2.norm(dim=-1, keepdim=True)
    return torch.stack([b1, b2, torch.linalg.cross(b1, b2)], dim=-1)


def matrix_to_sixd(matrix: torch.Tensor) -> torch.Tensor:
    """The 6D representation: the first two columns of R, concatenated.

    Args:
        matrix: (..., 3, 3) rotation matrices (others raise ValueError).

    Returns:
        (..., 6) vectors (R[:, 0], R[:, 1]).
    """
    require_rotation(matrix, "matrix")
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], -1)


def geodesic_angle(matrix_a: torch.Tensor, matrix_b: torch.Tensor) -> torch.Tensor:
    """Angle in [0, pi] of the relative rotation A^T B, via 2 atan2(|v|, |w|) (exact near 0 and pi, unlike acos).

    Args:
        matrix_a: (..., 3, 3) rotation matrices.
        matrix_b: (..., 3, 3) rotation matrices (broadcast against ``matrix_a``).

    Returns:
        (...,) angles in radians.

    Raises:
        ValueError: either input is not a rotation (e.g. the reflection -I, although (-I)^T (-I) = I).
    """
    require_rotation(matrix_a, "matrix_a")
    require_rotation(matrix_b, "matrix_b")
    q = matrix_to_quaternion(matrix_a.transpose(-1, -2) @ matrix_b, order="wxyz", project=False)
    n, _ = safe_sqrt((q[..., 1:] ** 2).sum(-1))
    return 2 * torch.atan2(n, q[..., 0].abs())

"""How far an estimated two-view pose is from the ground truth, and the ground-truth relative pose of two cameras.

Poses are ``world_to_cam`` (x_cam = R X + t, OpenCV frame, column vectors); angles are radians. Two views fix the
translation only up to scale, so it is compared by direction.

References:
    Hartley et al., "Rotation Averaging", IJCV 2013 (geodesic angle).
    Hartley and Zisserman, "Multiple View Geometry", 2nd ed., 2004, section 9.6 (the relative pose of two cameras).
"""

from __future__ import annotations

import torch

from torchworks.geometry._checks import check_float, check_shape
from torchworks.geometry.rotations import geodesic_angle


def relative_pose(rot_a: torch.Tensor, t_a: torch.Tensor, rot_b: torch.Tensor, t_b: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The pose of camera b relative to camera a: ``x_b = R x_a + t`` for camera points ``x_a``, ``x_b``.

    Args:
        rot_a, rot_b: (..., 3, 3) ``world_to_cam`` rotations of the two cameras.
        t_a, t_b: (..., 3) their ``world_to_cam`` translations (world units).

    Returns:
        ``(R, t)``: R = R_b R_a^T (..., 3, 3) and t = t_b - R t_a (..., 3), in world units (not normalised).
    """
    for name, r, t in (("a", rot_a, t_a), ("b", rot_b, t_b)):
        check_shape(r, (3, 3), f"rot_{name}")
        check_shape(t, (3,), f"t_{name}")
        check_float(r, f"rot_{name}")
        check_float(t, f"t_{name}")
    rot = rot_b @ rot_a.transpose(-1, -2)
    return rot, t_b - (rot @ t_a[..., None])[..., 0]


def relative_pose_error(rot: torch.Tensor, t: torch.Tensor, rot_gt: torch.Tensor, t_gt: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation error and translation-direction error of an estimated relative pose.

    Args:
        rot: (..., 3, 3) estimated rotation.
        t: (..., 3) estimated translation (any non-zero length: only its direction counts).
        rot_gt: (..., 3, 3) true rotation (broadcast against ``rot``).
        t_gt: (..., 3) true translation (any non-zero length).

    Returns:
        ``(rotation_error, direction_error)``, (...,) radians in [0, pi]: the geodesic angle between ``rot`` and
        ``rot_gt``, and the angle between ``t`` and ``t_gt`` as ``atan2(|t x t_gt|, t . t_gt)`` (exact near 0 and
        pi, unlike acos). The sign of ``t`` counts: a pose whose cameras are swapped is pi off.

    Raises:
        ValueError: a rotation that is not one (e.g. a reflection), or a zero translation (no direction).
    """
    check_shape(t, (3,), "t")
    check_shape(t_gt, (3,), "t_gt")
    check_float(t, "t")
    check_float(t_gt, "t_gt")
    if bool((t.norm(dim=-1) == 0).any()) or bool((t_gt.norm(dim=-1) == 0).any()):
        raise ValueError("relative_pose_error: a zero translation has no direction to compare")
    rot_err = geodesic_angle(rot, rot_gt)
    t, t_gt = torch.broadcast_tensors(t, t_gt)
    return rot_err, torch.atan2(torch.linalg.cross(t, t_gt).norm(dim=-1), (t * t_gt).sum(-1))

"""Rigid transforms SE(3): 4x4 matrices, exp/log with twists, inversion, composition of (R, t) poses.

A pose ``world_to_cam`` maps world points to camera points, x_cam = R X + t (column vectors), so the camera
centre in world coordinates is C = -R^T t and ``cam_to_world`` = (R^T, C).

Twists are (..., 6) vectors ``(rho, omega)``: translation part first, rotation vector second, matching the
Sophus/pytorch3d layout, so that exp(rho, omega) = [[R, V rho], [0, 1]] with R = exp(omega).

References:
    Barfoot, "State Estimation for Robotics", 2017, section 7.1 (closed forms of V and V^-1).
    Hartley and Zisserman, "Multiple View Geometry", 2nd ed., 2004, section 6.1 (C = -R^T t).
"""

from __future__ import annotations

import torch

from torchworks.geometry._checks import check_float, check_shape, safe_sqrt, skew
from torchworks.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from torchworks.geometry.so3 import require_rotation


def make_pose(rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """Stack R and t into a 4x4 homogeneous transform.

    Args:
        rotation: (..., 3, 3) rotation matrices (reflections and other non-rotations raise ValueError).
        translation: (..., 3) translations (same units as the points).

    Returns:
        (..., 4, 4) matrices [[R, t], [0, 0, 0, 1]].
    """
    require_rotation(rotation, "rotation")
    return _stack_pose(rotation, translation)


def _stack_pose(rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    # make_pose without the SO(3) check, for rotations built here (exp maps, transposes of checked rotations).
    check_shape(rotation, (3, 3), "rotation")
    check_shape(translation, (3,), "translation")
    batch = torch.broadcast_shapes(rotation.shape[:-2], translation.shape[:-1])
    top = torch.cat([rotation.expand(*batch, 3, 3), translation.expand(*batch, 3)[..., None]], -1)
    bottom = torch.zeros(*batch, 1, 4, dtype=top.dtype, device=top.device)
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], -2)


def split_pose(pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, t) of a (..., 4, 4) or (..., 3, 4) pose: shapes (..., 3, 3) and (..., 3)."""
    if pose.dim() < 2 or pose.shape[-1] != 4 or pose.shape[-2] not in (3, 4):
        check_shape(pose, (4, 4), "pose")
    return pose[..., :3, :3], pose[..., :3, 3]


def invert_pose(pose: torch.Tensor) -> torch.Tensor:
    """Inverse of a rigid transform, [[R^T, -R^T t], [0, 1]]: turns ``world_to_cam`` into ``cam_to_world``.

    Args:
        pose: (..., 4, 4) or (..., 3, 4) rigid transforms (the 3x3 block must be a rotation: ValueError otherwise).

    Returns:
        (..., 4, 4) inverse transforms (exact, no general matrix inverse).
    """
    r, t = split_pose(pose)
    require_rotation(r, "pose rotation block")
    rt = r.transpose(-1, -2)
    return _stack_pose(rt, -(rt @ t[..., None])[..., 0])


def camera_center(world_to_cam: torch.Tensor) -> torch.Tensor:
    """Camera centre C = -R^T t in world coordinates.

    Args:
        world_to_cam: (..., 4, 4) or (..., 3, 4) poses (the 3x3 block must be a rotation: ValueError otherwise).

    Returns:
        (..., 3) centres in world units.
    """
    r, t = split_pose(world_to_cam)
    require_rotation(r, "world_to_cam rotation block")
    return -(r.transpose(-1, -2) @ t[..., None])[..., 0]


def translation_from_center(rotation: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """t = -R C (the seed note's T = -RC).

    Args:
        rotation: (..., 3, 3) world-to-camera rotations.
        center: (..., 3) camera centres in world units.

    Returns:
        (..., 3) world-to-camera translations.
    """
    require_rotation(rotation, "rotation")
    check_shape(center, (3,), "center")
    return -(rotation @ center[..., None])[..., 0]


def transform_points(pose: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply x' = R x + t.

    Args:
        pose: (..., 4, 4) or (..., 3, 4) transforms.
        points: (..., N, 3) points.

    Returns:
        (..., N, 3) transformed points.
    """
    r, t = split_pose(pose)
    check_shape(points, (None, 3), "points")
    return points @ r.transpose(-1, -2) + t[..., None, :]


def _v_coeffs(omega: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    t2 = (omega * omega).sum(-1)
    t, small = safe_sqrt(t2, 1e-6)
    ts = torch.where(small, torch.ones_like(t), t)
    half = torch.sin(ts / 2) / ts
    b = torch.where(small, 0.5 - t2 / 24 + t2 * t2 / 720, 2 * half * half)  # (1 - cos t) / t^2
    c = torch.where(small, 1 / 6 - t2 / 120 + t2 * t2 / 5040, (ts - torch.sin(ts)) / ts**3)  # (t - sin t) / t^3
    return t2, b, c


def se3_exp(twist: torch.Tensor) -> torch.Tensor:
    """Exponential map of a twist (rho, omega) to a 4x4 rigid transform.

    Args:
        twist: (..., 6) twists; rho in length units, omega a rotation vector in radians.

    Returns:
        (..., 4, 4) rigid transforms.
    """
    check_shape(twist, (6,), "twist")
    check_float(twist, "twist")
    rho, omega = twist[..., :3], twist[..., 3:]
    _, b, c = _v_coeffs(omega)
    k = skew(omega)
    eye = torch.eye(3, dtype=twist.dtype, device=twist.device)
    v = eye + b[..., None, None] * k + c[..., None, None] * (k @ k)
    return _stack_pose(axis_angle_to_matrix(omega), (v @ rho[..., None])[..., 0])


def se3_log(pose: torch.Tensor, project: bool = False) -> torch.Tensor:
    """Logarithm of a rigid transform, the inverse of :func:`se3_exp` for rotation angles in [0, pi].

    Args:
        pose: (..., 4, 4) or (..., 3, 4) rigid transforms.
        project: project a non-rotation block onto SO(3) instead of raising ValueError.

    Returns:
        (..., 6) twists (rho, omega).
    """
    r, t = split_pose(pose)
    omega = matrix_to_axis_angle(r, project=project)
    t2 = (omega * omega).sum(-1)
    th, small = safe_sqrt(t2, 1e-6)
    ts = torch.where(small, torch.ones_like(th), th)
    # V^-1 = I - K/2 + d K^2 with d = (1 - (t/2) cot(t/2)) / t^2; cot stays finite up to and including t = pi.
    d = torch.where(small, 1 / 12 + t2 / 720 + t2 * t2 / 30240,
                    (1 - (ts / 2) * torch.cos(ts / 2) / torch.sin(ts / 2)) / (ts * ts))
    k = skew(omega)
    eye = torch.eye(3, dtype=r.dtype, device=r.device)
    v_inv = eye - 0.5 * k + d[..., None, None] * (k @ k)
    return torch.cat([(v_inv @ t[..., None])[..., 0], omega], -1)

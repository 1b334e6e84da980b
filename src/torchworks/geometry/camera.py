"""Pinhole cameras: intrinsics, perspective and orthographic projection, unprojection with depth.

Pixel convention: OpenCV's, integer coordinates at pixel centres, u = column (right), v = row (down).
Camera frame: OpenCV (x right, y down, z forward). Every function broadcasts over leading batch dims.

References:
    Hartley and Zisserman, "Multiple View Geometry", 2nd ed., 2004, sections 6.1-6.3.
    OpenCV ``calib3d`` documentation, "Camera Calibration and 3D Reconstruction" (the pinhole + distortion model).
"""

from __future__ import annotations

import torch

from torchworks.core.errors import ShapeError
from torchworks.geometry._checks import check_float, check_shape
from torchworks.geometry.distortion import distort_normalized
from torchworks.geometry.intrinsics import (  # noqa: F401 (re-exported: camera is their documented home)
    intrinsics_matrix,
    intrinsics_params,
    normalized_to_pixels,
    pixels_to_normalized,
)
from torchworks.geometry.se3 import transform_points


def project_points(points_cam: torch.Tensor, intrinsics: torch.Tensor, distortion: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """Perspective projection of camera-frame points to pixels (cv2.projectPoints with rvec = tvec = 0).

    Args:
        points_cam: (..., N, 3) camera-frame points; Z must be non-zero (points behind the camera, Z < 0, are
            projected like OpenCV does; use :func:`in_front` to mask them).
        intrinsics: (..., 3, 3) K.
        distortion: optional (..., 4|5|8) OpenCV coefficients (k1, k2, p1, p2[, k3[, k4, k5, k6]]).

    Returns:
        (..., N, 2) pixel coordinates.
    """
    check_shape(points_cam, (None, 3), "points_cam")
    check_float(points_cam, "points_cam")
    xy = points_cam[..., :2] / points_cam[..., 2:]
    if distortion is not None:
        xy = distort_normalized(xy, distortion)
    return normalized_to_pixels(xy, intrinsics)


def world_to_pixels(points_world: torch.Tensor, intrinsics: torch.Tensor, world_to_cam: torch.Tensor,
                    distortion: torch.Tensor | None = None) -> torch.Tensor:
    """World points to pixels through x = K [R | t] X (and distortion): the full cv2.projectPoints.

    Args:
        points_world: (..., N, 3) world points.
        intrinsics: (..., 3, 3) K.
        world_to_cam: (..., 4, 4) or (..., 3, 4) poses.
        distortion: optional (..., 4|5|8) OpenCV coefficients.

    Returns:
        (..., N, 2) pixel coordinates.
    """
    return project_points(transform_points(world_to_cam, points_world), intrinsics, distortion)


def in_front(points_cam: torch.Tensor, min_depth: float = 0.0) -> torch.Tensor:
    """(..., N) bool mask of camera-frame points (..., N, 3) with Z > ``min_depth``."""
    check_shape(points_cam, (None, 3), "points_cam")
    return points_cam[..., 2] > min_depth


def _check_depth(depth: torch.Tensor, pixels: torch.Tensor) -> None:
    check_shape(pixels, (None, 2), "pixels")
    if depth.dim() < 1 or depth.shape[-1] != pixels.shape[-2]:
        raise ShapeError(f"depth must have shape (..., N) = (..., {pixels.shape[-2]}) to match pixels "
                         f"{tuple(pixels.shape)}, got {tuple(depth.shape)}")


def unproject_points(pixels: torch.Tensor, depth: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Back-project pixels with known depth (Z, not ray length) to camera-frame points.

    Args:
        pixels: (..., N, 2) undistorted pixel coordinates.
        depth: (..., N) depths along the optical axis, in the output's units.
        intrinsics: (..., 3, 3) K.

    Returns:
        (..., N, 3) camera-frame points (x Z, y Z, Z).
    """
    _check_depth(depth, pixels)
    xy = pixels_to_normalized(pixels, intrinsics)
    return torch.cat([xy * depth[..., None], depth[..., None]], -1)


def project_orthographic(points_cam: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Orthographic projection u = fx x + s y + cx, v = fy y + cy (Z is dropped).

    Args:
        points_cam: (..., N, 3) camera-frame points.
        intrinsics: (..., 3, 3) K where fx, fy are scales in pixels per world unit.

    Returns:
        (..., N, 2) pixel coordinates.
    """
    check_shape(points_cam, (None, 3), "points_cam")
    return normalized_to_pixels(points_cam[..., :2], intrinsics)


def unproject_orthographic(pixels: torch.Tensor, depth: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`project_orthographic` given Z.

    Args:
        pixels: (..., N, 2) pixel coordinates.
        depth: (..., N) Z values.
        intrinsics: (..., 3, 3) K (scales in pixels per world unit).

    Returns:
        (..., N, 3) camera-frame points.
    """
    _check_depth(depth, pixels)
    return torch.cat([pixels_to_normalized(pixels, intrinsics), depth[..., None]], -1)


def projection_matrix(intrinsics: torch.Tensor, world_to_cam: torch.Tensor) -> torch.Tensor:
    """P = K [R | t].

    Args:
        intrinsics: (..., 3, 3) K.
        world_to_cam: (..., 4, 4) or (..., 3, 4) poses.

    Returns:
        (..., 3, 4) camera matrices.
    """
    check_shape(intrinsics, (3, 3), "intrinsics")
    return intrinsics @ world_to_cam[..., :3, :]

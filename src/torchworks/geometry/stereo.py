"""Stereo: Bouguet rectification of a calibrated pair, rectification maps, disparity <-> depth, point clouds.

Relative pose convention as ``cv2.stereoRectify``: X2 = R X1 + t maps camera-1 (left) to camera-2 (right)
coordinates. Disparity d = u_left - u_right > 0 for points in front of a rectified left-right pair, and
Z = f B / d with B the baseline length.

Everything is differentiable in the calibration (a request kornia#1448/#2044 left open).

References:
    Bouguet, "Camera Calibration Toolbox for Matlab" (rectification by halving the relative rotation), and
    OpenCV ``stereoRectify`` (same rotations; OpenCV also chooses a new K from ``alpha``).
    Hartley and Zisserman, "Multiple View Geometry", 2nd ed., 2004, 11.12 (rectification).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from torchworks.geometry._checks import check_shape, safe_sqrt
from torchworks.geometry.camera import normalized_to_pixels, pixels_to_normalized
from torchworks.geometry.distortion import distort_normalized
from torchworks.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from torchworks.geometry.so3 import require_rotation


@dataclass
class StereoRectification:
    """Output of :func:`rectify_stereo` (OpenCV's R1, R2, P1, P2, Q).

    Attributes:
        rotation1: (3, 3) rotation from camera-1 to rectified-1 coordinates (R1).
        rotation2: (3, 3) rotation from camera-2 to rectified-2 coordinates (R2).
        projection1: (3, 4) P1 = K_new [I | 0].
        projection2: (3, 4) P2 = K_new [I | (tx, 0, 0)] in rectified coordinates (tx = -B for left-right).
        q: (4, 4) disparity-to-depth matrix: [u, v, d, 1] -> homogeneous (X, Y, Z, W) in rectified camera 1.
        intrinsics: (3, 3) K_new shared by both rectified views.
    """

    rotation1: torch.Tensor
    rotation2: torch.Tensor
    projection1: torch.Tensor
    projection2: torch.Tensor
    q: torch.Tensor
    intrinsics: torch.Tensor


def rectify_stereo(intrinsics1: torch.Tensor, intrinsics2: torch.Tensor, rotation: torch.Tensor,
                   translation: torch.Tensor, new_intrinsics: torch.Tensor | None = None) -> StereoRectification:
    """Rectifying rotations and the new cameras of a calibrated pair (Bouguet's method).

    Each camera is rotated by half the relative rotation so both share an orientation; then a common rotation
    turns the baseline onto the x axis (the sign of its x component is kept, as in OpenCV). The rotations equal
    ``cv2.stereoRectify``'s R1, R2; the new K is given or defaults to K1 with fx = fy = K1's fy (OpenCV picks
    it from ``alpha`` and the image size instead, so its P1/P2 can differ by a zoom and shift).

    Args:
        intrinsics1: (3, 3) K of camera 1; intrinsics2: (3, 3) K of camera 2 (only used by the caller's maps,
            kept for API symmetry with OpenCV).
        rotation: (3, 3) R of X2 = R X1 + t.
        translation: (3,) t, in the units wanted for the point clouds.
        new_intrinsics: optional (3, 3) K shared by the rectified images (zero skew).

    Returns:
        A :class:`StereoRectification`.
    """
    check_shape(rotation, (3, 3), "rotation")
    check_shape(translation, (3,), "translation")
    check_shape(intrinsics2, (3, 3), "intrinsics2")
    half = matrix_to_axis_angle(rotation) / 2
    r_half1, r_half2 = axis_angle_to_matrix(half), axis_angle_to_matrix(-half)
    t_mid = r_half2 @ translation  # baseline after both cameras share an orientation
    axis = torch.zeros_like(t_mid)
    axis[0] = torch.where(t_mid[0] >= 0, 1.0, -1.0)
    # Minimal rotation taking the baseline direction onto +-x: axis t x e, angle acos(|t_x| / |t|).
    cross = torch.linalg.cross(t_mid, axis)
    sin_norm, _ = safe_sqrt((cross * cross).sum())
    angle = torch.atan2(sin_norm, t_mid[0].abs())
    w = torch.where(sin_norm > 0, angle / torch.where(sin_norm > 0, sin_norm, 1.0), 0.0) * cross
    r_align = axis_angle_to_matrix(w)
    r1, r2 = r_align @ r_half1, r_align @ r_half2
    tx = (r_align @ t_mid)[0]
    if new_intrinsics is None:
        k = intrinsics1.clone()
        k[0, 0], k[0, 1] = k[1, 1], 0.0
    else:
        check_shape(new_intrinsics, (3, 3), "new_intrinsics")
        k = new_intrinsics
    zero = torch.zeros(3, 1, dtype=k.dtype, device=k.device)
    p1 = torch.cat([k, zero], -1)
    p2 = torch.cat([k, (k @ torch.stack([tx, tx * 0, tx * 0]))[:, None]], -1)
    f, cx, cy = k[1, 1], k[0, 2], k[1, 2]
    q = torch.zeros(4, 4, dtype=k.dtype, device=k.device)
    q[0, 0], q[1, 1], q[0, 3], q[1, 3], q[2, 3] = 1.0, 1.0, -cx, -cy, f
    q[3, 2] = -1 / tx  # same principal point in both rectified views, so Q[3, 3] = 0
    return StereoRectification(r1, r2, p1, p2, q, k)


def rectification_map(intrinsics: torch.Tensor, distortion: torch.Tensor | None, rectify_rotation: torch.Tensor,
                      new_intrinsics: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per rectified pixel, where to sample the original image (``cv2.initUndistortRectifyMap``).

    Args:
        intrinsics: (3, 3) K of the original camera.
        distortion: optional (4|5|8,) OpenCV coefficients of the original camera.
        rectify_rotation: (3, 3) R1 or R2 from :func:`rectify_stereo`.
        new_intrinsics: (3, 3) K of the rectified image.
        height: rectified image height in pixels; width: its width.

    Returns:
        (height, width, 2) source pixel coordinates (u, v); use with ``grid_sample`` after normalizing to [-1, 1].
    """
    require_rotation(rectify_rotation, "rectify_rotation")
    dtype, device = intrinsics.dtype, intrinsics.device
    v, u = torch.meshgrid(torch.arange(height, dtype=dtype, device=device),
                          torch.arange(width, dtype=dtype, device=device), indexing="ij")
    pix = torch.stack([u, v], -1).reshape(-1, 2)
    rays = torch.cat([pixels_to_normalized(pix, new_intrinsics), torch.ones_like(pix[:, :1])], -1)
    src = rays @ rectify_rotation  # R^T applied to each ray: rectified frame -> original camera frame
    xy = src[:, :2] / src[:, 2:]
    if distortion is not None:
        xy = distort_normalized(xy, distortion)
    return normalized_to_pixels(xy, intrinsics).reshape(height, width, 2)


def disparity_to_depth(disparity: torch.Tensor, focal: float | torch.Tensor, baseline: float | torch.Tensor
                       ) -> torch.Tensor:
    """Z = f B / d; zero or negative disparities (unknown / at infinity) give inf.

    Args:
        disparity: (...,) disparities in pixels.
        focal: focal length in pixels of the rectified pair.
        baseline: baseline length (output units).

    Returns:
        (...,) depths in baseline units.
    """
    fb = torch.as_tensor(focal, dtype=disparity.dtype) * torch.as_tensor(baseline, dtype=disparity.dtype)
    safe = torch.where(disparity > 0, disparity, torch.ones_like(disparity))
    return torch.where(disparity > 0, fb / safe, torch.full_like(disparity, float("inf")))


def depth_to_disparity(depth: torch.Tensor, focal: float | torch.Tensor, baseline: float | torch.Tensor
                       ) -> torch.Tensor:
    """d = f B / Z (inverse of :func:`disparity_to_depth`; infinite depth gives 0); shapes (...,)."""
    fb = torch.as_tensor(focal, dtype=depth.dtype) * torch.as_tensor(baseline, dtype=depth.dtype)
    return fb / depth


def disparity_to_points(disparity: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Point cloud of a disparity map through Q (``cv2.reprojectImageTo3D``).

    Args:
        disparity: (..., H, W) disparities in pixels of the left rectified image.
        q: (4, 4) or (..., 4, 4) matrix from :func:`rectify_stereo`.

    Returns:
        (..., H, W, 3) points in rectified camera-1 coordinates (inf/nan where disparity is 0).
    """
    h, w = disparity.shape[-2:]
    v, u = torch.meshgrid(torch.arange(h, dtype=disparity.dtype, device=disparity.device),
                          torch.arange(w, dtype=disparity.dtype, device=disparity.device), indexing="ij")
    uvd1 = torch.stack([u.expand_as(disparity), v.expand_as(disparity), disparity, torch.ones_like(disparity)], -1)
    xyzw = uvd1 @ q.transpose(-1, -2)[..., None, :, :] if q.dim() > 2 else uvd1 @ q.T
    return xyzw[..., :3] / xyzw[..., 3:]

"""Kannala-Brandt (OpenCV ``cv2.fisheye``) camera model, undistortion/rectification maps and their application
with ``grid_sample``.

Model (coefficients (k1, k2, k3, k4), on normalized coordinates (a, b) = (X/Z, Y/Z)):

    r = |(a, b)|,  theta = atan(r),  theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8),
    (x_d, y_d) = (theta_d / r) (a, b),  u = fx (x_d + alpha y_d) + cx,  v = fy y_d + cy  (alpha = 0 here).

Undistortion inverts theta_d -> theta by Newton's method (OpenCV runs 10 fixed iterations of the same update),
unrolled and differentiable. :func:`undistort_rectify_map` builds, for every pixel of the output image, where to
sample the input image, for the fisheye model or OpenCV's radial-tangential one (``cv2.fisheye.
initUndistortRectifyMap`` / ``cv2.initUndistortRectifyMap``); :func:`remap` applies such a map to a batch of
images with ``torch.nn.functional.grid_sample`` (bilinear, like ``cv2.remap`` with ``INTER_LINEAR``).

References:
    Kannala and Brandt, "A generic camera model and calibration method for conventional, wide-angle, and fish-eye
    lenses", PAMI 28(8), 2006.
    OpenCV ``calib3d`` fisheye module documentation (coefficient layout and conventions).
"""

from __future__ import annotations

import torch

from torchworks.geometry._checks import check_float, check_shape
from torchworks.geometry.distortion import distort_normalized
from torchworks.geometry.intrinsics import normalized_to_pixels, pixels_to_normalized
from torchworks.geometry.so3 import require_rotation

MODELS = ("fisheye", "radtan")


def _coeffs(distortion: torch.Tensor, like: torch.Tensor) -> list[torch.Tensor]:
    check_float(distortion, "distortion")
    if distortion.dim() == 0 or distortion.shape[-1] != 4:
        raise ValueError(f"fisheye distortion must have 4 coefficients (k1, k2, k3, k4), got shape "
                         f"{tuple(distortion.shape)}")
    return [c[..., None] for c in distortion.to(like.dtype).unbind(-1)]


def fisheye_distort_normalized(normalized: torch.Tensor, distortion: torch.Tensor) -> torch.Tensor:
    """Apply the Kannala-Brandt model to normalized coordinates.

    Args:
        normalized: (..., N, 2) undistorted normalized coordinates (X/Z, Y/Z).
        distortion: (..., 4) (k1, k2, k3, k4).

    Returns:
        (..., N, 2) distorted normalized coordinates.
    """
    check_shape(normalized, (None, 2), "normalized")
    k1, k2, k3, k4 = _coeffs(distortion, normalized)
    r2 = normalized.square().sum(-1)
    small = r2 < 1e-24
    r = torch.sqrt(torch.where(small, torch.ones_like(r2), r2))
    theta = torch.atan(r)
    t2 = theta * theta
    theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
    scale = torch.where(small, torch.ones_like(r), theta_d / r)  # theta_d / r -> 1 at the centre
    return normalized * scale[..., None]


def fisheye_undistort_normalized(distorted: torch.Tensor, distortion: torch.Tensor, iterations: int = 10
                                 ) -> torch.Tensor:
    """Invert :func:`fisheye_distort_normalized` (``cv2.fisheye.undistortPoints`` without R and P).

    Args:
        distorted: (..., N, 2) distorted normalized coordinates.
        distortion: (..., 4) (k1, k2, k3, k4).
        iterations: Newton steps on theta (unrolled; converged to rounding in 3-5 for usual lenses).

    Returns:
        (..., N, 2) undistorted normalized coordinates.
    """
    check_shape(distorted, (None, 2), "distorted")
    k1, k2, k3, k4 = _coeffs(distortion, distorted)
    rd2 = distorted.square().sum(-1)
    small = rd2 < 1e-24
    theta_d = torch.sqrt(torch.where(small, torch.ones_like(rd2), rd2)).clamp(max=torch.pi / 2)
    theta = theta_d
    for _ in range(iterations):
        t2 = theta * theta
        f = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))) - theta_d
        df = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))
        theta = theta - f / df
    scale = torch.where(small, torch.ones_like(theta), torch.tan(theta) / theta_d)
    return distorted * scale[..., None]


def fisheye_project_points(points_cam: torch.Tensor, intrinsics: torch.Tensor, distortion: torch.Tensor
                           ) -> torch.Tensor:
    """Camera-frame points (..., N, 3) to pixels (..., N, 2) through the fisheye model (``cv2.fisheye.
    projectPoints`` with rvec = tvec = 0); points need Z > 0."""
    check_shape(points_cam, (None, 3), "points_cam")
    return normalized_to_pixels(fisheye_distort_normalized(points_cam[..., :2] / points_cam[..., 2:], distortion),
                                intrinsics)


def fisheye_undistort_points(pixels: torch.Tensor, intrinsics: torch.Tensor, distortion: torch.Tensor,
                             new_intrinsics: torch.Tensor | None = None) -> torch.Tensor:
    """Undistort fisheye pixels (``cv2.fisheye.undistortPoints``; P = ``new_intrinsics``, None: normalized)."""
    xy = fisheye_undistort_normalized(pixels_to_normalized(pixels, intrinsics), distortion)
    return xy if new_intrinsics is None else normalized_to_pixels(xy, new_intrinsics)


def undistort_rectify_map(intrinsics: torch.Tensor, distortion: torch.Tensor | None, new_intrinsics: torch.Tensor,
                          height: int, width: int, rotation: torch.Tensor | None = None, model: str = "radtan"
                          ) -> torch.Tensor:
    """For every pixel of the output (undistorted, optionally rotated) image, where to sample the input image.

    Args:
        intrinsics: (3, 3) K of the input camera.
        distortion: (4|5|8,) OpenCV coefficients for ``"radtan"``, (4,) for ``"fisheye"``; None: no distortion.
        new_intrinsics: (3, 3) K of the output image.
        height, width: output size in pixels.
        rotation: optional (3, 3) rectifying rotation R (output camera frame = R input frame), as in OpenCV.
        model: "radtan" (``cv2.initUndistortRectifyMap``) or "fisheye" (``cv2.fisheye.initUndistortRectifyMap``).

    Returns:
        (height, width, 2) source pixel coordinates (u, v), OpenCV's map1/map2 as one tensor.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height} x {width}")
    dtype, device = intrinsics.dtype, intrinsics.device
    v, u = torch.meshgrid(torch.arange(height, dtype=dtype, device=device),
                          torch.arange(width, dtype=dtype, device=device), indexing="ij")
    rays = torch.cat([pixels_to_normalized(torch.stack([u, v], -1).reshape(-1, 2), new_intrinsics),
                      torch.ones(height * width, 1, dtype=dtype, device=device)], -1)
    if rotation is not None:
        require_rotation(rotation, "rotation")
        rays = rays @ rotation  # R^T applied to each ray: output frame -> input camera frame
    xy = rays[:, :2] / rays[:, 2:]
    if distortion is not None:
        xy = fisheye_distort_normalized(xy, distortion) if model == "fisheye" else distort_normalized(xy, distortion)
    return normalized_to_pixels(xy, intrinsics).reshape(height, width, 2)


def remap(images: torch.Tensor, pixel_map: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Sample images at a map of pixel coordinates with bilinear interpolation (``cv2.remap``, ``INTER_LINEAR``).

    Args:
        images: (B, C, H, W) float images.
        pixel_map: (H', W', 2) or (B, H', W', 2) source pixel coordinates (u, v) in OpenCV's convention (integers
            at pixel centres), e.g. from :func:`undistort_rectify_map`.
        padding_mode: ``grid_sample``'s: "zeros" (OpenCV's BORDER_CONSTANT 0), "border" or "reflection".

    Returns:
        (B, C, H', W') images; differentiable in the images and the map.
    """
    check_shape(images, (None, None, None, None), "images")
    check_shape(pixel_map, (None, None, 2), "pixel_map")
    h, w = images.shape[-2:]
    grid = pixel_map.to(images.dtype)
    if grid.dim() == 3:
        grid = grid.expand(images.shape[0], *grid.shape)
    # align_corners=True maps -1 and +1 to the centres of the first and last pixels, OpenCV's integer coordinates.
    scale = torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], dtype=images.dtype, device=images.device)
    return torch.nn.functional.grid_sample(images, grid * scale - 1, mode="bilinear", padding_mode=padding_mode,
                                           align_corners=True)

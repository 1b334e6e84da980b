"""Brown-Conrady lens distortion (OpenCV's model) and its inverse.

Coefficients follow OpenCV's layout ``(k1, k2, p1, p2[, k3[, k4, k5, k6]])``: radial (rational when k4..k6 are
given) and tangential terms, acting on normalized coordinates (x, y) = (X/Z, Y/Z):

    r^2 = x^2 + y^2,   radial = (1 + k1 r^2 + k2 r^4 + k3 r^6) / (1 + k4 r^2 + k5 r^4 + k6 r^6)
    x_d = x radial + 2 p1 x y + p2 (r^2 + 2 x^2)
    y_d = y radial + p1 (r^2 + 2 y^2) + 2 p2 x y

Undistortion has no closed form. OpenCV's ``undistortPoints`` runs 5 fixed-point iterations by default, which
leaves errors of 1e-3 px or more at strong distortion; here Newton's method with the analytic 2x2 Jacobian
reaches machine precision in a few steps and stays differentiable (the iterations are unrolled).

References:
    Brown, "Decentering distortion of lenses", Photogrammetric Engineering 32(3), 1966.
    OpenCV ``calib3d`` documentation (coefficient layout and the rational model).
"""

from __future__ import annotations

import torch

from torchworks.geometry._checks import check_float, check_shape
from torchworks.geometry.intrinsics import normalized_to_pixels, pixels_to_normalized


def _coeffs(distortion: torch.Tensor, like: torch.Tensor) -> list[torch.Tensor]:
    check_float(distortion, "distortion")
    n = distortion.shape[-1] if distortion.dim() else 0
    if n not in (4, 5, 8):
        raise ValueError(f"distortion must have 4, 5 or 8 coefficients (k1, k2, p1, p2[, k3[, k4, k5, k6]]), "
                         f"got shape {tuple(distortion.shape)}")
    d = torch.cat([distortion, distortion.new_zeros(*distortion.shape[:-1], 8 - n)], -1).to(like.dtype)
    return [c[..., None] for c in d.unbind(-1)]  # each (..., 1), broadcasting over N


def distort_normalized(normalized: torch.Tensor, distortion: torch.Tensor) -> torch.Tensor:
    """Apply distortion to normalized image coordinates.

    Args:
        normalized: (..., N, 2) undistorted normalized coordinates (unitless).
        distortion: (..., 4|5|8) OpenCV coefficients.

    Returns:
        (..., N, 2) distorted normalized coordinates.
    """
    check_shape(normalized, (None, 2), "normalized")
    k1, k2, p1, p2, k3, k4, k5, k6 = _coeffs(distortion, normalized)
    x, y = normalized[..., 0], normalized[..., 1]
    r2 = x * x + y * y
    radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return torch.stack([xd, yd], -1)


def _distort_with_jacobian(x, y, c):
    k1, k2, p1, p2, k3, k4, k5, k6 = c
    r2 = x * x + y * y
    num = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    den = 1 + r2 * (k4 + r2 * (k5 + r2 * k6))
    radial = num / den
    dnum = k1 + r2 * (2 * k2 + 3 * r2 * k3)  # d num / d r2
    dden = k4 + r2 * (2 * k5 + 3 * r2 * k6)
    drad = (dnum * den - num * dden) / (den * den)  # d radial / d r2, and d r2/dx = 2x
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    j00 = radial + 2 * x * x * drad + 2 * p1 * y + 6 * p2 * x
    j01 = 2 * x * y * drad + 2 * p1 * x + 2 * p2 * y  # the Jacobian is symmetric: j10 = j01
    j11 = radial + 2 * y * y * drad + 6 * p1 * y + 2 * p2 * x
    return xd, yd, j00, j01, j11


def undistort_normalized(distorted: torch.Tensor, distortion: torch.Tensor, iterations: int = 20) -> torch.Tensor:
    """Invert :func:`distort_normalized` by Newton's method started at the distorted point.

    Args:
        distorted: (..., N, 2) distorted normalized coordinates.
        distortion: (..., 4|5|8) OpenCV coefficients.
        iterations: maximum Newton steps (unrolled). The loop stops early once every update is below a few ulps
            of the coordinates: Newton converges quadratically, so this usually takes 4-6 steps, and since the
            Newton map's derivative vanishes at its fixed point the gradients are the same as with more steps.

    Returns:
        (..., N, 2) undistorted normalized coordinates.
    """
    check_shape(distorted, (None, 2), "distorted")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    c = _coeffs(distortion, distorted)
    tx, ty = distorted[..., 0], distorted[..., 1]
    x, y = tx, ty
    tol = 4 * torch.finfo(distorted.dtype).eps
    for _ in range(iterations):
        xd, yd, a, b, d = _distort_with_jacobian(x, y, c)
        ex, ey = xd - tx, yd - ty
        det = a * d - b * b
        dx, dy = (d * ex - b * ey) / det, (a * ey - b * ex) / det
        x, y = x - dx, y - dy
        with torch.no_grad():  # convergence test only; a Python float, so no graph
            rel = torch.maximum(dx.abs() / (1 + x.abs()), dy.abs() / (1 + y.abs()))
            if x.numel() == 0 or float(rel.max()) <= tol:
                break
    return torch.stack([x, y], -1)


def undistort_points(pixels: torch.Tensor, intrinsics: torch.Tensor, distortion: torch.Tensor,
                     new_intrinsics: torch.Tensor | None = None, iterations: int = 20) -> torch.Tensor:
    """Undistort pixel coordinates (cv2.undistortPoints, with P = ``new_intrinsics``).

    Args:
        pixels: (..., N, 2) distorted pixel coordinates.
        intrinsics: (..., 3, 3) K of the distorted image.
        distortion: (..., 4|5|8) OpenCV coefficients.
        new_intrinsics: optional (..., 3, 3) K for the output; None returns normalized coordinates, as OpenCV
            does when P is omitted.
        iterations: Newton steps.

    Returns:
        (..., N, 2) undistorted normalized coordinates, or pixels of ``new_intrinsics``.
    """
    xy = undistort_normalized(pixels_to_normalized(pixels, intrinsics), distortion, iterations)
    return xy if new_intrinsics is None else normalized_to_pixels(xy, new_intrinsics)


def distort_points(pixels: torch.Tensor, intrinsics: torch.Tensor, distortion: torch.Tensor) -> torch.Tensor:
    """Distort undistorted pixel coordinates of the same camera (inverse of :func:`undistort_points` with
    ``new_intrinsics=intrinsics``).

    Args:
        pixels: (..., N, 2) undistorted pixels.
        intrinsics: (..., 3, 3) K.
        distortion: (..., 4|5|8) OpenCV coefficients.

    Returns:
        (..., N, 2) distorted pixels.
    """
    return normalized_to_pixels(distort_normalized(pixels_to_normalized(pixels, intrinsics), distortion), intrinsics)

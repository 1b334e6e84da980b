"""Homographies: from a plane (K, R, t, n, d), from a pure rotation (K R K^-1), normalized DLT, transfer errors.

Points are (..., N, 2) pixel coordinates; a homography H maps x1 to x2 ~ H x1 in homogeneous coordinates and is
returned scaled so that H[2, 2] = 1 (OpenCV's scaling; unit Frobenius norm where H[2, 2] vanishes).

References:
    Hartley and Zisserman, "Multiple View Geometry", 2nd ed., 2004: 4.1 and 4.4 (normalized DLT), 13.1
    (homography induced by a plane), 8.4.2 (pure rotation, H = K' R K^-1).
    Hartley, "In Defense of the Eight-Point Algorithm", PAMI 19(6), 1997 (point normalization).
"""

from __future__ import annotations

import math

import torch

from torchworks.core.errors import ShapeError
from torchworks.geometry._checks import check_float, check_shape, from_homogeneous, to_homogeneous
from torchworks.geometry.so3 import require_rotation


def normalize_points(points: torch.Tensor, weights: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Hartley normalization: translate the centroid to 0 and scale the mean distance to sqrt(2).

    Args:
        points: (..., N, 2) points.
        weights: optional (..., N) non-negative weights for the centroid and scale.

    Returns:
        (normalized points (..., N, 2), T (..., 3, 3)) with normalized = T applied to points.
    """
    check_shape(points, (None, 2), "points")
    if weights is None:  # the common case without the weighting ops
        mean = points.mean(-2)  # (..., 2)
        centred = points - mean[..., None, :]
        dist = centred.norm(dim=-1).mean(-1, keepdim=True)  # (..., 1)
    else:
        wsum = weights.sum(-1, keepdim=True).clamp(min=torch.finfo(points.dtype).tiny)
        mean = (points * weights[..., None]).sum(-2) / wsum
        centred = points - mean[..., None, :]
        dist = (centred.norm(dim=-1) * weights).sum(-1, keepdim=True) / wsum
    scale = math.sqrt(2) / dist.clamp(min=torch.finfo(points.dtype).eps)
    o, i = torch.zeros_like(scale[..., 0]), torch.ones_like(scale[..., 0])
    s = scale[..., 0]
    T = torch.stack([s, o, -s * mean[..., 0], o, s, -s * mean[..., 1], o, o, i], -1).unflatten(-1, (3, 3))
    return centred * scale[..., None], T


def null_vector(a: torch.Tensor) -> torch.Tensor:
    """Unit right singular vector of the smallest singular value of each (..., M, K) matrix, M >= K or not.

    Tall systems are first reduced by QR (A = QR has A's singular vectors in R), which costs less than an SVD
    of the tall matrix and, unlike eigh(A^T A), does not square the condition number. Without autograd, the
    vector is then taken from R by inverse iteration (triangular solves, a fraction of a 9x9 SVD's cost); the
    problems where it has not provably converged fall back to the SVD of R.
    """
    m, k = a.shape[-2:]
    if m > k:
        a = torch.linalg.qr(a, mode="reduced" if a.requires_grad else "r")[1]  # "r" has no backward
        if not a.requires_grad and a.dim() > 2:
            return _null_vector_triangular(a)
    elif m < k:  # zero rows keep the singular vectors and make the matrix square (SVD backward needs it)
        a = torch.cat([a, a.new_zeros(*a.shape[:-2], k - m, k)], -2)
    return torch.linalg.svd(a, full_matrices=True)[2][..., -1, :]


# Inverse iteration on the triangular factor: each step x <- R^-1 R^-T x multiplies the error by
# (s_min / s_next)^2 (~4e-5 for a 100-point homography with 1 px noise). A problem is accepted when the error
# estimate  d_k * rho / (1 - rho),  with d_k the change of the last step and rho = d_k / d_(k-1) the measured
# contraction, is below _INVERSE_ITERATION_TOL; the others (no spectral gap, exactly singular R, NaN) take the SVD.
_INVERSE_ITERATION_STEPS = 4
_INVERSE_ITERATION_TOL = 1e-13


def _null_vector_triangular(r: torch.Tensor) -> torch.Tensor:
    e = torch.zeros(*r.shape[:-1], 1, dtype=r.dtype, device=r.device)
    e[..., -1, 0] = 1
    x = torch.linalg.solve_triangular(r, e, upper=True)  # R^-1 e_k: already dominated by the null direction
    x = x / x.norm(dim=-2, keepdim=True)
    prev = torch.full(r.shape[:-2], torch.inf, dtype=r.dtype, device=r.device)
    change = prev
    for _ in range(_INVERSE_ITERATION_STEPS):
        y = torch.linalg.solve_triangular(r.transpose(-1, -2), x, upper=False)
        z = torch.linalg.solve_triangular(r, y, upper=True)
        z = z / z.norm(dim=-2, keepdim=True)
        z = z * torch.where((z * x).sum(-2, keepdim=True) < 0, -1.0, 1.0).to(z.dtype)
        prev, change = change, (z - x).norm(dim=(-2, -1))
        x = z
    rho = (change / prev).clamp(max=0.99)
    ok = change * rho / (1 - rho) <= _INVERSE_ITERATION_TOL  # False for NaN
    x = x[..., 0]
    if not bool(ok.all()):
        x = torch.where(ok[..., None], x, torch.linalg.svd(r)[2][..., -1, :])
    return x


def _scale_h(h: torch.Tensor) -> torch.Tensor:
    h = h / h.norm(dim=(-1, -2), keepdim=True)
    h22 = h[..., 2:, 2:]
    ok = h22.abs() > 1e-8
    return torch.where(ok, h / torch.where(ok, h22, torch.ones_like(h22)), h)


def find_homography(points1: torch.Tensor, points2: torch.Tensor, weights: torch.Tensor | None = None
                    ) -> torch.Tensor:
    """Homography by the normalized DLT solved with QR + SVD (algebraic least squares; no LM refinement).

    Args:
        points1: (..., N, 2) source pixels, N >= 4.
        points2: (..., N, 2) destination pixels.
        weights: optional (..., N) non-negative weights per correspondence (IRLS, LO-RANSAC).

    Returns:
        (..., 3, 3) H with x2 ~ H x1 and H[2, 2] = 1.
    """
    check_shape(points1, (None, 2), "points1")
    check_shape(points2, (None, 2), "points2")
    check_float(points1, "points1")
    if points1.shape[-2] != points2.shape[-2] or points1.shape[-2] < 4:
        raise ShapeError(f"need the same N >= 4 points in both sets, got {tuple(points1.shape)} and "
                         f"{tuple(points2.shape)}")
    n1, t1 = normalize_points(points1, weights)
    n2, t2 = normalize_points(points2, weights)
    x, y = n1[..., 0], n1[..., 1]
    u, v = n2[..., 0], n2[..., 1]
    i = torch.ones_like(x)
    if weights is not None:  # both rows of a correspondence scaled by sqrt(w): x, y and 1 carry the factor
        sw = weights.clamp(min=0).sqrt()
        x, y, i = x * sw, y * sw, sw
    # Rows 0..N-1 are the x equations (-x, -y, -1, 0, 0, 0, ux, uy, u), rows N..2N-1 the y equations. Built as
    # (..., 9, 2N) and transposed: column-major, the layout LAPACK's QR reads without a copy.
    n = x.shape[-1]
    if torch.is_grad_enabled() and (points1.requires_grad or points2.requires_grad or
                                    (weights is not None and weights.requires_grad)):
        o = torch.zeros_like(x)
        cols = [torch.cat(pair, -1) for pair in ((-x, o), (-y, o), (-i, o), (o, -x), (o, -y), (o, -i),
                                                 (u * x, v * x), (u * y, v * y), (u * i, v * i))]
        at = torch.stack(cols, -2)
    else:  # the same matrix written in place (no temporaries)
        at = x.new_zeros(*x.shape[:-1], 9, 2 * n)
        for j, c in enumerate((x, y, i)):
            torch.neg(c, out=at[..., j, :n])
            torch.neg(c, out=at[..., 3 + j, n:])
            torch.mul(u, c, out=at[..., 6 + j, :n])
            torch.mul(v, c, out=at[..., 6 + j, n:])
    hn = null_vector(at.transpose(-1, -2)).unflatten(-1, (3, 3))
    # Undo the normalization: H = T2^-1 Hn T1.
    return _scale_h(torch.linalg.solve(t2, hn @ t1))


def apply_homography(homography: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Map points through H.

    Args:
        homography: (..., 3, 3) H.
        points: (..., N, 2) pixels.

    Returns:
        (..., N, 2) mapped pixels (inf for points sent to the line at infinity).
    """
    check_shape(homography, (3, 3), "homography")
    check_shape(points, (None, 2), "points")
    return from_homogeneous(to_homogeneous(points) @ homography.transpose(-1, -2))


def transfer_error(homography: torch.Tensor, points1: torch.Tensor, points2: torch.Tensor,
                   symmetric: bool = False) -> torch.Tensor:
    """Transfer distance |x2 - H x1| (plus |x1 - H^-1 x2| when ``symmetric``).

    Args:
        homography: (..., 3, 3) H.
        points1: (..., N, 2) source pixels.
        points2: (..., N, 2) destination pixels.
        symmetric: add the backward transfer distance.

    Returns:
        (..., N) distances in pixels (sum of both directions when symmetric).
    """
    err = (apply_homography(homography, points1) - points2).norm(dim=-1)
    if symmetric:
        err = err + (apply_homography(torch.linalg.inv(homography), points2) - points1).norm(dim=-1)
    return err


def homography_from_plane(intrinsics1: torch.Tensor, intrinsics2: torch.Tensor, rotation: torch.Tensor,
                          translation: torch.Tensor, normal: torch.Tensor, distance: torch.Tensor | float
                          ) -> torch.Tensor:
    """Homography induced by the plane n^T X = d (camera-1 frame): H = K2 (R + t n^T / d) K1^-1.

    Args:
        intrinsics1: (..., 3, 3) K of camera 1; intrinsics2: (..., 3, 3) K of camera 2.
        rotation: (..., 3, 3) and translation: (..., 3), the relative pose x_cam2 = R x_cam1 + t.
        normal: (..., 3) unit plane normal in camera-1 coordinates.
        distance: plane offset d > 0 along ``normal`` (same units as t); a float or (...,) tensor.

    Returns:
        (..., 3, 3) H mapping camera-1 pixels of plane points to camera-2 pixels, H[2, 2] = 1.
    """
    require_rotation(rotation, "rotation")
    check_shape(translation, (3,), "translation")
    check_shape(normal, (3,), "normal")
    d = torch.as_tensor(distance, dtype=translation.dtype, device=translation.device)
    d = d[..., None, None] if d.dim() else d
    h = intrinsics2 @ (rotation + translation[..., :, None] * normal[..., None, :] / d) @ torch.linalg.inv(
        intrinsics1)
    return _scale_h(h)


def homography_from_rotation(intrinsics1: torch.Tensor, rotation: torch.Tensor,
                             intrinsics2: torch.Tensor | None = None) -> torch.Tensor:
    """Rotation-only (panorama) homography H = K2 R K1^-1; exact for any scene when the centres coincide.

    Args:
        intrinsics1: (..., 3, 3) K of camera 1.
        rotation: (..., 3, 3) rotation from camera-1 to camera-2 coordinates.
        intrinsics2: optional (..., 3, 3) K of camera 2 (default: ``intrinsics1``).

    Returns:
        (..., 3, 3) H with H[2, 2] = 1.
    """
    require_rotation(rotation, "rotation")
    k2 = intrinsics1 if intrinsics2 is None else intrinsics2
    return _scale_h(k2 @ rotation @ torch.linalg.inv(intrinsics1))

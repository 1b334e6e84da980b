"""Fundamental matrices: normalized 8-point and 7-point, epipoles, epipolar lines, Sampson/symmetric distances.

Convention: x2^T F x1 = 0 for corresponding pixels x1 (image 1) and x2 (image 2), in homogeneous coordinates.
F = K2^-T E K1^-1 (the seed note's F = K_r^-T E K_l^-1 with l = image 1, r = image 2). Estimated F's have unit
Frobenius norm and their largest-magnitude entry positive (a deterministic sign for comparisons); OpenCV
instead scales F[2, 2] to 1, which is undefined for the common F[2, 2] = 0 case (pure x translation).

Unlike ``cv2.findFundamentalMat``, points are not rounded to float32 and the linear system is solved by QR + SVD,
not by an eigen-decomposition of A^T A (which squares its condition number).

References:
    Hartley, "In Defense of the Eight-Point Algorithm", PAMI 19(6), 1997.
    Hartley and Zisserman, "Multiple View Geometry", 2nd ed., 2004: 9.2-9.6 (F, epipoles, F from P, P'),
    11.1-11.4 (8-point, 7-point, Sampson distance), 11.4.3 (symmetric epipolar distance).
"""

from __future__ import annotations

import torch

from torchworks.core.errors import ShapeError
from torchworks.geometry._checks import check_float, check_shape, safe_sqrt, skew, to_homogeneous
from torchworks.geometry.homography import normalize_points, null_vector


def _check_pairs(points1: torch.Tensor, points2: torch.Tensor, minimum: int) -> None:
    check_shape(points1, (None, 2), "points1")
    check_shape(points2, (None, 2), "points2")
    check_float(points1, "points1")
    if points1.shape[-2] != points2.shape[-2] or points1.shape[-2] < minimum:
        raise ShapeError(f"need the same N >= {minimum} points in both sets, got {tuple(points1.shape)} and "
                         f"{tuple(points2.shape)}")


def _unit_sign(f: torch.Tensor) -> torch.Tensor:
    f = f / f.norm(dim=(-1, -2), keepdim=True)
    flat = f.flatten(-2)
    big = flat.gather(-1, flat.abs().argmax(-1, keepdim=True))
    return f * torch.where(big < 0, -1.0, 1.0).to(f.dtype)[..., None]


def _design(n1: torch.Tensor, n2: torch.Tensor) -> torch.Tensor:
    # Row per correspondence: kron(x2, x1) so that A vec(F) = x2^T F x1 with F row-major; one stack of the 9
    # columns is cheaper than homogenizing and taking an outer product.
    x1, y1 = n1[..., 0], n1[..., 1]
    x2, y2 = n2[..., 0], n2[..., 1]
    cols = [x2 * x1, x2 * y1, x2, y2 * x1, y2 * y1, y2, x1, y1, torch.ones_like(x1)]
    # Stacked as (..., 9, N) and transposed: column-major, the layout LAPACK's QR reads without a copy.
    return torch.stack(cols, -2).transpose(-1, -2)  # (..., N, 9)


def enforce_rank2(matrix: torch.Tensor) -> torch.Tensor:
    """Closest rank-2 matrix in Frobenius norm (smallest singular value set to 0).

    Args:
        matrix: (..., 3, 3) matrices.

    Returns:
        (..., 3, 3) rank-2 matrices.
    """
    u, s, vh = torch.linalg.svd(matrix)
    s = torch.cat([s[..., :2], torch.zeros_like(s[..., 2:])], -1)
    return u @ (s[..., :, None] * vh)


def find_fundamental(points1: torch.Tensor, points2: torch.Tensor, weights: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """Normalized 8-point algorithm with rank-2 enforcement.

    Args:
        points1: (..., N, 2) pixels in image 1, N >= 8.
        points2: (..., N, 2) corresponding pixels in image 2.
        weights: optional (..., N) non-negative weights (IRLS, LO-RANSAC).

    Returns:
        (..., 3, 3) F with x2^T F x1 = 0, rank 2, unit Frobenius norm.
    """
    _check_pairs(points1, points2, 8)
    n1, t1 = normalize_points(points1, weights)
    n2, t2 = normalize_points(points2, weights)
    a = _design(n1, n2)
    if weights is not None:
        a = a * weights.clamp(min=0).sqrt()[..., None]
    fn = enforce_rank2(null_vector(a).unflatten(-1, (3, 3)))
    return _unit_sign(t2.transpose(-1, -2) @ fn @ t1)


# det(F2 + a G) is a cubic in a; its values at a = 0, 1, -1, 2 give the coefficients through this inverse
# Vandermonde matrix (rows: c0, c1, c2, c3).
_VANDERMONDE_INV = torch.linalg.inv(torch.tensor(
    [[1.0, 0, 0, 0], [1, 1, 1, 1], [1, -1, 1, -1], [1, 2, 4, 8]], dtype=torch.float64))


def find_fundamental_7point(points1: torch.Tensor, points2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """7-point algorithm: up to three rank-2 solutions from exactly 7 correspondences.

    Args:
        points1: (..., 7, 2) pixels in image 1.
        points2: (..., 7, 2) pixels in image 2.

    Returns:
        (F (..., 3, 3, 3) candidates with unit norm, valid (..., 3) bool marking the real roots). Invalid
        slots hold zeros; the order of the valid solutions is not meaningful.
    """
    _check_pairs(points1, points2, 7)
    if points1.shape[-2] != 7:
        raise ShapeError(f"the 7-point algorithm takes exactly 7 points, got {points1.shape[-2]}")
    n1, t1 = normalize_points(points1)
    n2, t2 = normalize_points(points2)
    a = _design(n1, n2)  # (..., 7, 9)
    if a.requires_grad:  # SVD of the zero-padded 9x9 system: differentiable
        vh = torch.linalg.svd(torch.cat([a, a.new_zeros(*a.shape[:-2], 2, 9)], -2))[2]
        f1, f2 = vh[..., -1, :], vh[..., -2, :]
    else:  # the last two columns of a complete QR of A^T span the same null space, ~10x cheaper in batches
        q = torch.linalg.qr(a.transpose(-1, -2), mode="complete")[0]  # (..., 9, 9)
        f1, f2 = q[..., :, 8], q[..., :, 7]
    f1, f2 = f1.unflatten(-1, (3, 3)), f2.unflatten(-1, (3, 3))
    g = f1 - f2
    samples = torch.stack([torch.linalg.det(f2 + s * g) for s in (0.0, 1.0, -1.0, 2.0)], -1)
    c = samples @ _VANDERMONDE_INV.to(samples).T  # (..., 4): c0 + c1 a + c2 a^2 + c3 a^3
    c3 = torch.where(c[..., 3].abs() < 1e-12, torch.full_like(c[..., 3], 1e-12), c[..., 3])
    comp = torch.zeros(*c.shape[:-1], 3, 3, dtype=c.dtype, device=c.device)
    comp[..., 0, :] = -c[..., [2, 1, 0]] / c3[..., None]
    comp[..., 1, 0] = 1
    comp[..., 2, 1] = 1
    roots = torch.linalg.eigvals(comp)  # (..., 3) complex
    valid = roots.imag.abs() <= 1e-8 * (1 + roots.real.abs())
    alpha = roots.real[..., None, None]
    fs = f2[..., None, :, :] + alpha * g[..., None, :, :]
    fs = t2.transpose(-1, -2)[..., None, :, :] @ fs @ t1[..., None, :, :]
    fs = torch.where(valid[..., None, None], _unit_sign(fs), torch.zeros_like(fs))
    return fs, valid


def fundamental_from_essential(essential: torch.Tensor, intrinsics1: torch.Tensor, intrinsics2: torch.Tensor
                               ) -> torch.Tensor:
    """F = K2^-T E K1^-1.

    Args:
        essential: (..., 3, 3) E with xn2^T E xn1 = 0 on normalized coordinates.
        intrinsics1: (..., 3, 3) K of image 1; intrinsics2: (..., 3, 3) K of image 2.

    Returns:
        (..., 3, 3) F (not rescaled).
    """
    check_shape(essential, (3, 3), "essential")
    k1_inv = torch.linalg.inv(intrinsics1)
    k2_inv = torch.linalg.inv(intrinsics2)
    return k2_inv.transpose(-1, -2) @ essential @ k1_inv


def essential_from_fundamental(fundamental: torch.Tensor, intrinsics1: torch.Tensor, intrinsics2: torch.Tensor
                               ) -> torch.Tensor:
    """E = K2^T F K1 (inverse of :func:`fundamental_from_essential`); shapes (..., 3, 3)."""
    check_shape(fundamental, (3, 3), "fundamental")
    return intrinsics2.transpose(-1, -2) @ fundamental @ intrinsics1


def fundamental_from_projections(projection1: torch.Tensor, projection2: torch.Tensor) -> torch.Tensor:
    """F = [e2]x P2 P1^+ with e2 = P2 C1 (C1 the centre of camera 1).

    Args:
        projection1: (..., 3, 4) camera matrix of image 1; projection2: (..., 3, 4) of image 2.

    Returns:
        (..., 3, 3) F with unit Frobenius norm.
    """
    check_shape(projection1, (3, 4), "projection1")
    check_shape(projection2, (3, 4), "projection2")
    c1 = null_vector(projection1)  # (..., 4) homogeneous centre
    e2 = (projection2 @ c1[..., None])[..., 0]
    p1_pinv = projection1.transpose(-1, -2) @ torch.linalg.inv(projection1 @ projection1.transpose(-1, -2))
    return _unit_sign(skew(e2) @ projection2 @ p1_pinv)


def epipoles(fundamental: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Epipoles as unit homogeneous 3-vectors: F e1 = 0 (image 1) and F^T e2 = 0 (image 2).

    Args:
        fundamental: (..., 3, 3) F.

    Returns:
        (e1 (..., 3), e2 (..., 3)); divide by the last coordinate for pixels (it is 0 when the epipole lies
        at infinity, e.g. for a sideways translation).
    """
    check_shape(fundamental, (3, 3), "fundamental")
    u, _, vh = torch.linalg.svd(fundamental)
    return vh[..., -1, :], u[..., :, -1]


def epipolar_lines(fundamental: torch.Tensor, points: torch.Tensor, image: int) -> torch.Tensor:
    """Epipolar lines (a, b, c) with a^2 + b^2 = 1, as ``cv2.computeCorrespondEpilines``.

    Args:
        fundamental: (..., 3, 3) F.
        points: (..., N, 2) pixels in image ``image``.
        image: 1 gives lines F x1 in image 2; 2 gives lines F^T x2 in image 1.

    Returns:
        (..., N, 3) lines a u + b v + c = 0 in the other image (signed point distance = a u + b v + c).
    """
    check_shape(fundamental, (3, 3), "fundamental")
    check_shape(points, (None, 2), "points")
    if image not in (1, 2):
        raise ValueError(f"image must be 1 or 2, got {image!r}")
    f = fundamental if image == 1 else fundamental.transpose(-1, -2)
    lines = to_homogeneous(points) @ f.transpose(-1, -2)
    return lines / lines[..., :2].norm(dim=-1, keepdim=True)


def sampson_distance(fundamental: torch.Tensor, points1: torch.Tensor, points2: torch.Tensor,
                     squared: bool = False) -> torch.Tensor:
    """First-order geometric error (x2^T F x1)^2 / (|F x1|_12^2 + |F^T x2|_12^2) (``cv2.sampsonDistance``).

    Args:
        fundamental: (..., 3, 3) F.
        points1: (..., N, 2) pixels in image 1; points2: (..., N, 2) in image 2.
        squared: return the squared distance (px^2, OpenCV's value) instead of pixels.

    Returns:
        (..., N) distances.
    """
    _check_pairs(points1, points2, 1)
    h1, h2 = to_homogeneous(points1), to_homogeneous(points2)
    fx1 = h1 @ fundamental.transpose(-1, -2)  # (..., N, 3) = F x1
    ftx2 = h2 @ fundamental  # F^T x2
    num = (h2 * fx1).sum(-1) ** 2
    den = fx1[..., :2].pow(2).sum(-1) + ftx2[..., :2].pow(2).sum(-1)
    d2 = num / den
    return d2 if squared else safe_sqrt(d2)[0]  # zero, not NaN, gradient on exact data


def symmetric_epipolar_distance(fundamental: torch.Tensor, points1: torch.Tensor, points2: torch.Tensor,
                                squared: bool = False) -> torch.Tensor:
    """Sum of squared point-to-epipolar-line distances in both images, d(x2, F x1)^2 + d(x1, F^T x2)^2.

    Args:
        fundamental: (..., 3, 3) F.
        points1: (..., N, 2) pixels in image 1; points2: (..., N, 2) in image 2.
        squared: return the sum of squares (px^2) instead of its square root.

    Returns:
        (..., N) distances.
    """
    _check_pairs(points1, points2, 1)
    h1, h2 = to_homogeneous(points1), to_homogeneous(points2)
    fx1 = h1 @ fundamental.transpose(-1, -2)
    ftx2 = h2 @ fundamental
    num = (h2 * fx1).sum(-1) ** 2
    d2 = num / fx1[..., :2].pow(2).sum(-1) + num / ftx2[..., :2].pow(2).sum(-1)
    return d2 if squared else safe_sqrt(d2)[0]  # zero, not NaN, gradient on exact data

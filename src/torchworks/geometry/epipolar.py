"""Fundamental matrices: normalized 8-point and 7-point, epipoles, epipolar lines, Sampson/symmetric distances.

Convention: x2^T F x1 = 0 for corresponding pixels x1 (image 1) and x2 (image 2), in homogeneous coordinates.
F = K2^-T E K1^-1 (the seed note's F = K_r^-T E K_l^-1 with l = image 1, r = image 2). Estimated F's have unit
Frobenius norm and their largest-magnitude entry positive (a deterministic sign for comparisons); OpenCV
instead scales F[2, 2] to 1, which is undefined for the common F[2, 2] = 0 case (pure x translation).

Unlike ``cv2.findFundamentalMat``, points are not rounded to float32. The 8-point system is solved through A^T A
(fast, batched) only where an error bound shows that squaring its condition number costs nothing at float64
precision, and by QR + SVD of A otherwise.

References:
    Hartley, "In Defense of the Eight-Point Algorithm", PAMI 19(6), 1997.
    Hartley and Zisserman, "Multiple View Geometry", 2nd ed., 2004: 9.2-9.6 (F, epipoles, F from P, P'),
    11.1-11.4 (8-point, 7-point, Sampson distance), 11.4.3 (symmetric epipolar distance).
"""

from __future__ import annotations

import math

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


def _hartley_monomials(points: torch.Tensor, weights: torch.Tensor | None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Monomials (xx, xy, x, yy, y, 1) of the centred points (..., 6, N), their Hartley scales (..., 6), and T.

    The normalization is :func:`normalize_points`'s (centroid to 0, mean distance to sqrt(2)); the monomials are
    of the centred points, and the scale s enters through the factors (s^2, s^2, s, s^2, s, 1) applied to the
    small moment matrix instead of to every point.
    """
    if weights is None:
        mean = points.mean(-2, keepdim=True)  # (..., 1, 2)
    else:
        wsum = weights.sum(-1, keepdim=True).clamp(min=torch.finfo(points.dtype).tiny)  # (..., 1)
        mean = (points * weights[..., None]).sum(-2, keepdim=True) / wsum[..., None]
    c = points - mean
    x, y = c[..., 0], c[..., 1]
    if c.requires_grad:
        mono = torch.stack([x * x, x * y, x, y * y, y, torch.ones_like(x)], -2)
    else:  # the same, written in place: no stacking copy
        mono = c.new_empty(*c.shape[:-2], 6, c.shape[-2])
        torch.mul(x, x, out=mono[..., 0, :])
        torch.mul(x, y, out=mono[..., 1, :])
        mono[..., 2, :] = x
        torch.mul(y, y, out=mono[..., 3, :])
        mono[..., 4, :] = y
        mono[..., 5, :] = 1
    r = torch.sqrt(mono[..., 0, :] + mono[..., 3, :])  # distances to the centroid
    dist = r.mean(-1) if weights is None else (r * weights).sum(-1) / wsum[..., 0]
    scales, t = _scales_and_t(dist, mean[..., 0, :])
    return mono, scales, t


def _scales_and_t(dist: torch.Tensor, mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # Hartley scale s from the mean distance: monomial factors (s^2, s^2, s, s^2, s, 1) and T, from (...,) dist
    # and (..., 2) centroid.
    s = math.sqrt(2) / dist.clamp(min=torch.finfo(dist.dtype).eps)
    o, i = torch.zeros_like(s), torch.ones_like(s)
    scales = torch.stack([s * s, s * s, s, s * s, s, i], -1)
    t = torch.stack([s, o, -s * mean[..., 0], o, s, -s * mean[..., 1], o, o, i], -1).unflatten(-1, (3, 3))
    return scales, t


def _moments_blockwise(points1: torch.Tensor, points2: torch.Tensor, weights: torch.Tensor | None):
    """What _hartley_monomials + the moment product compute, without autograd, in blocks of problems.

    The monomials of a block are written into two reused buffers of ~_BLOCK_POINTS points, so a large batch
    allocates a few hundred kB once instead of several MB of temporaries per call (glibc serves those from fresh
    mmap'ed pages, and the page faults then cost as much as the arithmetic).
    """
    batch, n = points1.shape[:-2], points1.shape[-2]
    p1, p2 = points1.reshape(-1, n, 2), points2.reshape(-1, n, 2)
    w = None if weights is None else weights.reshape(-1, n)
    count = p1.shape[0]
    block = max(1, min(count, _BLOCK_POINTS // n))
    moments = p1.new_empty(count, 6, 6)
    bufs = [p1.new_empty(block, 6, n), p1.new_empty(block, 6, n)]
    for buf in bufs:
        buf[:, 5] = 1
    radius = p1.new_empty(block, n)
    means = []
    for p in (p1, p2):
        if w is None:
            means.append(p.mean(-2))  # (B, 2)
        else:
            wsum = w.sum(-1).clamp(min=torch.finfo(p.dtype).tiny)
            means.append((p * w[..., None]).sum(-2) / wsum[..., None])
    dists = [p1.new_empty(count), p1.new_empty(count)]
    for start in range(0, count, block):
        b = min(block, count - start)
        sl = slice(start, start + b)
        for k, p in enumerate((p1, p2)):
            m = bufs[k][:b]
            torch.sub(p[sl, :, 0], means[k][sl, 0:1], out=m[:, 2])
            torch.sub(p[sl, :, 1], means[k][sl, 1:2], out=m[:, 4])
            torch.mul(m[:, 2], m[:, 2], out=m[:, 0])
            torch.mul(m[:, 2], m[:, 4], out=m[:, 1])
            torch.mul(m[:, 4], m[:, 4], out=m[:, 3])
            r = torch.add(m[:, 0], m[:, 3], out=radius[:b])
            # sqrt(r2) as r2 * rsqrt(r2) (within 1 ulp; the clamp keeps a point at the centroid at 0, not NaN):
            # float64 sqrt is not vectorised in this torch build and took 3.5 ns per point, rsqrt * x 1.4 ns.
            r = r.mul_(r.clamp(min=torch.finfo(r.dtype).tiny).rsqrt_())
            dists[k][sl] = r.mean(-1) if w is None else (r * w[sl]).sum(-1) / w[sl].sum(-1).clamp(
                min=torch.finfo(p.dtype).tiny)
        m2 = bufs[1][:b]
        if w is not None:  # weighted sums; the row of ones is restored for the next block
            m2.mul_(w[sl, None, :])
        torch.bmm(m2, bufs[0][:b].transpose(-1, -2), out=moments[sl])
        if w is not None:
            bufs[1][:, 5] = 1
    (s1, t1), (s2, t2) = _scales_and_t(dists[0], means[0]), _scales_and_t(dists[1], means[1])
    return (moments.reshape(*batch, 6, 6), (s1.reshape(*batch, 6), t1.reshape(*batch, 3, 3)),
            (s2.reshape(*batch, 6), t2.reshape(*batch, 3, 3)))


# Column 3 i2 + i1 of the 8-point design matrix A is h2[i2] h1[i1] with h = (x, y, 1), so an entry of A^T A is a
# sum of m2[q(i2, j2)] m1[q(i1, j1)] over the points, with m the six distinct monomials of degree <= 2 and q the
# map below: the 81 entries are gathered from a 6x6 moment matrix (36 products per point instead of 81).
_MONOMIAL_OF = [[0, 1, 2], [1, 3, 4], [2, 4, 5]]
_GATHER2 = torch.tensor([[_MONOMIAL_OF[c // 3][d // 3] for d in range(9)] for c in range(9)])
_GATHER1 = torch.tensor([[_MONOMIAL_OF[c % 3][d % 3] for d in range(9)] for c in range(9)])
# The Gram route is accepted where its error bound eps * lambda_max / (lambda_2 - lambda_1) (the eigenvector
# perturbation of A^T A rounded to working precision) is below this many ulps; Hartley-normalized data sit near
# ~250 (condition number of A ~ 16 on the benchmark scenes), far below it.
_GRAM_ULPS = 1e4
# Correspondences per block of _moments_blockwise (two monomial buffers of 6 x this many float64: ~1.5 MB).
_BLOCK_POINTS = 1 << 14


def find_fundamental(points1: torch.Tensor, points2: torch.Tensor, weights: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """Normalized 8-point algorithm with rank-2 enforcement.

    The null vector of the normalized design matrix A is taken from the eigen-decomposition of A^T A, built from
    a 6x6 moment matrix of the points (the fast route OpenCV and kornia also take), but only where that is as
    exact as QR + SVD of A up to a bound of ~1e4 ulps (eps * lambda_max / eigen-gap of A^T A); problems whose
    normalized system is worse conditioned than that (condition number above ~100) are solved by QR + SVD of A.

    Args:
        points1: (..., N, 2) pixels in image 1, N >= 8.
        points2: (..., N, 2) corresponding pixels in image 2.
        weights: optional (..., N) non-negative weights (IRLS, LO-RANSAC).

    Returns:
        (..., 3, 3) F with x2^T F x1 = 0, rank 2, unit Frobenius norm.
    """
    _check_pairs(points1, points2, 8)
    if weights is not None:
        weights = weights.clamp(min=0)
    needs_grad = torch.is_grad_enabled() and (points1.requires_grad or points2.requires_grad or
                                              (weights is not None and weights.requires_grad))
    if needs_grad:
        m1, s1, t1 = _hartley_monomials(points1, weights)
        m2, s2, t2 = _hartley_monomials(points2, weights)
        moments = (m2 if weights is None else m2 * weights[..., None, :]) @ m1.transpose(-1, -2)  # (..., 6, 6)
    else:
        moments, (s1, t1), (s2, t2) = _moments_blockwise(points1, points2, weights)
    moments = moments * (s2[..., :, None] * s1[..., None, :])  # moments of the normalized points
    gram = moments[..., _GATHER2.to(moments.device), _GATHER1.to(moments.device)]  # (..., 9, 9) = A^T A
    lam, vec = torch.linalg.eigh(gram)
    f = vec[..., :, 0]
    loose = lam[..., -1] > _GRAM_ULPS * (lam[..., 1] - lam[..., 0])  # error bound above _GRAM_ULPS ulps
    if bool(loose.any()):  # rare: QR + SVD of the design matrix itself
        n1, n2 = normalize_points(points1, weights)[0], normalize_points(points2, weights)[0]
        a = _design(n1, n2)
        if weights is not None:
            a = a * weights.sqrt()[..., None]
        f = torch.where(loose[..., None], null_vector(a), f)
    fn = enforce_rank2(f.unflatten(-1, (3, 3)))
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

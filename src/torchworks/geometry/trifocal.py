"""The trifocal tensor: from three cameras, point and line transfer, linear estimation, pairwise F's.

Layout: ``T[..., i, j, k]`` = T_i^{jk} of Hartley-Zisserman (i: view-1 index, contracted with a point x1 or
giving a line l1; j, k: view-2 and view-3 line indices). The incidence relations used here are

* line transfer: l1_i = l2_j l3_k T_i^{jk};
* point-point-point: [x2]x (sum_i x1^i T_i) [x3]x = 0 (a 3x3 matrix of zeros, 4 independent equations).

Tensors returned have unit Frobenius norm (a trifocal tensor is defined up to scale).

References:
    Hartley and Zisserman, "Multiple View Geometry", 2nd ed., 2004: chapter 15 (definition, eq. 17.12 by
    determinants, transfer, epipoles and F from T: algorithm 15.1) and 16.2 (normalized linear algorithm).
"""

from __future__ import annotations

import torch

from torchworks.core.errors import ShapeError
from torchworks.geometry._checks import check_float, check_shape, skew, to_homogeneous
from torchworks.geometry.homography import normalize_points, null_vector


def trifocal_from_projections(projection1: torch.Tensor, projection2: torch.Tensor, projection3: torch.Tensor
                              ) -> torch.Tensor:
    """T_i^{qr} = (-1)^(i+1) det[~a^i; b^q; c^r] (HZ eq. 17.12), valid for any three finite cameras.

    Args:
        projection1, projection2, projection3: (..., 3, 4) camera matrices (rows a, b, c).

    Returns:
        (..., 3, 3, 3) unit-norm tensor.
    """
    for name, p in (("projection1", projection1), ("projection2", projection2), ("projection3", projection3)):
        check_shape(p, (3, 4), name)
    rows = []
    for i in range(3):
        keep = [r for r in range(3) if r != i]
        a = projection1[..., keep, :]  # (..., 2, 4): P1 without row i
        m = torch.cat([a[..., None, None, :, :].expand(*a.shape[:-2], 3, 3, 2, 4),
                       projection2[..., :, None, None, :].expand(*a.shape[:-2], 3, 3, 1, 4),
                       projection3[..., None, :, None, :].expand(*a.shape[:-2], 3, 3, 1, 4)], -2)
        rows.append((1 if i % 2 == 0 else -1) * torch.linalg.det(m))  # (..., 3, 3) over (q, r)
    t = torch.stack(rows, -3)
    return t / t.flatten(-3).norm(dim=-1)[..., None, None, None]


def transfer_line(trifocal: torch.Tensor, line2: torch.Tensor, line3: torch.Tensor) -> torch.Tensor:
    """Line in view 1 from corresponding lines in views 2 and 3: l1_i = l2^T T_i l3.

    Args:
        trifocal: (..., 3, 3, 3) T.
        line2: (..., N, 3) lines (a, b, c) in view 2; line3: (..., N, 3) in view 3.

    Returns:
        (..., N, 3) lines in view 1 (up to scale), normalized to a^2 + b^2 = 1.
    """
    check_shape(trifocal, (3, 3, 3), "trifocal")
    check_shape(line2, (None, 3), "line2")
    l1 = torch.einsum("...nj,...ijk,...nk->...ni", line2, trifocal, line3)
    return l1 / l1[..., :2].norm(dim=-1, keepdim=True)


def transfer_point(trifocal: torch.Tensor, points1: torch.Tensor, points2: torch.Tensor) -> torch.Tensor:
    """Point in view 3 from a correspondence in views 1 and 2 (least squares on the point-point-point relation).

    Solves [x2]x (sum_i x1^i T_i) [x3]x = 0 for x3: nine equations, linear in x3, one SVD per point. Unlike
    transfer through a single line l2 this needs no choice of line and degrades gracefully with noise; it fails
    only for points on the baseline of views 1 and 2 (where any transfer is undefined).

    Args:
        trifocal: (..., 3, 3, 3) T.
        points1: (..., N, 2) pixels in view 1; points2: (..., N, 2) in view 2.

    Returns:
        (..., N, 2) pixels in view 3.
    """
    check_shape(trifocal, (3, 3, 3), "trifocal")
    check_shape(points1, (None, 2), "points1")
    check_shape(points2, (None, 2), "points2")
    x1, x2 = to_homogeneous(points1), to_homogeneous(points2)
    m = skew(x2) @ torch.einsum("...ni,...ijk->...njk", x1, trifocal)
    # M [x3]x = 0  <=>  for each row r of M: r x x3 = 0, i.e. -[r]x x3 = 0: stack the three [r]x blocks.
    a = -skew(m).flatten(-3, -2)  # (..., N, 9, 3)
    x3 = null_vector(a)
    return x3[..., :2] / x3[..., 2:]


def _design_rows(x1: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor) -> torch.Tensor:
    # Coefficients of vec(T) (index order i, j, k) in the 9 entries of [x2]x (x1^i T_i) [x3]x.
    s2, s3 = skew(x2), skew(x3)  # (..., N, 3, 3)
    # entry (p, q) = sum_{i,j,k} s2[p, j] x1[i] T[i, j, k] s3[k, q]
    coef = torch.einsum("...pj,...i,...kq->...pqijk", s2, x1, s3)
    return coef.flatten(-5, -4).flatten(-3)  # (..., N, 9, 27)


def find_trifocal(points1: torch.Tensor, points2: torch.Tensor, points3: torch.Tensor) -> torch.Tensor:
    """Normalized linear estimation from N >= 7 point triplets (HZ algorithm 16.1 without the algebraic step).

    Args:
        points1: (..., N, 2) pixels in view 1; points2, points3: (..., N, 2) in views 2 and 3.

    Returns:
        (..., 3, 3, 3) unit-norm T (not constrained to be a valid tensor; exact for noise-free data).
    """
    for name, p in (("points1", points1), ("points2", points2), ("points3", points3)):
        check_shape(p, (None, 2), name)
    check_float(points1, "points1")
    if not points1.shape[-2] == points2.shape[-2] == points3.shape[-2] or points1.shape[-2] < 7:
        raise ShapeError(f"need the same N >= 7 points in the three views, got {tuple(points1.shape)}, "
                         f"{tuple(points2.shape)}, {tuple(points3.shape)}")
    (n1, h1), (n2, h2), (n3, h3) = normalize_points(points1), normalize_points(points2), normalize_points(points3)
    a = _design_rows(to_homogeneous(n1), to_homogeneous(n2), to_homogeneous(n3)).flatten(-3, -2)  # (..., 9N, 27)
    tn = null_vector(a).unflatten(-1, (3, 3, 3))
    # Undo the normalization: T_m^{jk} = H1[r, m] inv(H2)[j, s] inv(H3)[k, t] Tn_r^{st}.
    t = torch.einsum("...rm,...js,...kt,...rst->...mjk", h1, torch.linalg.inv(h2), torch.linalg.inv(h3), tn)
    return t / t.flatten(-3).norm(dim=-1)[..., None, None, None]


def trifocal_epipoles(trifocal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Epipoles e2 (image of camera-1's centre in view 2) and e3 (in view 3), unit homogeneous (..., 3) each.

    e2 is orthogonal to the left null vectors of the T_i, e3 to their right null vectors (HZ algorithm 15.1).
    """
    check_shape(trifocal, (3, 3, 3), "trifocal")
    u, _, vh = torch.linalg.svd(trifocal)
    left, right = u[..., :, -1], vh[..., -1, :]  # (..., 3 (i), 3)
    return null_vector(left), null_vector(right)


def fundamentals_from_trifocal(trifocal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """F21 = [e2]x [T1, T2, T3] e3 and F31 = [e3]x [T1^T, T2^T, T3^T] e2.

    Args:
        trifocal: (..., 3, 3, 3) T.

    Returns:
        (F21, F31), each (..., 3, 3) with unit norm: x2^T F21 x1 = 0 and x3^T F31 x1 = 0.
    """
    e2, e3 = trifocal_epipoles(trifocal)
    f21 = skew(e2) @ (trifocal @ e3[..., None, :, None])[..., 0].transpose(-1, -2)
    f31 = skew(e3) @ (trifocal.transpose(-1, -2) @ e2[..., None, :, None])[..., 0].transpose(-1, -2)
    return f21 / f21.norm(dim=(-1, -2), keepdim=True), f31 / f31.norm(dim=(-1, -2), keepdim=True)

"""Essential matrices: E from a pose (two conventions), linear estimation, the four (R, t) and cheirality.

Two conventions for the same E, both satisfying the Longuet-Higgins relation xn2^T E xn1 = 0 on normalized
coordinates xn = K^-1 x:

* ``"common"`` (OpenCV, kornia, Hartley-Zisserman): the relative pose maps camera-1 to camera-2 coordinates,
  X2 = R X1 + t, and E = [t]x R.
* ``"note"`` (the seed note, after Longuet-Higgins / Trucco-Verri): X2 = R (X1 - T), where T is the centre of
  camera 2 in camera-1 coordinates, and E = R [T]x.

They describe the same geometry when t = -R T, and then E_note = R [T]x = -[t]x R = -E_common: equal up to
the (irrelevant) sign. Tested in ``tests/geometry/test_essential.py``.

References:
    Longuet-Higgins, "A computer algorithm for reconstructing a scene from two projections", Nature 293, 1981.
    Hartley and Zisserman, "Multiple View Geometry", 2nd ed., 2004: 9.6 (E, its SVD, the four solutions).
    Trucco and Verri, "Introductory Techniques for 3-D Computer Vision", 1998, section 7.3.
"""

from __future__ import annotations

import torch

from torchworks.geometry._checks import check_shape, skew
from torchworks.geometry.camera import pixels_to_normalized
from torchworks.geometry.epipolar import _check_pairs, _unit_sign, find_fundamental
from torchworks.geometry.so3 import require_rotation
from torchworks.geometry.triangulation import depths, triangulate_dlt

_W = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def essential_from_pose(rotation: torch.Tensor, translation: torch.Tensor, convention: str = "common"
                        ) -> torch.Tensor:
    """E of a relative pose.

    Args:
        rotation: (..., 3, 3) rotation R.
        translation: (..., 3) ``t`` (X2 = R X1 + t) for ``"common"``, or the note's ``T`` (centre of camera 2 in
            camera-1 coordinates, X2 = R (X1 - T)) for ``"note"``.
        convention: "common" gives [t]x R; "note" gives R [T]x (see the module docstring).

    Returns:
        (..., 3, 3) E (not normalized).
    """
    require_rotation(rotation, "rotation")
    check_shape(translation, (3,), "translation")
    if convention == "common":
        return skew(translation) @ rotation
    if convention == "note":
        return rotation @ skew(translation)
    raise ValueError(f"convention must be 'common' or 'note', got {convention!r}")


def project_to_essential(matrix: torch.Tensor) -> torch.Tensor:
    """Nearest essential matrix: singular values replaced by (1, 1, 0).

    Args:
        matrix: (..., 3, 3) matrices.

    Returns:
        (..., 3, 3) essential matrices with unit singular values.
    """
    u, _, vh = torch.linalg.svd(matrix)
    s = torch.tensor([1.0, 1.0, 0.0], dtype=matrix.dtype, device=matrix.device)
    return u @ (s[:, None] * vh)


def find_essential(points1: torch.Tensor, points2: torch.Tensor, intrinsics1: torch.Tensor,
                   intrinsics2: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Linear (8-point) essential matrix on normalized coordinates, projected onto the essential manifold.

    Args:
        points1: (..., N, 2) pixels in image 1, N >= 8; points2: (..., N, 2) in image 2.
        intrinsics1: (..., 3, 3) K of image 1; intrinsics2: (..., 3, 3) K of image 2.
        weights: optional (..., N) non-negative weights.

    Returns:
        (..., 3, 3) E with singular values (1, 1, 0) and a deterministic sign. Differentiable wherever the
        linear estimate has distinct singular values (noisy data); see :func:`decompose_essential`.
    """
    _check_pairs(points1, points2, 8)
    e = find_fundamental(pixels_to_normalized(points1, intrinsics1), pixels_to_normalized(points2, intrinsics2),
                         weights)
    return _unit_sign(project_to_essential(e)) * 2**0.5


def decompose_essential(essential: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The four (R, t) consistent with E: (U W V^T | U W^T V^T) x (+u3 | -u3).

    Args:
        essential: (..., 3, 3) E.

    Returns:
        (rotations (..., 4, 3, 3), translations (..., 4, 3) with unit norm), ordered
        (R1, t), (R1, -t), (R2, t), (R2, -t) with R1 = U W V^T.

    Gradients: an exact E has two equal singular values, where the SVD's backward pass is undefined; gradients
    are finite only for E with distinct singular values (e.g. a linear estimate before projection).
    """
    check_shape(essential, (3, 3), "essential")
    u, _, vh = torch.linalg.svd(essential)
    # E = (-U) S (-V)^T as well, so flipping keeps a valid SVD while making both rotations proper.
    u = u * torch.where(torch.linalg.det(u) < 0, -1.0, 1.0).to(u.dtype)[..., None, None]
    vh = vh * torch.where(torch.linalg.det(vh) < 0, -1.0, 1.0).to(u.dtype)[..., None, None]
    w = _W.to(u)
    r1 = u @ w @ vh
    r2 = u @ w.T @ vh
    t = u[..., :, 2]
    rots = torch.stack([r1, r1, r2, r2], -3)
    trans = torch.stack([t, -t, t, -t], -2)
    return rots, trans


def recover_pose(essential: torch.Tensor, points1: torch.Tensor, points2: torch.Tensor,
                 intrinsics1: torch.Tensor, intrinsics2: torch.Tensor, max_depth: float = 50.0
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pick the (R, t) of E that puts the most points in front of both cameras (``cv2.recoverPose``).

    Args:
        essential: (..., 3, 3) E.
        points1: (..., N, 2) pixels in image 1; points2: (..., N, 2) in image 2.
        intrinsics1: (..., 3, 3) K of image 1; intrinsics2: (..., 3, 3) K of image 2.
        max_depth: points farther than this (in units of |t| = 1) do not vote, as in OpenCV (distanceThresh),
            because near-infinite points have a random depth sign.

    Returns:
        (R (..., 3, 3), t (..., 3) unit, in_front (..., N) bool for the chosen solution), with X2 = R X1 + t.
    """
    _check_pairs(points1, points2, 1)
    rots, trans = decompose_essential(essential)
    n1 = pixels_to_normalized(points1, intrinsics1)[..., None, :, :].expand(*rots.shape[:-2], -1, 2)
    n2 = pixels_to_normalized(points2, intrinsics2)[..., None, :, :].expand(*rots.shape[:-2], -1, 2)
    eye = torch.eye(3, 4, dtype=rots.dtype, device=rots.device).expand(*rots.shape[:-2], 3, 4)
    p2 = torch.cat([rots, trans[..., None]], -1)  # (..., 4, 3, 4)
    proj = torch.stack([eye, p2], -3)  # (..., 4, 2, 3, 4)
    pts = triangulate_dlt(proj, torch.stack([n1, n2], -3))  # (..., 4, N, 3)
    z = depths(proj, pts)  # (..., 4, 2, N)
    good = (z > 0).all(-2) & (z < max_depth).all(-2) & torch.isfinite(pts).all(-1)  # (..., 4, N)
    best = good.sum(-1).argmax(-1)  # (...,)
    r = rots.gather(-3, best[..., None, None, None].expand(*best.shape, 1, 3, 3))[..., 0, :, :]
    t = trans.gather(-2, best[..., None, None].expand(*best.shape, 1, 3))[..., 0, :]
    mask = good.gather(-2, best[..., None, None].expand(*best.shape, 1, good.shape[-1]))[..., 0, :]
    return r, t, mask


def _sampson_residuals(rot: torch.Tensor, t: torch.Tensor, n1: torch.Tensor, n2: torch.Tensor,
                       k1_inv: torch.Tensor, k2_inv: torch.Tensor) -> torch.Tensor:
    # Signed Sampson residuals in pixels of F = K2^-T [t]x R K1^-1 (n1, n2 are homogeneous pixels).
    f = k2_inv.transpose(-1, -2) @ skew(t) @ rot @ k1_inv
    fx1 = n1 @ f.transpose(-1, -2)
    ftx2 = n2 @ f
    num = (n2 * fx1).sum(-1)
    return num / (fx1[..., :2].pow(2).sum(-1) + ftx2[..., :2].pow(2).sum(-1)).sqrt()


def refine_pose_sampson(rotation: torch.Tensor, translation: torch.Tensor, points1: torch.Tensor,
                        points2: torch.Tensor, intrinsics1: torch.Tensor, intrinsics2: torch.Tensor,
                        iterations: int = 10, weights: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Levenberg-Marquardt on the 5-DoF relative pose minimizing the (weighted) Sampson error in pixels.

    The linear estimate minimizes an algebraic error on normalized coordinates and then projects onto the
    essential manifold, which is measurably worse than a minimal-solver + refinement pipeline; a few LM steps
    close that gap. The update is R <- R exp(w), t <- normalize(t + a b1 + b b2) with (b1, b2) spanning t's
    tangent plane.

    Args:
        rotation: (3, 3) initial R; translation: (3,) initial t (any norm), X2 = R X1 + t.
        points1: (N, 2) pixels in image 1; points2: (N, 2) in image 2 (N >= 5).
        intrinsics1: (3, 3) K of image 1; intrinsics2: (3, 3) K of image 2.
        iterations: LM steps.
        weights: optional (N,) non-negative weights.

    Returns:
        (R (3, 3), t (3,) unit) refined; not differentiable (use the linear solvers for gradients).
    """
    from torchworks.geometry._checks import to_homogeneous
    from torchworks.geometry.rotations import axis_angle_to_matrix

    _check_pairs(points1, points2, 5)
    require_rotation(rotation, "rotation")
    h1, h2 = to_homogeneous(points1.detach()), to_homogeneous(points2.detach())
    k1_inv, k2_inv = torch.linalg.inv(intrinsics1.detach()), torch.linalg.inv(intrinsics2.detach())
    sw = torch.ones_like(h1[:, 0]) if weights is None else weights.detach().clamp(min=0).sqrt()
    rot, t = rotation.detach(), translation.detach() / translation.detach().norm()
    lam = 1e-3

    def residual(r, tt, delta):  # delta (B, 5) -> residuals (B, N), rotations (B, 3, 3), translations (B, 3)
        b = torch.linalg.svd(tt[None, :])[2][1:]  # (2, 3) orthonormal basis of t's tangent plane
        r_new = r @ axis_angle_to_matrix(delta[:, :3])
        t_new = tt + delta[:, 3:] @ b
        t_new = t_new / t_new.norm(dim=-1, keepdim=True)
        return sw * _sampson_residuals(r_new, t_new, h1, h2, k1_inv, k2_inv), r_new, t_new

    # Central differences: all 10 probes in one batched evaluation, accurate to ~1e-10.
    probes = torch.cat([torch.zeros(1, 5, dtype=h1.dtype), torch.eye(5, dtype=h1.dtype) * 1e-6,
                        -torch.eye(5, dtype=h1.dtype) * 1e-6])
    for _ in range(iterations):
        out = residual(rot, t, probes)[0]
        res, jac = out[0], ((out[1:6] - out[6:]) / 2e-6).T  # (N,), (N, 5)
        jtj, jtr = jac.T @ jac, jac.T @ res
        cost = res.pow(2).sum()
        for _ in range(10):  # raise the damping until the step lowers the cost
            step = torch.linalg.solve(jtj + lam * torch.diag(jtj.diagonal() + 1e-12), -jtr)
            new_res, r_new, t_new = residual(rot, t, step[None])
            new_cost = new_res.pow(2).sum()
            if new_cost < cost:
                rot, t, lam = r_new[0], t_new[0], max(lam / 10, 1e-12)
                break
            lam *= 10
        else:
            break
        if float(cost - new_cost) <= 1e-12 * float(cost):  # converged: further steps change nothing visible
            break
    return rot, t

"""Absolute pose (PnP): P3P and EPnP solvers, RANSAC with local optimisation, Levenberg-Marquardt refinement.

Poses are ``world_to_cam`` (x_cam = R X + t, OpenCV camera frame); pixels follow OpenCV's convention, and an
optional distortion (k1, k2, p1, p2[, k3]) is OpenCV's. The minimal and linear solvers work on undistorted
normalized coordinates and are batched over leading dimensions; the refinement minimizes the reprojection error in
pixels with the full camera model (analytic Jacobian, :mod:`torchworks.geometry._reprojection`).

* :func:`solve_p3p` - Grunert's three-point solution (a quartic in a ratio of depths, its real roots from the
  companion matrix), up to four poses, each polished by Gauss-Newton on the three distance constraints.
* :func:`solve_epnp` - EPnP for N >= 4 points: the points as weighted sums of four control points whose camera
  coordinates span the null space of a 2N x 12 system; the 1-, 2- and 3-dimensional null-space hypotheses are
  tried and the one with the lowest reprojection error is kept. Coplanar points go through the homography of
  their plane instead (EPnP's fourth control point is undetermined there).
* :func:`refine_pnp` - LM on the reprojection error (least squares or Huber).
* :func:`pnp_ransac` - batched P3P hypotheses scored at once (MSAC), LM on the inliers as local optimisation, a
  final LM; flags poses with too few inliers like :func:`torchworks.geometry.ransac.ransac`.

References:
    Haralick, Lee, Ottenberg and Nolle, "Review and analysis of solutions of the three point perspective pose
    estimation problem", IJCV 13(3), 1994 (Grunert's solution, section 3.1).
    Lepetit, Moreno-Noguer and Fua, "EPnP: An Accurate O(n) Solution to the PnP Problem", IJCV 81(2), 2009.
    Horn, "Closed-form solution of absolute orientation using unit quaternions", JOSA A 4(4), 1987 (here via SVD).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from torchworks.core.errors import ShapeError
from torchworks.geometry._checks import check_float, check_shape
from torchworks.geometry._reprojection import project, rodrigues
from torchworks.geometry.distortion import undistort_points
from torchworks.geometry.intrinsics import pixels_to_normalized
from torchworks.geometry.so3 import require_rotation


def _normalized(pixels: torch.Tensor, intrinsics: torch.Tensor, distortion: torch.Tensor | None) -> torch.Tensor:
    if distortion is None:
        return pixels_to_normalized(pixels, intrinsics)
    return undistort_points(pixels, intrinsics, distortion)


def _check_correspondences(points: torch.Tensor, pixels: torch.Tensor, minimum: int) -> None:
    check_shape(points, (None, 3), "points_world")
    check_shape(pixels, (None, 2), "pixels")
    check_float(points, "points_world")
    check_float(pixels, "pixels")
    if points.shape[-2] != pixels.shape[-2] or points.shape[-2] < minimum:
        raise ShapeError(f"need the same N >= {minimum} points in points_world and pixels, got "
                         f"{tuple(points.shape)} and {tuple(pixels.shape)}")


def _kabsch(src: torch.Tensor, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, t) minimizing sum |R src + t - dst|^2 for (..., N, 3) point sets (proper rotation, SVD)."""
    cs, cd = src.mean(-2, keepdim=True), dst.mean(-2, keepdim=True)
    h = (dst - cd).transpose(-1, -2) @ (src - cs)  # (..., 3, 3)
    u, _, vh = torch.linalg.svd(h)
    d = torch.linalg.det(u @ vh)
    u = torch.cat([u[..., :2], u[..., 2:] * d[..., None, None]], -1)
    rot = u @ vh
    return rot, (cd - cs @ rot.transpose(-1, -2))[..., 0, :]


# --------------------------------------------------------------------------------------------------------- P3P

def solve_p3p(points_world: torch.Tensor, pixels: torch.Tensor, intrinsics: torch.Tensor,
              distortion: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All poses (up to four) that project three world points onto three pixels.

    Args:
        points_world: (..., 3, 3) three world points per problem (not collinear).
        pixels: (..., 3, 2) their pixels.
        intrinsics: (..., 3, 3) K.
        distortion: optional (..., 4|5|8) OpenCV coefficients (the pixels are undistorted first).

    Returns:
        (R (..., 4, 3, 3), t (..., 4, 3), valid (..., 4) bool); invalid slots hold the identity and zeros.
    """
    _check_correspondences(points_world, pixels, 3)
    if points_world.shape[-2] != 3:
        raise ShapeError(f"P3P takes exactly 3 points, got {points_world.shape[-2]}")
    n = _normalized(pixels, intrinsics, distortion)
    return _p3p(points_world, n)


def _p3p(x: torch.Tensor, n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """P3P on (..., 3, 3) world points and (..., 3, 2) normalized coordinates."""
    dtype = x.dtype
    j = torch.cat([n, torch.ones_like(n[..., :1])], -1)
    j = j / j.norm(dim=-1, keepdim=True)  # unit bearings (..., 3, 3)
    x1, x2, x3 = x.unbind(-2)
    a2 = (x2 - x3).pow(2).sum(-1)  # squared side lengths opposite each point
    b2 = (x1 - x3).pow(2).sum(-1)
    c2 = (x1 - x2).pow(2).sum(-1)
    ca = (j[..., 1, :] * j[..., 2, :]).sum(-1)  # cos(alpha) between bearings 2 and 3
    cb = (j[..., 0, :] * j[..., 2, :]).sum(-1)
    cg = (j[..., 0, :] * j[..., 1, :]).sum(-1)
    b2s = torch.where(b2 > 0, b2, torch.ones_like(b2))
    p, q, r_ = (a2 - c2) / b2s, (a2 + c2) / b2s, (b2 - c2) / b2s
    s_, u_ = (b2 - a2) / b2s, c2 / b2s
    # Grunert's quartic A4 v^4 + ... + A0 = 0 in v = s3 / s1 (Haralick et al. 1994, eq. 9).
    a4 = (p - 1) ** 2 - 4 * u_ * ca**2
    a3 = 4 * (p * (1 - p) * cb - (1 - q) * ca * cg + 2 * u_ * ca**2 * cb)
    a2c = 2 * (p**2 - 1 + 2 * p**2 * cb**2 + 2 * r_ * ca**2 - 4 * q * ca * cb * cg + 2 * s_ * cg**2)
    a1 = 4 * (-p * (1 + p) * cb + 2 * (a2 / b2s) * cg**2 * cb - (1 - q) * ca * cg)
    a0 = (1 + p) ** 2 - 4 * (a2 / b2s) * cg**2
    lead = torch.where(a4.abs() > 1e-12 * (a0.abs() + a1.abs() + a2c.abs() + a3.abs() + a4.abs()), a4,
                       torch.full_like(a4, 1e-12))
    comp = torch.zeros(*a4.shape, 4, 4, dtype=dtype, device=x.device)
    comp[..., 0, :] = -torch.stack([a3, a2c, a1, a0], -1) / lead[..., None]
    comp[..., 1, 0] = comp[..., 2, 1] = comp[..., 3, 2] = 1.0
    roots = torch.linalg.eigvals(comp)  # (..., 4)
    v = roots.real
    real = roots.imag.abs() <= 1e-6 * (1 + v.abs())
    # u = s2 / s1 from v (eq. 8), then s1 from the b side.
    cav, cbv, cgv = ca[..., None], cb[..., None], cg[..., None]
    pv = p[..., None]
    den = 2 * (cgv - v * cav)
    u = ((-1 + pv) * v**2 - 2 * pv * cbv * v + 1 + pv) / torch.where(den.abs() > 1e-15, den, torch.full_like(den,
                                                                                                           1e-15))
    s1_sq = b2[..., None] / (1 + v**2 - 2 * v * cbv)
    ok = real & (v > 0) & (u > 0) & (s1_sq > 0) & torch.isfinite(u)
    s1 = torch.where(ok, s1_sq, torch.ones_like(s1_sq)).sqrt()
    depths = torch.stack([s1, u * s1, v * s1], -1)  # (..., 4, 3) distances along the bearings
    depths = _polish_p3p(depths, a2, b2, c2, ca, cb, cg)
    cam = depths[..., :, None] * j[..., None, :, :]  # (..., 4, 3, 3) points in the camera frame
    rot, t = _kabsch(x[..., None, :, :].expand_as(cam), cam)
    ok = ok & torch.isfinite(rot).flatten(-2).all(-1) & torch.isfinite(t).all(-1)
    eye = torch.eye(3, dtype=dtype, device=x.device).expand_as(rot)
    return torch.where(ok[..., None, None], rot, eye), torch.where(ok[..., None], t, torch.zeros_like(t)), ok


def _polish_p3p(d, a2, b2, c2, ca, cb, cg, steps: int = 2):
    """Gauss-Newton on the three law-of-cosines equations in the depths (..., 4, 3); the quartic's roots carry
    the conditioning of Grunert's elimination, which one or two steps remove."""
    target = torch.stack([a2, b2, c2], -1)[..., None, :]  # (..., 1, 3): sides (2,3), (1,3), (1,2)
    cosines = torch.stack([ca, cb, cg], -1)[..., None, :]
    pairs = ((1, 2), (0, 2), (0, 1))
    for _ in range(steps):
        f = torch.stack([d[..., i] ** 2 + d[..., k] ** 2 - 2 * d[..., i] * d[..., k] * cosines[..., m]
                         for m, (i, k) in enumerate(pairs)], -1) - target
        jac = torch.zeros(*d.shape, 3, dtype=d.dtype, device=d.device)  # (..., 4, eq, depth)
        for m, (i, k) in enumerate(pairs):
            jac[..., m, i] = 2 * d[..., i] - 2 * d[..., k] * cosines[..., m]
            jac[..., m, k] = 2 * d[..., k] - 2 * d[..., i] * cosines[..., m]
        step, info = torch.linalg.solve_ex(jac, f)
        good = (info == 0)[..., None] & torch.isfinite(step)
        d = d - torch.where(good, step, torch.zeros_like(step))
    return d


# -------------------------------------------------------------------------------------------------------- EPnP

def solve_epnp(points_world: torch.Tensor, pixels: torch.Tensor, intrinsics: torch.Tensor,
               distortion: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """EPnP pose from N >= 4 correspondences (least squares; exact on noise-free data, planar scenes included).

    Args:
        points_world: (N, 3) world points.
        pixels: (N, 2) their pixels.
        intrinsics: (3, 3) K.
        distortion: optional (4|5|8,) OpenCV coefficients.

    Returns:
        (R (3, 3), t (3,)) world_to_cam.
    """
    _check_correspondences(points_world, pixels, 4)
    if points_world.dim() != 2:
        raise ShapeError(f"solve_epnp takes one problem, (N, 3) points; got {tuple(points_world.shape)}")
    n = _normalized(pixels, intrinsics, distortion)
    rot, t = _epnp(points_world.detach().cpu().double().numpy(), n.detach().cpu().double().numpy())
    like = points_world.detach()
    return torch.from_numpy(rot).to(like), torch.from_numpy(t).to(like)


def _epnp(x: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EPnP on (N, 3) world points and (N, 2) normalized coordinates (NumPy)."""
    centre = x.mean(0)
    xc = x - centre
    evals, evecs = np.linalg.eigh(xc.T @ xc / len(x))  # ascending
    if evals[0] < 1e-10 * evals[2]:  # coplanar (or nearly): through the plane's homography
        return _planar_pose(x, n, centre, evecs)
    ctrl = np.vstack([centre, centre + (np.sqrt(evals[::-1])[:, None] * evecs[:, ::-1].T)])  # (4, 3)
    alphas = np.linalg.solve((ctrl[1:] - ctrl[0]).T, xc.T).T  # (N, 3) weights of control points 1-3
    alphas = np.hstack([1 - alphas.sum(1, keepdims=True), alphas])  # (N, 4)
    m = np.zeros((2 * len(x), 12))
    m[0::2, 0::3], m[0::2, 2::3] = alphas, -alphas * n[:, :1]
    m[1::2, 1::3], m[1::2, 2::3] = alphas, -alphas * n[:, 1:]
    _, vecs = np.linalg.eigh(m.T @ m)
    kernel = vecs[:, :4][:, ::-1].T.reshape(4, 4, 3)[::-1]  # kernel[0] = the smallest eigenvector's control points
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    rho = np.array([np.sum((ctrl[a] - ctrl[b]) ** 2) for a, b in pairs])
    diff = np.stack([kernel[:, a] - kernel[:, b] for a, b in pairs], 1)  # (4 kernels, 6 pairs, 3)
    best, best_err = None, math.inf
    for dim in (1, 2, 3):
        betas = _betas(diff[:dim], rho)
        for _ in range(4):  # Gauss-Newton on the betas of this null-space dimension
            betas = _refine_betas(diff[:dim], rho, betas)
        cam_ctrl = np.tensordot(betas, kernel[:dim], 1)  # (4, 3)
        cam = alphas @ cam_ctrl
        if np.mean(cam[:, 2]) < 0:
            cam, cam_ctrl = -cam, -cam_ctrl
        rot, t = _kabsch_np(x, cam)
        pc = x @ rot.T + t
        err = np.mean(np.sum((pc[:, :2] / pc[:, 2:] - n) ** 2, 1))
        if err < best_err:
            best, best_err = (rot, t), err
    return best


def _betas(diff: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Initial null-space weights: linearize |sum_k b_k (v_k,a - v_k,b)|^2 = rho over the products b_i b_j."""
    dim = diff.shape[0]
    if dim == 1:
        d = np.sum(diff[0] ** 2, 1)
        return np.array([math.sqrt(max(float(d @ rho) / float(d @ d), 0.0))])
    idx = [(i, k) for i in range(dim) for k in range(i, dim)]
    ell = np.stack([(1 if i == k else 2) * np.sum(diff[i] * diff[k], 1) for i, k in idx], 1)  # (6, products)
    prod = np.linalg.lstsq(ell, rho, rcond=None)[0]
    b0 = math.sqrt(abs(prod[0]))
    betas = np.zeros(dim)
    betas[0] = b0
    for k in range(1, dim):  # b_0 b_k / b_0
        betas[k] = prod[idx.index((0, k))] / b0 if b0 > 0 else 0.0
    return betas


def _refine_betas(diff: np.ndarray, rho: np.ndarray, betas: np.ndarray) -> np.ndarray:
    vec = np.tensordot(betas, diff, 1)  # (6, 3)
    f = np.sum(vec**2, 1) - rho
    jac = 2 * np.einsum("pc,kpc->pk", vec, diff)  # (6, dim)
    return betas - np.linalg.lstsq(jac, f, rcond=None)[0]


def _kabsch_np(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cs, cd = src.mean(0), dst.mean(0)
    u, _, vt = np.linalg.svd((dst - cd).T @ (src - cs))
    d = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag([1.0, 1.0, d]) @ vt
    return rot, cd - rot @ cs


def _planar_pose(x, n, centre, evecs):
    """Pose of coplanar points from the homography between their plane coordinates and the normalized image."""
    basis = evecs[:, ::-1].T  # rows: the plane's two axes, then its normal
    plane = (x - centre) @ basis[:2].T  # (N, 2)
    a = np.zeros((2 * len(x), 9))
    a[0::2, 0:2], a[0::2, 2], a[0::2, 6:8], a[0::2, 8] = plane, 1, -n[:, :1] * plane, -n[:, 0]
    a[1::2, 3:5], a[1::2, 5], a[1::2, 6:8], a[1::2, 8] = plane, 1, -n[:, 1:] * plane, -n[:, 1]
    h = np.linalg.svd(a)[2][-1].reshape(3, 3)  # [r1 r2 t] up to scale
    scale = 2 / (np.linalg.norm(h[:, 0]) + np.linalg.norm(h[:, 1]))
    h = h * scale * np.sign(h[2, 2])  # the plane's origin in front of the camera
    r = np.stack([h[:, 0], h[:, 1], np.cross(h[:, 0], h[:, 1])], 1)
    u, _, vt = np.linalg.svd(r)
    r = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt  # plane frame -> camera
    rot = r @ basis  # world -> camera: into plane coordinates, then the plane's pose
    return rot, h[:, 2] - rot @ centre


# ---------------------------------------------------------------------------------------------------------- LM

def _intrinsics_vector(intrinsics: torch.Tensor, distortion: torch.Tensor | None) -> np.ndarray:
    k = intrinsics.detach().cpu().double().numpy()
    if abs(k[0, 1]) > 1e-12 * abs(k[0, 0]):
        raise ValueError("PnP refinement assumes zero skew in K")
    d = np.zeros(5)
    if distortion is not None:
        dd = distortion.detach().cpu().double().numpy().reshape(-1)
        if dd.size not in (4, 5) or (dd.size > 5 and np.any(dd[5:])):
            raise ValueError(f"PnP refinement takes 4 or 5 distortion coefficients, got {dd.size}")
        d[: dd.size] = dd
    return np.array([k[0, 0], k[1, 1], k[0, 2], k[1, 2], *d])


def _lm_pose(intr: np.ndarray, x: np.ndarray, uv: np.ndarray, rot: np.ndarray, t: np.ndarray,
             iterations: int = 20, huber: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """LM on the (Huber) reprojection error of one pose; returns (R, t, cost)."""

    def evaluate(r, tt, jac):
        out = project(intr, r, tt, x, want_pose=jac)
        res = (out[0] - uv).reshape(-1)
        behind = out[1] <= 0
        if behind.any():  # points behind the camera: a large constant residual keeps them out of the optimum
            res = res.copy()
            res.reshape(-1, 2)[behind] = 1e3
        return res, (out[2].reshape(-1, 6) if jac else None)

    def robust(res):
        if huber is None:
            return float(res @ res), None
        a = np.abs(res)
        w = np.sqrt(huber / np.maximum(a, huber))
        return float(np.where(a <= huber, res * res, 2 * huber * a - huber * huber).sum()), w

    res, jac = evaluate(rot, t, True)
    cost, w = robust(res)
    lam = 1e-3
    for _ in range(iterations):
        if w is not None:
            res, jac = res * w, jac * w[:, None]
        jtj, jtr = jac.T @ jac, jac.T @ res
        diag = np.diag(jtj).copy() + 1e-12
        for _ in range(10):
            step = np.linalg.solve(jtj + np.diag(lam * diag), -jtr)
            r_new, t_new = rodrigues(step[:3]) @ rot, t + step[3:]
            new_cost = robust(evaluate(r_new, t_new, False)[0])[0]
            if new_cost < cost:
                break
            lam *= 10
        else:
            break
        done = float(np.abs(step).max()) < 1e-10 or cost - new_cost <= 1e-10 * cost
        rot, t, cost, lam = r_new, t_new, new_cost, max(lam / 10, 1e-12)
        if done:
            break
        res, jac = evaluate(rot, t, True)
        w = robust(res)[1]
    return rot, t, cost


def refine_pnp(rotation: torch.Tensor, translation: torch.Tensor, points_world: torch.Tensor, pixels: torch.Tensor,
               intrinsics: torch.Tensor, distortion: torch.Tensor | None = None, iterations: int = 20,
               huber: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Levenberg-Marquardt on the reprojection error of one pose (``cv2.solvePnP`` with
    ``SOLVEPNP_ITERATIVE`` and a guess, or ``cv2.solvePnPRefineLM``).

    Args:
        rotation: (3, 3) initial world_to_cam R; translation: (3,) initial t.
        points_world: (N, 3) world points; pixels: (N, 2) their pixels (N >= 3).
        intrinsics: (3, 3) K (zero skew).
        distortion: optional (4|5,) OpenCV coefficients, applied in the projection.
        iterations: maximum LM iterations.
        huber: Huber threshold in pixels (None: least squares).

    Returns:
        (R (3, 3), t (3,)) refined (not differentiable).
    """
    _check_correspondences(points_world, pixels, 3)
    require_rotation(rotation, "rotation")
    rot, t, _ = _lm_pose(_intrinsics_vector(intrinsics, distortion), points_world.detach().cpu().double().numpy(),
                         pixels.detach().cpu().double().numpy(), rotation.detach().cpu().double().numpy(),
                         translation.detach().cpu().double().numpy().reshape(3), iterations, huber)
    like = rotation.detach()
    return torch.from_numpy(rot).to(like), torch.from_numpy(t).to(like)


# ------------------------------------------------------------------------------------------------------ RANSAC

@dataclass
class PnPResult:
    """Outcome of :func:`pnp_ransac`.

    Attributes:
        rotation: (3, 3) world_to_cam R (NaN when nothing was found).
        translation: (3,) t.
        inliers: (N,) bool, reprojection error below the threshold and in front of the camera.
        num_inliers: their number.
        iterations: minimal samples drawn.
        rms: RMS reprojection error of the inliers, pixels.
        few_inliers: fewer than ``min_inliers`` inliers or under ``min_inlier_fraction`` of the points.
    """

    rotation: torch.Tensor
    translation: torch.Tensor
    inliers: torch.Tensor
    num_inliers: int
    iterations: int
    rms: float
    few_inliers: bool = False


def _reprojection_sq(rot: torch.Tensor, t: torch.Tensor, x: torch.Tensor, n: torch.Tensor, f: torch.Tensor):
    """Squared reprojection errors in pixels (pinhole on undistorted normalized coordinates, scaled by the focal
    lengths) of (S, 3, 3) poses: (S, N); points behind the camera get inf."""
    pc = x @ rot.transpose(-1, -2) + t[:, None, :]  # (S, N, 3)
    z = pc[..., 2]
    d = (pc[..., :2] / z[..., None] - n) * f
    err = d.square().sum(-1)
    return torch.where(z > 0, err, torch.full_like(err, math.inf)).nan_to_num(nan=math.inf)


def pnp_ransac(points_world: torch.Tensor, pixels: torch.Tensor, intrinsics: torch.Tensor,
               distortion: torch.Tensor | None = None, threshold: float = 2.0, confidence: float = 0.999,
               max_iterations: int = 10000, batch_size: int = 32, seed: int = 0, refine: bool = True,
               min_inliers: int = 15, min_inlier_fraction: float = 0.2) -> PnPResult:
    """Robust absolute pose from 2D-3D correspondences with outliers (``cv2.solvePnPRansac``).

    Args:
        points_world: (N, 3) world points; pixels: (N, 2) their (distorted) pixels, N >= 4.
        intrinsics: (3, 3) K; distortion: optional (4|5,) OpenCV coefficients.
        threshold: inlier threshold on the reprojection error, pixels.
        confidence: stop when an all-inlier sample was drawn with this probability.
        max_iterations: cap on the number of 3-point samples.
        batch_size: samples solved and scored in the first round (later rounds draw what is needed); 32 already
            holds an all-inlier 3-point sample with probability 0.9999 at 30 % outliers.
        seed: seed of the private generator.
        refine: LM on the inliers of each new best pose, and a final LM (otherwise the P3P pose).
        min_inliers, min_inlier_fraction: support below which ``few_inliers`` is set.

    Returns:
        A :class:`PnPResult`.
    """
    _check_correspondences(points_world, pixels, 4)
    if points_world.dim() != 2:
        raise ShapeError(f"pnp_ransac takes one problem, (N, 3) points; got {tuple(points_world.shape)}")
    if threshold <= 0 or not 0 < confidence < 1 or batch_size < 1:
        raise ValueError(f"need threshold > 0, 0 < confidence < 1 and batch_size >= 1, got {threshold}, "
                         f"{confidence}, {batch_size}")
    x = points_world.detach().to(torch.float64)
    n = _normalized(pixels.detach().to(torch.float64), intrinsics.to(torch.float64),
                    None if distortion is None else distortion.to(torch.float64))
    f = torch.stack([intrinsics[0, 0], intrinsics[1, 1]]).to(torch.float64)
    intr = _intrinsics_vector(intrinsics, distortion)
    x_np, uv_np = x.numpy(), pixels.detach().cpu().double().numpy()
    count, th2 = x.shape[0], threshold**2
    gen = torch.Generator().manual_seed(seed)
    best = (math.inf, None, None)
    needed, drawn = max_iterations, 0
    while drawn < min(needed, max_iterations):
        k = min(max(needed - drawn, batch_size // 4) if drawn else batch_size, 8 * batch_size, max_iterations - drawn)
        idx = torch.rand(k, count, generator=gen).topk(3, dim=-1).indices  # (k, 3) distinct points
        drawn += k
        rot, t, ok = _p3p(x[idx], n[idx])  # (k, 4, 3, 3)
        rot, t = rot[ok], t[ok]
        if rot.shape[0] == 0:
            continue
        if rot.shape[0] >= 64 and count >= 256:  # rank on a subset first, score the best eighth fully
            sub = torch.randperm(count, generator=gen)[:128]
            pre = _reprojection_sq(rot, t, x[sub], n[sub], f).clamp(max=th2).sum(-1)
            keep = pre.topk(max(8, rot.shape[0] // 8), largest=False).indices
            rot, t = rot[keep], t[keep]
        scores = _reprojection_sq(rot, t, x, n, f).clamp(max=th2).sum(-1)
        i = int(scores.argmin())
        score = float(scores[i])
        if score >= best[0]:
            continue
        r_best, t_best = rot[i].numpy(), t[i].numpy()
        if refine:
            r_best, t_best, score = _local_optimize(x_np, uv_np, intr, r_best, t_best, th2, score)
        best = (score, r_best, t_best)
        inl = _errors_np(intr, r_best, t_best, x_np, uv_np) < th2
        needed = _samples_needed(float(inl.mean()), confidence)
    score, rot, t = best
    if rot is None:
        nan = torch.full((3,), math.nan, dtype=torch.float64)
        return PnPResult(nan.expand(3, 3).clone(), nan, torch.zeros(count, dtype=torch.bool), 0, drawn, math.inf,
                         True)
    err = _errors_np(intr, rot, t, x_np, uv_np)
    if refine and int((err < th2).sum()) >= 4:
        for _ in range(3):  # LM on the inliers until they settle
            inl = err < th2
            rot, t, _ = _lm_pose(intr, x_np[inl], uv_np[inl], rot, t, huber=threshold / 2)
            err = _errors_np(intr, rot, t, x_np, uv_np)
            if np.array_equal(err < th2, inl):
                break
    inl = err < th2
    num = int(inl.sum())
    rms = math.sqrt(float(err[inl].mean())) if num else math.inf
    return PnPResult(torch.from_numpy(rot), torch.from_numpy(t), torch.from_numpy(inl), num, drawn, rms,
                     num < min_inliers or num < min_inlier_fraction * count)


def _errors_np(intr, rot, t, x, uv) -> np.ndarray:
    """Squared reprojection errors (N,) with the full camera model; inf behind the camera."""
    proj, z = project(intr, rot, t, x)
    err = ((proj - uv) ** 2).sum(-1)
    return np.where(z > 0, err, np.inf)


def _local_optimize(x, uv, intr, rot, t, th2, score):
    """LM (Huber) on the inliers of the pose, kept when the MSAC score improves. (Refitting EPnP on the inliers
    first, as cv2.solvePnPRansac does, gave the same poses at twice the cost: LM from the P3P pose converges.)"""
    inl = _errors_np(intr, rot, t, x, uv) < th2
    if inl.sum() < 6:
        return rot, t, score
    r1, t1, _ = _lm_pose(intr, x[inl], uv[inl], rot, t, iterations=10, huber=math.sqrt(th2) / 2)
    s = float(np.minimum(_errors_np(intr, r1, t1, x, uv), th2).sum())
    return (r1, t1, s) if s < score else (rot, t, score)


def _samples_needed(ratio: float, confidence: float) -> int:
    p = ratio**3
    if p <= 0:
        return 10**9
    if p >= 1:
        return 1
    return math.ceil(math.log(1 - confidence) / math.log(1 - p))

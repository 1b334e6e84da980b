"""Bundle adjustment in torch: Levenberg-Marquardt over camera poses, 3D points and optionally shared intrinsics.

The cost is the sum over observations (camera c sees point p at pixel x) of a loss of the reprojection residuals
r = pi(K, d, R_c, t_c, X_p) - x, each pixel coordinate separately (as ``scipy.optimize.least_squares`` applies its
loss): ``"linear"`` r^2, ``"huber"`` (k^2 rho(r^2 / k^2) with rho(z) = z up to 1 and 2 sqrt(z) - 1 beyond) or
``"cauchy"`` (rho(z) = log(1 + z)), k = ``loss_scale`` pixels. The camera model is OpenCV's (fx, fy, cx, cy,
k1, k2, p1, p2, k3); any subset of these nine shared parameters can be refined.

Structure: every residual depends on one camera (6 parameters, left increments R <- exp(w) R, t <- t + dt), one
point (3) and the shared intrinsics. The normal equations are reduced to the camera-side parameters by a Schur
complement on the points (each point's 3 x 3 block inverted in one batched call): S = U - sum_p B_p V_p^-1 B_p^T,
formed by one GEMM over all points, solved densely, and the point updates recovered by back-substitution.
Robust losses enter as IRLS weights recomputed at every iteration; a step is accepted when the robust cost drops.

Gauge: a reconstruction is defined up to a similarity (7 degrees of freedom). By default camera 0's pose is held
fixed and the scale by the largest translation component of the camera farthest from it (cameras listed in
``fixed_cameras`` are all held; with two or more, nothing else is needed).

Differentiable where meaningful: :func:`reprojection_residuals` is plain torch and supports autograd (e.g. to
learn from reprojection errors); the solver itself runs without autograd.

References:
    Triggs, McLauchlan, Hartley and Fitzgibbon, "Bundle Adjustment - A Modern Synthesis", 2000 (sections 6.1, 9).
    Hartley and Zisserman, "Multiple View Geometry", 2nd ed., 2004, A6.3 (sparse LM, Schur complement).
    Agarwal, Snavely, Seitz and Szeliski, "Bundle Adjustment in the Large", ECCV 2010 (robust losses, gauge).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from torchworks.core.errors import ShapeError
from torchworks.geometry._reprojection import INTRINSICS, project, rodrigues
from torchworks.geometry.so3 import require_rotation

LOSSES = ("linear", "huber", "cauchy")


@dataclass
class BundleResult:
    """Outcome of :func:`bundle_adjust`.

    Attributes:
        rotations: (C, 3, 3) world_to_cam rotations; translations: (C, 3).
        points: (P, 3) world points.
        intrinsics: (9,) (fx, fy, cx, cy, k1, k2, p1, p2, k3).
        initial_cost, final_cost: robust costs (sum over residual coordinates, px^2).
        rms: root mean square of the final residuals (px), all observations.
        iterations: LM iterations run.
        converged: the relative cost change or the step fell below the tolerances.
    """

    rotations: torch.Tensor
    translations: torch.Tensor
    points: torch.Tensor
    intrinsics: torch.Tensor
    initial_cost: float
    final_cost: float
    rms: float
    iterations: int
    converged: bool


def intrinsics_vector(intrinsics: torch.Tensor, distortion: torch.Tensor | None = None) -> torch.Tensor:
    """(9,) (fx, fy, cx, cy, k1, k2, p1, p2, k3) from a (3, 3) zero-skew K and optional (4|5,) distortion."""
    if intrinsics.shape != (3, 3):
        raise ShapeError(f"intrinsics must be (3, 3), got {tuple(intrinsics.shape)}")
    if abs(float(intrinsics[0, 1])) > 1e-12 * abs(float(intrinsics[0, 0])):
        raise ValueError("bundle adjustment assumes zero skew in K")
    d = torch.zeros(5, dtype=torch.float64)
    if distortion is not None:
        dd = distortion.detach().reshape(-1).to(torch.float64)
        if dd.numel() not in (4, 5):
            raise ValueError(f"distortion must have 4 or 5 coefficients, got {dd.numel()}")
        d[: dd.numel()] = dd
    k = intrinsics.detach().to(torch.float64)
    return torch.cat([torch.stack([k[0, 0], k[1, 1], k[0, 2], k[1, 2]]), d])


def reprojection_residuals(rotations: torch.Tensor, translations: torch.Tensor, points: torch.Tensor,
                           camera_index: torch.Tensor, point_index: torch.Tensor, pixels: torch.Tensor,
                           intrinsics: torch.Tensor) -> torch.Tensor:
    """(M, 2) residuals pi(K, d, R_c, t_c, X_p) - x of the observations (differentiable in every input).

    Args:
        rotations: (C, 3, 3); translations: (C, 3); points: (P, 3).
        camera_index, point_index: (M,) int64 indices of each observation's camera and point.
        pixels: (M, 2) observed pixels.
        intrinsics: (9,) from :func:`intrinsics_vector`.
    """
    uv, _ = project(intrinsics, rotations[camera_index], translations[camera_index], points[point_index])
    return uv - pixels


def _loss(res: torch.Tensor, loss: str, k: float) -> tuple[float, torch.Tensor | None]:
    """(robust cost, sqrt of the IRLS weights per residual coordinate or None) of residuals (M, 2)."""
    z = (res / k) ** 2
    if loss == "linear":
        return float(res.square().sum()), None
    if loss == "huber":
        rho = torch.where(z <= 1, z, 2 * z.clamp(min=1).sqrt() - 1)
        weight = torch.where(z <= 1, torch.ones_like(z), z.clamp(min=1).rsqrt())  # rho'(z)
    else:  # cauchy
        rho = torch.log1p(z)
        weight = 1 / (1 + z)
    return float(k * k * rho.sum()), weight.sqrt()


def _gauge(rotations, translations, fixed_cameras):
    """Indices of the camera-side parameters held fixed: all 6 of the fixed cameras, plus one translation
    coordinate (the scale) when a single camera is fixed."""
    fixed = set(fixed_cameras)
    held = [(c, j) for c in sorted(fixed) for j in range(6)]
    if len(fixed) == 1 and rotations.shape[0] > 1:
        c0 = next(iter(fixed))
        centres = -(rotations.transpose(-1, -2) @ translations[..., None])[..., 0]
        dist = (centres - centres[c0]).norm(dim=-1)
        dist[c0] = -1
        far = int(dist.argmax())
        held.append((far, 3 + int(translations[far].abs().argmax())))
    return held


def bundle_adjust(rotations: torch.Tensor, translations: torch.Tensor, points: torch.Tensor,
                  camera_index: torch.Tensor, point_index: torch.Tensor, pixels: torch.Tensor,
                  intrinsics: torch.Tensor, distortion: torch.Tensor | None = None,
                  refine_intrinsics: Sequence[str] = (), loss: str = "linear", loss_scale: float = 1.0,
                  fixed_cameras: Sequence[int] = (0,), iterations: int = 100, tolerance: float = 1e-10
                  ) -> BundleResult:
    """Jointly refine camera poses, points and optionally shared intrinsics by sparse Levenberg-Marquardt.

    Args:
        rotations: (C, 3, 3) initial world_to_cam rotations; translations: (C, 3).
        points: (P, 3) initial world points.
        camera_index, point_index: (M,) int64 camera and point of each observation.
        pixels: (M, 2) observed (distorted) pixels.
        intrinsics: (3, 3) K shared by all cameras (zero skew); distortion: optional (4|5,) OpenCV coefficients.
        refine_intrinsics: names among ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3") to refine.
        loss: "linear", "huber" or "cauchy" (per residual coordinate, scale ``loss_scale`` px).
        fixed_cameras: cameras whose poses are held (the gauge; see the module docstring); empty leaves the gauge
            free, which LM tolerates through its damping but does not make the solution unique.
        iterations: maximum LM iterations.
        tolerance: stop when the relative cost decrease or the largest step falls below it.

    Returns:
        A :class:`BundleResult` (float64 tensors).
    """
    c_count, p_count = rotations.shape[0], points.shape[0]
    if rotations.shape != (c_count, 3, 3) or translations.shape != (c_count, 3) or points.shape != (p_count, 3):
        raise ShapeError(f"need rotations (C, 3, 3), translations (C, 3), points (P, 3); got "
                         f"{tuple(rotations.shape)}, {tuple(translations.shape)}, {tuple(points.shape)}")
    m = camera_index.shape[0]
    if camera_index.shape != (m,) or point_index.shape != (m,) or pixels.shape != (m, 2):
        raise ShapeError(f"need camera_index (M,), point_index (M,), pixels (M, 2); got {tuple(camera_index.shape)},"
                         f" {tuple(point_index.shape)}, {tuple(pixels.shape)}")
    if m and (int(camera_index.min()) < 0 or int(camera_index.max()) >= c_count or int(point_index.min()) < 0
              or int(point_index.max()) >= p_count):
        raise ValueError("camera_index / point_index out of range")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if loss_scale <= 0:
        raise ValueError(f"loss_scale must be > 0, got {loss_scale}")
    unknown = [n for n in refine_intrinsics if n not in INTRINSICS]
    if unknown:
        raise ValueError(f"unknown intrinsics {unknown}; choose from {INTRINSICS}")
    if any(not 0 <= c < c_count for c in fixed_cameras):
        raise ValueError(f"fixed_cameras must index the {c_count} cameras, got {list(fixed_cameras)}")
    require_rotation(rotations, "rotations")
    with torch.no_grad():
        return _solve(rotations.detach().to(torch.float64).clone(), translations.detach().to(torch.float64).clone(),
                      points.detach().to(torch.float64).clone(), camera_index.long(), point_index.long(),
                      pixels.detach().to(torch.float64), intrinsics_vector(intrinsics, distortion),
                      [INTRINSICS.index(n) for n in refine_intrinsics], loss, loss_scale, list(fixed_cameras),
                      iterations, tolerance)


def _solve(rot, trans, pts, cam, pid, pix, intr, free_intr, loss, k, fixed, iterations, tolerance):
    c_count, p_count, m = rot.shape[0], pts.shape[0], cam.shape[0]
    n_intr = len(free_intr)
    # Column of each camera-side parameter in the reduced system (-1: held fixed by the gauge).
    col = torch.arange(6 * c_count, dtype=torch.long).reshape(c_count, 6)
    for c, j in _gauge(rot, trans, fixed):
        col[c, j] = -1
    free = col >= 0
    col[free] = torch.arange(int(free.sum()), dtype=torch.long)
    d = int(free.sum()) + n_intr
    intr_cols = torch.arange(d - n_intr, d, dtype=torch.long)
    # Held parameters accumulate into a spare column d that is dropped: no boolean masking in the loop.
    local_cols = torch.cat([col[cam], intr_cols.expand(m, n_intr)], 1)  # (M, L) with L = 6 + n_intr
    local_cols = torch.where(local_cols >= 0, local_cols, d)
    d1 = d + 1
    flat_uu = (local_cols[:, :, None] * d1 + local_cols[:, None, :]).reshape(-1)  # (M L L,) into (d+1)^2
    flat_b = (pid[:, None] * d1 + local_cols).reshape(-1)  # (M L,) into (P (d+1))

    def evaluate(r, t, x, iv, jac):
        out = project(iv, r[cam], t[cam], x[pid], want_intr=jac and n_intr > 0, want_pose=jac, want_points=jac)
        res = out[0] - pix
        if not jac:
            return res, None, None
        j_pose, j_pts = out[-2], out[-1]
        j_cam = torch.cat([j_pose, out[2][..., free_intr]], -1) if n_intr else j_pose  # (M, 2, L)
        return res, j_cam, j_pts

    res, j_cam, j_pts = evaluate(rot, trans, pts, intr, True)
    cost, sw = _loss(res, loss, k)
    initial, lam, converged, it = cost, 1e-4, False, 0
    while it < iterations:
        it += 1
        if sw is not None:
            res, j_cam, j_pts = res * sw, j_cam * sw[..., None], j_pts * sw[..., None]
        # Blocks of J^T J and J^T r, accumulated per camera-side column and per point. With two residual rows per
        # observation, the small products are sums of two outer products (elementwise: faster than batched bmm).
        c0, c1, p0, p1 = j_cam[:, 0], j_cam[:, 1], j_pts[:, 0], j_pts[:, 1]  # (M, L), (M, 3)
        r0, r1 = res[:, 0:1], res[:, 1:2]
        u_local = c0[:, :, None] * c0[:, None, :] + c1[:, :, None] * c1[:, None, :]  # (M, L, L)
        w_local = c0[:, :, None] * p0[:, None, :] + c1[:, :, None] * p1[:, None, :]  # (M, L, 3)
        v_obs = p0[:, :, None] * p0[:, None, :] + p1[:, :, None] * p1[:, None, :]  # (M, 3, 3)
        v_blocks = torch.zeros(p_count, 3, 3, dtype=pix.dtype).index_add_(0, pid, v_obs)
        g_pts = torch.zeros(p_count, 3, dtype=pix.dtype).index_add_(0, pid, p0 * r0 + p1 * r1)
        g_local = c0 * r0 + c1 * r1  # (M, L)
        u = torch.zeros(d1 * d1, dtype=pix.dtype).index_add_(0, flat_uu, u_local.reshape(-1)).reshape(d1, d1)[:d, :d]
        g = torch.zeros(d1, dtype=pix.dtype).index_add_(0, local_cols.reshape(-1), g_local.reshape(-1))[:d]
        # B_p = sum over the point's observations of W_o, scattered into the camera-side columns: (P, D, 3).
        b = torch.zeros(p_count * d1, 3, dtype=pix.dtype).index_add_(0, flat_b, w_local.reshape(-1, 3))
        b = b.reshape(p_count, d1, 3)[:, :d]
        u_diag, v_diag = u.diagonal().clone(), v_blocks.diagonal(dim1=-2, dim2=-1).clone()
        improved = False
        for _ in range(12):  # raise the damping until the step lowers the cost
            v_damped = v_blocks + torch.diag_embed(lam * v_diag + 1e-12)
            v_inv = torch.linalg.inv(v_damped)
            bv = b @ v_inv  # (P, D, 3)
            schur = u + torch.diag(lam * u_diag + 1e-12) - bv.transpose(0, 1).reshape(d, -1) @ b.transpose(
                0, 1).reshape(d, -1).T
            rhs = -g + (bv @ g_pts[..., None])[..., 0].sum(0)
            dz = torch.linalg.solve(schur, rhs)
            dx = -(v_inv @ (g_pts + (b.transpose(-1, -2) @ dz))[..., None])[..., 0]
            step = torch.zeros(6 * c_count, dtype=pix.dtype)
            step[free.reshape(-1)] = dz[: d - n_intr]
            step = step.reshape(c_count, 6)
            r_new = rodrigues(step[:, :3]) @ rot
            t_new, x_new = trans + step[:, 3:], pts + dx
            i_new = intr.clone()
            if n_intr:
                i_new[free_intr] += dz[d - n_intr:]
            new_res, _, _ = evaluate(r_new, t_new, x_new, i_new, False)
            new_cost, _ = _loss(new_res, loss, k)
            if new_cost < cost:
                improved = True
                break
            lam *= 10
        if not improved:
            converged = True
            break
        largest = max(float(dz.abs().max()) if dz.numel() else 0.0, float(dx.abs().max()) if dx.numel() else 0.0)
        rel = (cost - new_cost) / max(cost, 1e-300)
        rot, trans, pts, intr, cost, lam = r_new, t_new, x_new, i_new, new_cost, max(lam / 10, 1e-12)
        if rel < tolerance or largest < tolerance:
            converged = True
            break
        res, j_cam, j_pts = evaluate(rot, trans, pts, intr, True)
        sw = _loss(res, loss, k)[1]
    final_res, _, _ = evaluate(rot, trans, pts, intr, False)
    rms = math.sqrt(float(final_res.square().sum()) / max(2 * m, 1))
    return BundleResult(rot, trans, pts, intr, initial, cost, rms, it, converged)

"""Batched sparse Levenberg-Marquardt for bundle adjustment (private to :mod:`torchworks.geometry.bundle`).

B problems of one shape (C cameras, P points, M observations) are solved together: every array carries a leading
batch dimension and each problem keeps its own damping, cost and stopping state. An outer iteration linearises the
problems still running; its damping trials are computed only for the problems whose step has not yet lowered their
cost, so each problem follows exactly the path it would follow alone (up to the rounding of batched arithmetic).

The normal equations are assembled from per-observation blocks (camera-side parameters: 6 pose + the free shared
intrinsics, L in all; point: 3) and reduced to the camera side by a Schur complement on the points. The same
assembly and reduction serve the implicit derivative of the solution (``_bundle_implicit``), with exact Hessian
blocks instead of the Gauss-Newton ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from torchworks.geometry._reprojection import project, rodrigues

DAMPING_TRIALS = 12


def gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, N, ...) indexed per problem by index (B, M) -> (B, M, ...)."""
    return x[torch.arange(x.shape[0], device=x.device)[:, None], index]


def rho_terms(res: torch.Tensor, loss: str, k: float) -> torch.Tensor:
    """Robust cost of each residual coordinate, (..., 2) px^2 (differentiable twice away from Huber's kink)."""
    if loss == "linear":
        return res.square()
    z = (res / k) ** 2
    if loss == "huber":
        return k * k * torch.where(z <= 1, z, 2 * z.clamp(min=1).sqrt() - 1)
    return k * k * torch.log1p(z)  # cauchy


def loss_terms(res: torch.Tensor, loss: str, k: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    """((B,) robust costs, sqrt of the IRLS weights rho'(z) per residual coordinate (B, M, 2) or None)."""
    cost = rho_terms(res, loss, k).sum((1, 2))
    if loss == "linear":
        return cost, None
    z = (res / k) ** 2
    weight = torch.where(z <= 1, torch.ones_like(z), z.clamp(min=1).rsqrt()) if loss == "huber" else 1 / (1 + z)
    return cost, weight.sqrt()


@dataclass
class Layout:
    """Where each observation's camera-side parameters sit in the reduced system (column d: held, dropped).

    Attributes:
        cam, pid: (B, M) camera and point of each observation.
        cols: (B, M, L) column of each of the observation's camera-side parameters (pose, then free intrinsics).
        free: (B, C, 6) pose parameters (w, t) that move; the others are held by the gauge.
        free_intr: indices into the 9 intrinsics that move.
        d: size of the reduced system (the same for every problem); p_count: P.
    """

    cam: torch.Tensor
    pid: torch.Tensor
    cols: torch.Tensor
    free: torch.Tensor
    free_intr: list[int]
    d: int
    p_count: int

    _flat: tuple | None = None

    def flat_indices(self) -> tuple[torch.Tensor, ...]:
        """Flat scatter indices of the observations' blocks into V / gp, U, g and W (computed once)."""
        if self._flat is None:
            b_count, d1, p_count, cols = self.cols.shape[0], self.d + 1, self.p_count, self.cols
            off = torch.arange(b_count, device=cols.device)[:, None]
            self._flat = ((self.pid + off * p_count).reshape(-1),  # (B M,) into (B P)
                          (cols[..., :, None] * d1 + cols[..., None, :] + off[..., None, None] * d1 * d1).reshape(-1),
                          (cols + off[..., None] * d1).reshape(-1),
                          ((self.pid[..., None] + off[..., None] * p_count) * d1 + cols).reshape(-1))  # B P (D+1)
        return self._flat

    def take(self, idx: torch.Tensor) -> Layout:
        if idx.numel() == self.cam.shape[0]:  # everything (positions are always sorted): no copy
            return self
        return Layout(self.cam[idx], self.pid[idx], self.cols[idx], self.free[idx], self.free_intr, self.d,
                      self.p_count)


def held_parameters(rot: torch.Tensor, trans: torch.Tensor, fixed: list[int]) -> torch.Tensor:
    """(B, C, 6) bool: all 6 pose parameters of the fixed cameras, plus, when one camera is fixed, the largest
    translation coordinate of the camera farthest from it (the scale)."""
    b_count, c_count = rot.shape[:2]
    held = torch.zeros(b_count, c_count, 6, dtype=torch.bool, device=rot.device)
    fixed = sorted(set(fixed))
    held[:, fixed] = True
    if len(fixed) == 1 and c_count > 1:
        centres = -(rot.transpose(-1, -2) @ trans[..., None])[..., 0]  # (B, C, 3)
        dist = (centres - centres[:, fixed[0]:fixed[0] + 1]).norm(dim=-1)
        dist[:, fixed[0]] = -1
        far = dist.argmax(1)
        rows = torch.arange(b_count, device=rot.device)
        held[rows, far, 3 + trans[rows, far].abs().argmax(-1)] = True
    return held


def make_layout(rot, trans, cam, pid, p_count: int, fixed: list[int], free_intr: list[int]) -> Layout:
    b_count, c_count = rot.shape[:2]
    free = ~held_parameters(rot, trans, fixed)
    n_free = int(free[0].sum())
    col = torch.full((b_count, c_count, 6), -1, dtype=torch.long, device=rot.device)
    col[free] = torch.arange(n_free, device=rot.device).repeat(b_count)  # row-major: each problem in turn
    d = n_free + len(free_intr)
    intr_cols = torch.arange(n_free, d, device=rot.device).expand(*cam.shape, len(free_intr))
    cols = torch.cat([gather(col, cam), intr_cols], -1)  # (B, M, L)
    return Layout(cam, pid, torch.where(cols >= 0, cols, d), free, list(free_intr), d, p_count)


def assemble(u_obs, w_obs, v_obs, g_obs, gp_obs, layout: Layout):
    """Scatter per-observation blocks into the normal equations (differentiable in the gradients).

    Args:
        u_obs: (B, M, L, L) camera-side block; w_obs: (B, M, L, 3) camera-point block; v_obs: (B, M, 3, 3)
            point block; g_obs: (B, M, L) and gp_obs: (B, M, 3) gradients.

    Returns:
        U (B, D, D), g (B, D), W (B, P, D, 3), V (B, P, 3, 3), gp (B, P, 3).
    """
    b_count, d, p_count = layout.cols.shape[0], layout.d, layout.p_count
    d1, dev, dt = d + 1, g_obs.device, g_obs.dtype
    pflat, flat_uu, flat_g, flat_w = layout.flat_indices()
    v = torch.zeros(b_count * p_count, 3, 3, dtype=dt, device=dev).index_add_(0, pflat, v_obs.reshape(-1, 3, 3))
    gp = torch.zeros(b_count * p_count, 3, dtype=dt, device=dev).index_add_(0, pflat, gp_obs.reshape(-1, 3))
    u = torch.zeros(b_count * d1 * d1, dtype=dt, device=dev).index_add_(0, flat_uu, u_obs.reshape(-1))
    g = torch.zeros(b_count * d1, dtype=dt, device=dev).index_add_(0, flat_g, g_obs.reshape(-1))
    w = torch.zeros(b_count * p_count * d1, 3, dtype=dt, device=dev).index_add_(0, flat_w, w_obs.reshape(-1, 3))
    return (u.reshape(b_count, d1, d1)[:, :d, :d], g.reshape(b_count, d1)[:, :d],
            w.reshape(b_count, p_count, d1, 3)[:, :, :d], v.reshape(b_count, p_count, 3, 3),
            gp.reshape(b_count, p_count, 3))


def schur_solve(u, g, w, v, gp, lam: torch.Tensor):
    """Solve [[U + lam diag U, W], [W^T, V + lam diag V]] [dz; dx] = -[g; gp] through the points' Schur complement.

    Returns dz (B, D) and dx (B, P, 3); singular systems give non-finite steps for their problem only.
    """
    b_count, d = g.shape
    v_damped = v + torch.diag_embed(lam[:, None, None] * v.diagonal(dim1=-2, dim2=-1) + 1e-12)
    v_inv = torch.linalg.inv_ex(v_damped)[0]
    wv = w @ v_inv  # (B, P, D, 3)
    rhs_x = gp[..., None]
    if d:
        schur = u + torch.diag_embed(lam[:, None] * u.diagonal(dim1=-2, dim2=-1) + 1e-12) - (
            wv.transpose(1, 2).reshape(b_count, d, -1) @ w.transpose(1, 2).reshape(b_count, d, -1).transpose(-1, -2))
        dz = torch.linalg.solve_ex(schur, -g + (wv @ rhs_x)[..., 0].sum(1))[0]
        rhs_x = rhs_x + w.transpose(-1, -2) @ dz[:, None, :, None]
    else:
        dz = g.new_zeros(b_count, 0)
    return dz, -(v_inv @ rhs_x)[..., 0]


def apply_step(rot, trans, pts, intr, dz, dx, layout: Layout):
    """New (rotations, translations, points, intrinsics) after the step: R <- exp(w) R, t <- t + dt."""
    b_count, c_count = rot.shape[:2]
    n_intr = len(layout.free_intr)
    step = torch.zeros(b_count, c_count * 6, dtype=dz.dtype, device=dz.device)
    step[layout.free.reshape(b_count, -1)] = dz[:, :layout.d - n_intr].reshape(-1)
    step = step.reshape(b_count, c_count, 6)
    i_new = intr.clone()
    if n_intr:
        i_new[:, layout.free_intr] += dz[:, layout.d - n_intr:]
    return rodrigues(step[..., :3]) @ rot, trans + step[..., 3:], pts + dx, i_new


def evaluate(rot, trans, pts, intr, pix, layout: Layout, jac: bool):
    """Residuals (B, M, 2) and, with ``jac``, the camera-side (B, M, 2, L) and point (B, M, 2, 3) Jacobians."""
    n_intr = len(layout.free_intr)
    out = project(intr[:, None, :], gather(rot, layout.cam), gather(trans, layout.cam), gather(pts, layout.pid),
                  want_intr=jac and n_intr > 0, want_pose=jac, want_points=jac)
    res = out[0] - pix
    if not jac:
        return res, None, None
    j_cam = torch.cat([out[-2], out[2][..., layout.free_intr]], -1) if n_intr else out[-2]
    return res, j_cam, out[-1]


def gauss_newton_system(res, j_cam, j_pts, sw, layout: Layout):
    """Normal equations J^T J, J^T r of the (IRLS-weighted) residuals, as :func:`assemble` returns them."""
    if sw is not None:
        res, j_cam, j_pts = res * sw, j_cam * sw[..., None], j_pts * sw[..., None]
    # Two residual rows per observation: the small products are sums of two outer products (faster than bmm).
    c0, c1, p0, p1 = j_cam[..., 0, :], j_cam[..., 1, :], j_pts[..., 0, :], j_pts[..., 1, :]
    r0, r1 = res[..., 0:1], res[..., 1:2]
    u_obs = c0[..., :, None] * c0[..., None, :] + c1[..., :, None] * c1[..., None, :]
    w_obs = c0[..., :, None] * p0[..., None, :] + c1[..., :, None] * p1[..., None, :]
    v_obs = p0[..., :, None] * p0[..., None, :] + p1[..., :, None] * p1[..., None, :]
    return assemble(u_obs, w_obs, v_obs, c0 * r0 + c1 * r1, p0 * r0 + p1 * r1, layout)


def _take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x[idx] for sorted positions idx, without a copy when idx is every position."""
    return x if idx.numel() == x.shape[0] else x[idx]


def levenberg_marquardt(rot, trans, pts, intr, pix, layout: Layout, loss: str, k: float, iterations: int,
                        tolerance: float):
    """Run LM on every problem until it stops; returns the final state and per-problem statistics.

    Returns:
        (rot, trans, pts, intr, initial cost (B,), final cost (B,), iterations (B,), converged (B,)).
    """
    b_count, dev = rot.shape[0], rot.device
    cost = loss_terms(evaluate(rot, trans, pts, intr, pix, layout, False)[0], loss, k)[0]
    initial = cost.clone()
    lam = torch.full((b_count,), 1e-4, dtype=cost.dtype, device=dev)
    active = torch.ones(b_count, dtype=torch.bool, device=dev)
    converged = torch.zeros(b_count, dtype=torch.bool, device=dev)
    its = torch.zeros(b_count, dtype=torch.long, device=dev)
    for _ in range(iterations):
        act = active.nonzero()[:, 0]
        if not act.numel():
            break
        its[act] += 1
        lay = layout.take(act)
        r_a, t_a, x_a, i_a, pix_a = (_take(x, act) for x in (rot, trans, pts, intr, pix))
        res, j_cam, j_pts = evaluate(r_a, t_a, x_a, i_a, pix_a, lay, True)
        system = gauss_newton_system(res, j_cam, j_pts, loss_terms(res, loss, k)[1], lay)
        pending = torch.arange(act.numel(), device=dev)  # positions in act whose step has not lowered the cost
        for _ in range(DAMPING_TRIALS):  # raise the damping until the step lowers the cost
            # (Accepted problems leave ``pending``, so writing their new state into rot... below cannot change
            # the r_a... views that later trials read.)
            sel, lay_s = act[pending], lay.take(pending)
            dz, dx = schur_solve(*(_take(s, pending) for s in system), lam[sel])
            new = apply_step(*(_take(x, pending) for x in (r_a, t_a, x_a, i_a)), dz, dx, lay_s)
            new_cost = loss_terms(evaluate(*new, _take(pix_a, pending), lay_s, False)[0], loss, k)[0]
            ok = new_cost < cost[sel]  # NaN (a failed solve) is never accepted
            acc = sel[ok]
            largest = torch.maximum(dz.abs().amax(1) if dz.shape[1] else dz.new_zeros(dz.shape[0]),
                                    dx.abs().amax((1, 2)) if dx.shape[1] else dx.new_zeros(dx.shape[0]))[ok]
            rel = (cost[acc] - new_cost[ok]) / cost[acc].clamp(min=1e-300)
            rot[acc], trans[acc], pts[acc], intr[acc] = (n[ok] for n in new)
            cost[acc], lam[acc] = new_cost[ok], (lam[acc] / 10).clamp(min=1e-12)
            done = acc[(rel < tolerance) | (largest < tolerance)]
            converged[done], active[done] = True, False
            lam[sel[~ok]] *= 10
            pending = pending[~ok]
            if not pending.numel():
                break
        stuck = act[pending]  # no damping lowered the cost: at a minimum (or a non-finite problem)
        converged[stuck], active[stuck] = torch.isfinite(cost[stuck]), False
    return rot, trans, pts, intr, initial, cost, its, converged

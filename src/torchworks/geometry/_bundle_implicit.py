"""Differentiable bundle-adjustment solutions (private to ``bundle``): implicit (default) and unrolled.

Implicit: gradients by the implicit function theorem at the minimum.

At a minimum z*(theta) of the robust cost E(z, theta) (z: the free pose increments, points and refined
intrinsics; theta: pixels, fixed intrinsics and the gauge-held pose parameters) the gradient vanishes,
grad_z E(z*, theta) = 0, so dz*/dtheta = -H^-1 d(grad_z E)/dtheta with H the exact Hessian d^2 E / dz^2.

The solution is returned as z* + (s - s.detach()) with s = -H^-1 grad_z E(z*, theta): its value is z* exactly, and
autograd differentiates only s, whose dependence on theta is the implicit derivative above. H is assembled from
per-observation exact Hessian blocks (second derivatives of the projection and of the robust loss included, not
Gauss-Newton's J^T J, which is exact only at zero residual) and inverted through the same Schur complement on
the points as the solver; only the gradient grad_z E keeps its graph. No solver iteration is unrolled: the cost is
one double-backward pass for the gradient, L + 3 (<= 18) backward passes for the Hessian blocks and one solve.

Meaningful at a converged, isolated minimum: the gauge must be fixed (H is singular otherwise), and the loss
twice differentiable there (Huber is not at |r| = k).

Unrolled: a stated number of Levenberg-Marquardt steps with a fixed damping, every step taken, run under autograd
from the starting values: the gradient of the iterate reached (to the starting values too), at the cost of
keeping every step's graph. Converged, it tends to the implicit gradient (the derivative of the fixed point).

References:
    Gould, Fernando, Cherian, Anderson, Santa Cruz and Guo, "On Differentiating Parameterized Argmin and Argmax
    Problems with Application to Bi-level Optimization", 2016 (the implicit derivative of an argmin).
"""

from __future__ import annotations

import torch

from torchworks.geometry._bundle_solver import (
    Layout,
    apply_step,
    assemble,
    evaluate,
    gather,
    gauss_newton_system,
    loss_terms,
    rho_terms,
    schur_solve,
)
from torchworks.geometry._reprojection import project, rodrigues


def implicit_solution(solution, inputs, layout: Layout, loss: str, k: float):
    """The solution with implicit-function gradients attached.

    Args:
        solution: (rotations (B, C, 3, 3), translations (B, C, 3), points (B, P, 3), intrinsics (B, 9)) at the
            minimum, float64, no graph.
        inputs: (rotations (B, C, 3, 3), translations (B, C, 3), intrinsics (B, 9), pixels (B, M, 2)) as given by
            the caller (float64, with their graphs): the held pose parameters and intrinsics are read from them.
        layout: the solver's layout (which parameters are free).

    Returns:
        (rotations, translations, points, intrinsics) equal in value to ``solution``.
    """
    rot_s, t_s, x_s, i_s = solution
    rot_in, t_in, intr_in, pix = inputs
    n_intr, dev = len(layout.free_intr), rot_s.device
    free = layout.free
    # Held values come from the inputs (graph kept), free ones from the solution (no graph).
    r_base = torch.where(free[..., :3].any(-1)[..., None, None], rot_s, rot_in)
    t_base = torch.where(free[..., 3:], t_s, t_in)
    intr_free = torch.zeros(9, dtype=torch.bool, device=dev)
    intr_free[layout.free_intr] = True
    i_base = torch.where(intr_free, i_s, intr_in)
    b_count, m = layout.cam.shape
    l_count = 6 + n_intr
    with torch.enable_grad():
        # One copy of the local parameters per observation: each observation's cost depends on its own row only,
        # so one backward pass per column gives that row of every observation's Hessian block.
        delta = torch.zeros(b_count, m, l_count + 3, dtype=torch.float64, device=dev, requires_grad=True)
        iv = i_base[:, None, :].expand(b_count, m, 9)
        if n_intr:
            iv = iv.index_add(2, torch.tensor(layout.free_intr, device=dev), delta[..., 6:l_count])
        uv = project(iv, rodrigues(delta[..., :3]) @ gather(r_base, layout.cam),
                     gather(t_base, layout.cam) + delta[..., 3:6], gather(x_s, layout.pid) + delta[..., l_count:])[0]
        grad = torch.autograd.grad(rho_terms(uv - pix, loss, k).sum(), delta, create_graph=True)[0]  # (B, M, Q)
        hess = torch.stack([torch.autograd.grad(grad[..., q].sum(), delta, retain_graph=True)[0]
                            for q in range(l_count + 3)], -2)  # (B, M, Q, Q), no graph
        u, g, w, v, gp = assemble(hess[..., :l_count, :l_count], hess[..., :l_count, l_count:],
                                  hess[..., l_count:, l_count:], grad[..., :l_count], grad[..., l_count:], layout)
        dz, dx = schur_solve(u, g, w, v, gp, torch.zeros(b_count, dtype=torch.float64, device=dev))
        return apply_step(r_base, t_base, x_s, i_base, dz - dz.detach(), dx - dx.detach(), layout)


def unrolled_solution(state, pix, layout: Layout, loss: str, k: float, steps: int, damping: float = 1e-4):
    """``steps`` LM steps (Marquardt damping ``damping``, no acceptance test) under autograd from ``state``.

    Args:
        state: (rotations (B, C, 3, 3), translations (B, C, 3), points (B, P, 3), intrinsics (B, 9)) float64, with
            their graphs; pix: (B, M, 2).

    Returns:
        (rotations, translations, points, intrinsics) after the steps, and the (B,) costs before the last step.
    """
    lam = torch.full((pix.shape[0],), damping, dtype=torch.float64, device=pix.device)
    previous = loss_terms(evaluate(*state, pix, layout, False)[0], loss, k)[0].detach()
    with torch.enable_grad():
        for _ in range(steps):
            res, j_cam, j_pts = evaluate(*state, pix, layout, True)
            cost, sw = loss_terms(res, loss, k)
            previous = cost.detach()
            state = apply_step(*state, *schur_solve(*gauss_newton_system(res, j_cam, j_pts, sw, layout), lam), layout)
    return state, previous

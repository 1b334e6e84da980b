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

Batches: :func:`bundle_adjust_batched` solves B independent problems of one shape (C cameras, P points, M
observations) in one call, each with its own damping and stopping (a converged problem stops changing; a failing
one, e.g. with non-finite pixels, stops alone). Results equal those of :func:`bundle_adjust` on each problem.

Gauge: a reconstruction is defined up to a similarity (7 degrees of freedom). By default camera 0's pose is held
fixed and the scale by the largest translation component of the camera farthest from it (cameras listed in
``fixed_cameras`` are all held; with two or more, nothing else is needed).

Differentiable: :func:`reprojection_residuals` is plain torch. With ``differentiable=True`` the solution itself
carries gradients to the pixels, the intrinsics and distortion (those held fixed; a refined one's starting value
does not change the minimum) and the gauge-held initial pose parameters, by the implicit function theorem at the
optimum (see :mod:`torchworks.geometry._bundle_implicit`): meaningful at a converged, isolated minimum.
``differentiable="unrolled"`` instead differentiates through a stated number of LM steps (gradients to the
starting values too; they fade as the steps converge to the implicit ones).

References:
    Triggs, McLauchlan, Hartley and Fitzgibbon, "Bundle Adjustment - A Modern Synthesis", 2000 (sections 6.1, 9).
    Hartley and Zisserman, "Multiple View Geometry", 2nd ed., 2004, A6.3 (sparse LM, Schur complement).
    Agarwal, Snavely, Seitz and Szeliski, "Bundle Adjustment in the Large", ECCV 2010 (robust losses, gauge).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from torchworks.core.errors import ShapeError
from torchworks.geometry import _bundle_solver as solver
from torchworks.geometry._reprojection import INTRINSICS, project
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
        converged: the relative cost change or the step fell below the tolerances, or no damping lowered the cost.
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


@dataclass
class BundleBatchResult:
    """Outcome of :func:`bundle_adjust_batched`: the fields of :class:`BundleResult` with a leading batch dimension
    (rotations (B, C, 3, 3), ..., intrinsics (B, 9); costs and rms (B,) float64, iterations (B,) int64, converged
    (B,) bool)."""

    rotations: torch.Tensor
    translations: torch.Tensor
    points: torch.Tensor
    intrinsics: torch.Tensor
    initial_cost: torch.Tensor
    final_cost: torch.Tensor
    rms: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor

    def __getitem__(self, i: int) -> BundleResult:
        """Problem ``i`` as a :class:`BundleResult`."""
        return BundleResult(self.rotations[i], self.translations[i], self.points[i], self.intrinsics[i],
                            float(self.initial_cost[i]), float(self.final_cost[i]), float(self.rms[i]),
                            int(self.iterations[i]), bool(self.converged[i]))


def _intrinsics_batch(intrinsics: torch.Tensor, distortion: torch.Tensor | None, b_count: int) -> torch.Tensor:
    """(B, 9) float64 intrinsics vectors from K (3, 3) or (B, 3, 3) and distortion (4|5,) or (B, 4|5)
    (differentiable: the graph to K and the distortion is kept)."""
    if intrinsics.shape not in ((3, 3), (b_count, 3, 3)):
        raise ShapeError(f"intrinsics must be (3, 3) or (B={b_count}, 3, 3), got {tuple(intrinsics.shape)}")
    k = intrinsics.to(torch.float64).expand(b_count, 3, 3)
    if (k[:, 0, 1].abs() > 1e-12 * k[:, 0, 0].abs()).any():
        raise ValueError("bundle adjustment assumes zero skew in K")
    d = torch.zeros(b_count, 5, dtype=torch.float64, device=k.device)
    if distortion is not None:
        n = distortion.shape[-1] if distortion.ndim else 0
        if distortion.shape not in ((n,), (b_count, n)) or n not in (4, 5):
            raise ValueError(f"distortion must have 4 or 5 coefficients, shape (4|5,) or (B={b_count}, 4|5); got "
                             f"{tuple(distortion.shape)}")
        d = torch.nn.functional.pad(distortion.to(torch.float64).expand(b_count, n), (0, 5 - n))
    return torch.cat([torch.stack([k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2]], -1), d], -1)


def intrinsics_vector(intrinsics: torch.Tensor, distortion: torch.Tensor | None = None) -> torch.Tensor:
    """(9,) (fx, fy, cx, cy, k1, k2, p1, p2, k3) from a (3, 3) zero-skew K and optional (4|5,) distortion."""
    if intrinsics.shape != (3, 3):
        raise ShapeError(f"intrinsics must be (3, 3), got {tuple(intrinsics.shape)}")
    return _intrinsics_batch(intrinsics.detach(), None if distortion is None else distortion.detach().reshape(-1),
                             1)[0]


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


def _gauge(rotations, translations, fixed_cameras):
    """(camera, parameter) pairs held by the gauge for one problem (see :func:`solver.held_parameters`)."""
    held = solver.held_parameters(rotations[None].to(torch.float64), translations[None].to(torch.float64),
                                  list(fixed_cameras))[0]
    return [tuple(ij) for ij in held.nonzero().tolist()]


def _check(rotations, translations, points, camera_index, point_index, pixels, refine_intrinsics, loss,
           loss_scale, fixed_cameras):
    """Validate a batch of problems; returns (B, C, P, M) and the (B, M) index tensors."""
    if rotations.ndim != 4:
        raise ShapeError(f"need rotations (B, C, 3, 3), got {tuple(rotations.shape)}")
    b_count, c_count = rotations.shape[:2]
    p_count = points.shape[1] if points.ndim == 3 else -1
    if rotations.shape[2:] != (3, 3) or translations.shape != (b_count, c_count, 3) or points.shape != (
            b_count, p_count, 3):
        raise ShapeError(f"need rotations (B, C, 3, 3), translations (B, C, 3), points (B, P, 3) with the same B and"
                         f" C; got {tuple(rotations.shape)}, {tuple(translations.shape)}, {tuple(points.shape)}")
    m = camera_index.shape[-1] if camera_index.ndim else -1
    shapes_ok = camera_index.shape in ((m,), (b_count, m)) and point_index.shape == camera_index.shape
    if not shapes_ok or pixels.shape != (b_count, m, 2):
        raise ShapeError(f"need camera_index and point_index (M,) or (B, M), pixels (B, M, 2) with B = {b_count};"
                         f" got {tuple(camera_index.shape)}, {tuple(point_index.shape)}, {tuple(pixels.shape)}")
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
    cam, pid = (i.long().expand(b_count, m) for i in (camera_index, point_index))
    return (b_count, c_count, p_count, m), cam, pid


def bundle_adjust_batched(rotations: torch.Tensor, translations: torch.Tensor, points: torch.Tensor,
                          camera_index: torch.Tensor, point_index: torch.Tensor, pixels: torch.Tensor,
                          intrinsics: torch.Tensor, distortion: torch.Tensor | None = None,
                          refine_intrinsics: Sequence[str] = (), loss: str = "linear", loss_scale: float = 1.0,
                          fixed_cameras: Sequence[int] = (0,), iterations: int = 100, tolerance: float = 1e-10,
                          differentiable: bool | str = False) -> BundleBatchResult:
    """Bundle-adjust B independent problems of one shape at once (see :func:`bundle_adjust` for the arguments).

    Args:
        rotations: (B, C, 3, 3) initial world_to_cam rotations; translations: (B, C, 3); points: (B, P, 3).
        camera_index, point_index: (M,) int64 shared by all problems, or (B, M) per problem.
        pixels: (B, M, 2) observed (distorted) pixels.
        intrinsics: (3, 3) shared by all problems or (B, 3, 3); distortion: optional (4|5,) or (B, 4|5).
        differentiable: attach implicit-function gradients to the solution (see :func:`bundle_adjust`).

    Returns:
        A :class:`BundleBatchResult` (float64 tensors); problem i equals ``bundle_adjust`` on problem i alone.
    """
    (b_count, _, p_count, m), cam, pid = _check(rotations, translations, points, camera_index, point_index, pixels,
                                                refine_intrinsics, loss, loss_scale, fixed_cameras)
    if differentiable not in (False, True, "implicit", "unrolled"):
        raise ValueError(f"differentiable must be False, True / 'implicit' or 'unrolled', got {differentiable!r}")
    if differentiable == "unrolled":
        if iterations < 1:
            raise ValueError(f"differentiable='unrolled' needs iterations >= 1 (the steps), got {iterations}")
    elif differentiable and not fixed_cameras:
        raise ValueError("differentiable=True needs a fixed gauge (non-empty fixed_cameras): with the gauge free "
                         "the minimum is not unique and has no derivative")
    intr_in = _intrinsics_batch(intrinsics, distortion, b_count)
    free_intr = [INTRINSICS.index(n) for n in dict.fromkeys(refine_intrinsics)]
    f64 = [x.detach().to(torch.float64) for x in (rotations, translations, points, pixels)]
    with torch.no_grad():
        layout = solver.make_layout(f64[0], f64[1], cam, pid, p_count, list(fixed_cameras), free_intr)
    if differentiable == "unrolled":
        return _unrolled(rotations, translations, points, intr_in, pixels, layout, loss, loss_scale, iterations,
                         tolerance)
    with torch.no_grad():
        rot, trans, pts, intr, initial, cost, its, conv = solver.levenberg_marquardt(
            f64[0].clone(), f64[1].clone(), f64[2].clone(), intr_in.detach().clone(), f64[3], layout, loss,
            loss_scale, iterations, tolerance)
        final_res = solver.evaluate(rot, trans, pts, intr, f64[3], layout, False)[0]
        rms = (final_res.square().sum((1, 2)) / max(2 * m, 1)).sqrt()
    if differentiable:
        from torchworks.geometry._bundle_implicit import implicit_solution

        if not bool(conv.all()):
            warnings.warn("bundle adjustment did not converge for every problem: the implicit gradients describe "
                          "the minimum of a nearby problem only", RuntimeWarning, stacklevel=2)
        rot, trans, pts, intr = implicit_solution((rot, trans, pts, intr), (
            rotations.to(torch.float64), translations.to(torch.float64), intr_in, pixels.to(torch.float64)),
            layout, loss, loss_scale)
    return BundleBatchResult(rot, trans, pts, intr, initial, cost, rms, its, conv)


def _unrolled(rotations, translations, points, intr_in, pixels, layout, loss, loss_scale, steps, tolerance):
    from torchworks.geometry._bundle_implicit import unrolled_solution

    pix = pixels.to(torch.float64)
    start = tuple(x.to(torch.float64) for x in (rotations, translations, points)) + (intr_in,)
    with torch.no_grad():
        initial = solver.loss_terms(solver.evaluate(*start, pix, layout, False)[0], loss, loss_scale)[0]
    (rot, trans, pts, intr), before = unrolled_solution(start, pix, layout, loss, loss_scale, steps)
    with torch.no_grad():
        res = solver.evaluate(rot, trans, pts, intr, pix, layout, False)[0]
        cost = solver.loss_terms(res, loss, loss_scale)[0]
        rms = (res.square().sum((1, 2)) / max(2 * res.shape[1], 1)).sqrt()
    conv = (before - cost).abs() <= tolerance * before
    its = torch.full_like(conv, steps, dtype=torch.long)
    return BundleBatchResult(rot, trans, pts, intr, initial, cost, rms, its, conv)


def bundle_adjust(rotations: torch.Tensor, translations: torch.Tensor, points: torch.Tensor,
                  camera_index: torch.Tensor, point_index: torch.Tensor, pixels: torch.Tensor,
                  intrinsics: torch.Tensor, distortion: torch.Tensor | None = None,
                  refine_intrinsics: Sequence[str] = (), loss: str = "linear", loss_scale: float = 1.0,
                  fixed_cameras: Sequence[int] = (0,), iterations: int = 100, tolerance: float = 1e-10,
                  differentiable: bool | str = False) -> BundleResult:
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
        differentiable: the returned rotations, translations, points and intrinsics carry gradients to
            ``pixels``, ``intrinsics``/``distortion`` (entries not refined) and the gauge-held entries of
            ``rotations``/``translations``, by the implicit function theorem at the optimum (exact Hessian,
            Schur-reduced like the solver). Meaningful at a converged, isolated minimum with a fixed gauge (a
            RuntimeWarning when not converged); not at Huber's kink |r| = k. Starting values of refined
            parameters get a zero (or no) gradient: the minimum does not depend on them. ``"implicit"`` is the same as
            True. ``"unrolled"``: instead of solving, take exactly ``iterations`` LM steps (damping 1e-4, every
            step taken, no stopping) under autograd and return that iterate, with gradients to every input
            including the starting values; ``converged`` then means the last step changed the cost by less than
            ``tolerance`` (relative).

    Returns:
        A :class:`BundleResult` (float64 tensors).
    """
    if rotations.ndim != 3 or points.ndim != 2 or pixels.ndim != 2:
        raise ShapeError(f"need rotations (C, 3, 3), points (P, 3), pixels (M, 2); got {tuple(rotations.shape)}, "
                         f"{tuple(points.shape)}, {tuple(pixels.shape)}")
    if camera_index.ndim != 1:
        raise ShapeError(f"need camera_index (M,), got {tuple(camera_index.shape)}")
    out = bundle_adjust_batched(rotations[None], translations[None], points[None], camera_index, point_index,
                                pixels[None], intrinsics, None if distortion is None else distortion.reshape(-1),
                                refine_intrinsics, loss, loss_scale, fixed_cameras, iterations, tolerance,
                                differentiable)
    return out[0]

"""Bundle adjustment: cross-checked against scipy.optimize.least_squares on small problems (same cost, same
gauge, same loss) to optimiser tolerance; gauge, intrinsics, robustness to outliers, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import least_squares

from torchworks.core.errors import ShapeError
from torchworks.geometry._reprojection import rodrigues
from torchworks.geometry.bundle import _gauge, bundle_adjust, intrinsics_vector, reprojection_residuals
from torchworks.geometry.rotations import geodesic_angle
from torchworks.geometry.synthetic import multi_view_scene

C, P = 4, 25
# torch.func's forward-mode Jacobian (the scipy reference) warns about a deprecated torch.jit path inside torch.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _problem(seed=0, noise=0.5, perturb=0.05, points=P):
    s = multi_view_scene(views=C, points=points, noise=noise, seed=seed)
    cam = torch.arange(C).repeat_interleave(points)
    pid = torch.arange(points).repeat(C)
    g = torch.Generator().manual_seed(seed + 1)
    r0 = rodrigues(0.4 * perturb * torch.randn(C, 3, generator=g, dtype=torch.float64)) @ s["R"]
    t0 = s["t"] + perturb * torch.randn(C, 3, generator=g, dtype=torch.float64)
    r0[0], t0[0] = s["R"][0], s["t"][0]
    x0 = s["X"] + perturb * torch.randn(points, 3, generator=g, dtype=torch.float64)
    return s, cam, pid, s["x"].reshape(-1, 2), r0, t0, x0


def _scipy(s, cam, pid, pix, r0, t0, x0, loss, intr_names=(), intr=None):
    """The same problem for scipy: free parameters = poses except the gauge, all points, chosen intrinsics."""
    from torchworks.geometry._reprojection import INTRINSICS

    n_pts = x0.shape[0]
    held = _gauge(r0, t0, [0])
    mask = torch.ones(C, 6, dtype=torch.bool)
    for c, j in held:
        mask[c, j] = False
    n_pose, idx = int(mask.sum()), [INTRINSICS.index(n) for n in intr_names]
    free = mask.reshape(-1).nonzero()[:, 0]
    base = intrinsics_vector(s["K"]) if intr is None else intr

    def unpack(z):
        step = torch.zeros(C * 6, dtype=torch.float64).index_copy(0, free, z[:n_pose]).reshape(C, 6)
        iv = base.clone()
        iv[idx] = iv[idx] + z[n_pose + 3 * n_pts:]
        return rodrigues(step[:, :3]) @ r0, t0 + step[:, 3:], x0 + z[n_pose:n_pose + 3 * n_pts].reshape(n_pts, 3), iv

    def fun(z):
        return reprojection_residuals(*unpack(torch.from_numpy(z))[:3], cam, pid, pix,
                                      unpack(torch.from_numpy(z))[3]).reshape(-1).numpy()

    def jac(z):  # forward-mode autograd: independent of the solver's analytic Jacobian
        return torch.func.jacfwd(
            lambda zz: reprojection_residuals(*unpack(zz)[:3], cam, pid, pix, unpack(zz)[3]).reshape(-1))(
            torch.from_numpy(z)).numpy()

    sol = least_squares(fun, np.zeros(n_pose + 3 * n_pts + len(idx)), jac=jac, loss=loss, f_scale=1.0, xtol=1e-15,
                        ftol=1e-15, gtol=1e-15, x_scale="jac")
    return unpack(torch.from_numpy(sol.x)), 2 * sol.cost


@pytest.mark.parametrize("loss", ["linear", "huber", pytest.param("cauchy", marks=pytest.mark.slow)])
def test_matches_scipy_least_squares_to_optimizer_tolerance(loss):
    # (Cauchy is marked slow: scipy's trust-region solver takes ~70 Jacobians on it; it passes like the others.)
    s, cam, pid, pix, r0, t0, x0 = _problem(points=12)  # scipy's dense solver: a small problem
    r = bundle_adjust(r0, t0, x0, cam, pid, pix, s["K"], loss=loss, loss_scale=1.0, tolerance=1e-14)
    (rs, ts, xs, _), cost = _scipy(s, cam, pid, pix, r0, t0, x0, loss)
    assert r.converged and abs(r.final_cost - cost) <= 1e-10 * cost  # measured ~1e-14 relative
    assert (r.points - xs).abs().max() < 1e-7 and (r.translations - ts).abs().max() < 1e-7
    assert float(geodesic_angle(r.rotations, rs).max()) < 1e-8
    assert r.final_cost < r.initial_cost


def test_shared_intrinsics_refined_like_scipy():
    s, cam, pid, pix, r0, t0, x0 = _problem(seed=3, perturb=0.02, points=12)
    k_bad = s["K"].clone()
    k_bad[0, 0] *= 1.02
    k_bad[1, 1] *= 1.02
    names = ("fx", "fy", "k1")
    r = bundle_adjust(r0, t0, x0, cam, pid, pix, k_bad, refine_intrinsics=names, tolerance=1e-14)
    (_, _, xs, iv), cost = _scipy(s, cam, pid, pix, r0, t0, x0, "linear", names, intrinsics_vector(k_bad))
    assert abs(r.final_cost - cost) <= 1e-10 * cost and ((r.intrinsics - iv).abs() / iv.abs().clamp(min=1)).max() < 1e-8
    assert (r.points - xs).abs().max() < 1e-6
    assert r.intrinsics[2:4].tolist() == intrinsics_vector(k_bad)[2:4].tolist()  # cx, cy not refined


def test_gauge_is_held_and_structure_recovered():
    s, cam, pid, pix, r0, t0, x0 = _problem(seed=5, noise=0.3, perturb=0.1)
    r = bundle_adjust(r0, t0, x0, cam, pid, pix, s["K"])
    assert torch.equal(r.rotations[0], r0[0]) and torch.equal(r.translations[0], t0[0])
    (c, j), = [h for h in _gauge(r0, t0, [0]) if h[0] != 0]
    assert r.translations[c, j - 3] == t0[c, j - 3]  # the scale
    assert r.rms < 0.4 and float(geodesic_angle(r.rotations, s["R"]).max()) < 5e-3  # 0.3 px noise: ~3e-3 rad
    # Two cameras held at their true poses fix the gauge by themselves (scale included).
    r1, t1 = r0.clone(), t0.clone()
    r1[1], t1[1] = s["R"][1], s["t"][1]
    r2 = bundle_adjust(r1, t1, x0, cam, pid, pix, s["K"], fixed_cameras=(0, 1))
    assert torch.equal(r2.rotations[1], r1[1]) and r2.rms < 0.4
    assert float((r2.points - s["X"]).norm(dim=-1).median()) < 0.01


def test_huber_resists_outlier_observations():
    s, cam, pid, pix, r0, t0, x0 = _problem(seed=7, noise=0.3, perturb=0.02)
    bad = pix.clone()
    bad[::9] += 25.0  # 12 % of the observations off by 25 px
    plain = bundle_adjust(r0, t0, x0, cam, pid, bad, s["K"])
    robust = bundle_adjust(r0, t0, x0, cam, pid, bad, s["K"], loss="huber", loss_scale=1.0)
    err = {name: float((res.points - s["X"]).norm(dim=-1).median()) for name, res in
           (("plain", plain), ("robust", robust))}
    assert err["robust"] < 0.5 * err["plain"]


def test_residuals_are_differentiable():
    s, cam, pid, pix, r0, t0, x0 = _problem(seed=2)
    x = x0.clone().requires_grad_(True)
    res = reprojection_residuals(r0, t0, x, cam, pid, pix, intrinsics_vector(s["K"]))
    res.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_errors():
    s, cam, pid, pix, r0, t0, x0 = _problem()
    with pytest.raises(ShapeError):
        bundle_adjust(r0, t0, x0, cam, pid[:-1], pix, s["K"])
    with pytest.raises(ValueError, match="out of range"):
        bundle_adjust(r0, t0, x0, cam + 10, pid, pix, s["K"])
    with pytest.raises(ValueError, match="loss"):
        bundle_adjust(r0, t0, x0, cam, pid, pix, s["K"], loss="tukey")
    with pytest.raises(ValueError, match="unknown intrinsics"):
        bundle_adjust(r0, t0, x0, cam, pid, pix, s["K"], refine_intrinsics=("f",))
    with pytest.raises(ValueError, match="not a rotation"):
        bundle_adjust(-r0, t0, x0, cam, pid, pix, s["K"])

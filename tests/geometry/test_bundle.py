"""Bundle adjustment: cross-checked against scipy.optimize.least_squares on small problems (same cost, same
gauge, same loss) to optimiser tolerance; gauge, intrinsics, robustness to outliers, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import least_squares

from torchworks.core.errors import ShapeError
from torchworks.geometry._reprojection import rodrigues
from torchworks.geometry.bundle import (
    _gauge,
    bundle_adjust,
    bundle_adjust_batched,
    intrinsics_vector,
    reprojection_residuals,
)
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


# --- batches ------------------------------------------------------------------------------------------------------
def _batch(count, views=3, points=15, perturb=0.05):
    """``count`` problems of one shape (different scenes, intrinsics and starts) stacked on a leading dimension."""
    probs = []
    for i in range(count):
        s = multi_view_scene(views=views, points=points, noise=0.5, seed=100 + i)
        g = torch.Generator().manual_seed(200 + i)
        r0 = rodrigues(0.4 * perturb * torch.randn(views, 3, generator=g, dtype=torch.float64)) @ s["R"]
        t0 = s["t"] + perturb * torch.randn(views, 3, generator=g, dtype=torch.float64)
        r0[0], t0[0] = s["R"][0], s["t"][0]
        x0 = s["X"] + perturb * torch.randn(points, 3, generator=g, dtype=torch.float64)
        probs.append((r0, t0, x0, s["x"].reshape(-1, 2), s["K"]))
    cam = torch.arange(views).repeat_interleave(points)
    pid = torch.arange(points).repeat(views)
    return [torch.stack(z) for z in zip(*probs, strict=True)], cam, pid


@pytest.mark.parametrize("loss,names", [("linear", ()), ("huber", ("fx", "fy"))])
def test_batched_equals_one_problem_at_a_time(loss, names):
    (r0, t0, x0, pix, k), cam, pid = _batch(5)
    k = k.clone()
    k[:, :2, :2] *= 1.01  # a wrong focal length, refined in the second case
    out = bundle_adjust_batched(r0, t0, x0, cam, pid, pix, k, loss=loss, refine_intrinsics=names)
    assert out.rotations.shape == (5, 3, 3, 3) and out.points.shape == (5, 15, 3) and out.final_cost.shape == (5,)
    for i in range(5):
        one = bundle_adjust(r0[i], t0[i], x0[i], cam, pid, pix[i], k[i], loss=loss, refine_intrinsics=names)
        assert out.iterations[i] == one.iterations and bool(out.converged[i]) == one.converged
        for a, b in ((out.points[i], one.points), (out.rotations[i], one.rotations),
                     (out.translations[i], one.translations), (out.intrinsics[i], one.intrinsics)):
            assert (a - b).abs().max() <= 1e-12 * b.abs().max()  # measured: within 2e-15 (batched rounding)
        assert abs(float(out.final_cost[i]) - one.final_cost) <= 1e-12 * one.final_cost
    # Per-problem index tensors (B, M) give the same as shared (M,) ones.
    again = bundle_adjust_batched(r0, t0, x0, cam.expand(5, -1), pid.expand(5, -1), pix, k, loss=loss,
                                  refine_intrinsics=names)
    assert torch.equal(again.points, out.points)


def test_batched_problems_stop_on_their_own():
    (r0, t0, x0, pix, k), cam, pid = _batch(4)
    solo = [bundle_adjust(r0[i], t0[i], x0[i], cam, pid, pix[i], k[i], loss="cauchy") for i in range(4)]
    x_start = x0.clone()
    x_start[1] = solo[1].points  # problem 1 starts at its minimum
    r_start, t_start = r0.clone(), t0.clone()
    r_start[1], t_start[1] = solo[1].rotations, solo[1].translations
    bad = pix.clone()
    bad[2, 3] = float("nan")  # problem 2 cannot be evaluated
    out = bundle_adjust_batched(r_start, t_start, x_start, cam, pid, bad, k, loss="cauchy")
    for i in (0, 3):  # the others are untouched by problem 2 and by problem 1 stopping early
        assert (out.points[i] - solo[i].points).abs().max() < 1e-12 and out.iterations[i] == solo[i].iterations
    assert out.iterations[1] <= 2 and (out.points[1] - solo[1].points).abs().max() < 1e-6  # tolerance 1e-10
    assert out.iterations[1] < out.iterations[0]
    assert not out.converged[2] and out.iterations[2] == 1 and torch.equal(out.points[2], x0[2])
    assert out.converged[[0, 1, 3]].all()


def test_batched_shape_errors():
    (r0, t0, x0, pix, k), cam, pid = _batch(2)
    with pytest.raises(ShapeError, match=r"points \(B, P, 3\) with the same B"):
        bundle_adjust_batched(r0, t0, x0[:1], cam, pid, pix, k)
    with pytest.raises(ShapeError, match=r"pixels \(B, M, 2\) with B = 2"):
        bundle_adjust_batched(r0, t0, x0, cam, pid, pix[:, :-1], k)
    with pytest.raises(ShapeError, match="camera_index and point_index"):
        bundle_adjust_batched(r0, t0, x0, cam.expand(3, -1), pid.expand(3, -1), pix, k)
    with pytest.raises(ShapeError, match=r"intrinsics must be \(3, 3\) or \(B=2, 3, 3\)"):
        bundle_adjust_batched(r0, t0, x0, cam, pid, pix, k.repeat(2, 1, 1))
    with pytest.raises(ValueError, match="distortion must have 4 or 5"):
        bundle_adjust_batched(r0, t0, x0, cam, pid, pix, k, distortion=torch.zeros(3, 5))
    with pytest.raises(ShapeError, match=r"rotations \(B, C, 3, 3\)"):
        bundle_adjust_batched(r0[0], t0, x0, cam, pid, pix, k)


# --- gradients of the solution ------------------------------------------------------------------------------------
def _weighted(r, w):
    """A scalar loss of the whole solution: fixed random weights on rotations, translations, points, intrinsics."""
    return ((r.rotations * w[0]).sum() + (r.translations * w[1]).sum() + (r.points * w[2]).sum()
            + (r.intrinsics * w[3]).sum())


@pytest.mark.parametrize("loss,names", [("linear", ()), ("cauchy", ()), ("linear", ("fx", "fy", "k1"))])
def test_implicit_gradients_match_finite_differences(loss, names):
    s, cam, pid, pix, r0, t0, x0 = _problem(seed=4, points=8)
    g = torch.Generator().manual_seed(9)
    w = [torch.randn(z.shape, generator=g, dtype=torch.float64) for z in (r0, t0, x0, torch.zeros(9))]
    dist = torch.zeros(5, dtype=torch.float64)

    # tolerance 0: run until no step lowers the cost. Comparing costs pins the minimum to ~1e-8 relative only
    # (sqrt of the rounding), so the finite-difference steps are as large as truncation allows (e.g. 1e-2 px).
    def value(pix_, k_, r_, t_, d_):
        return _weighted(bundle_adjust(r_, t_, x0, cam, pid, pix_, k_, d_, refine_intrinsics=names, loss=loss,
                                       tolerance=0, differentiable=True), w)

    inputs = [z.clone().requires_grad_(True) for z in (pix, s["K"], r0, t0, dist)]
    value(*inputs).backward()
    assert torch.count_nonzero(inputs[3].grad) == 4  # camera 0's translation and the held scale coordinate only
    held = inputs[3].grad != 0
    directions = {0: torch.randn(pix.shape, generator=g, dtype=torch.float64),
                  1: torch.tensor([[1.0, 0, 1], [0, 1, 1], [0, 0, 0]], dtype=torch.float64) * 0.3,
                  3: held * torch.randn(t0.shape, generator=g, dtype=torch.float64),
                  4: torch.tensor([0.0, 1, 1, 1, 1], dtype=torch.float64)}  # k1 refined in one case: k2.. only
    base = [pix, s["K"], r0, t0, dist]
    with torch.no_grad():
        for i, v in directions.items():
            eps = {0: 1e-2, 1: 1e-2, 3: 1e-3, 4: 1e-4}[i]
            plus, minus = list(base), list(base)
            plus[i], minus[i] = base[i] + eps * v, base[i] - eps * v
            fd = (value(*plus) - value(*minus)) / (2 * eps)
            assert abs(float((inputs[i].grad * v).sum()) - float(fd)) <= 1e-3 * abs(float(fd)), i  # measured 1e-4
        # Camera 0's rotation is held too: perturb it on SO(3).
        v = torch.randn(3, generator=g, dtype=torch.float64)
        rp, rm = r0.clone(), r0.clone()
        rp[0], rm[0] = rodrigues(1e-4 * v) @ r0[0], rodrigues(-1e-4 * v) @ r0[0]
        fd = (value(pix, s["K"], rp, t0, dist) - value(pix, s["K"], rm, t0, dist)) / 2e-4
        from torchworks.geometry._reprojection import skew

        analytic = float((inputs[2].grad[0] * (skew(v) @ r0[0])).sum())
        assert abs(analytic - float(fd)) <= 1e-3 * abs(float(fd))
        assert inputs[2].grad[1:].abs().max() == 0  # free cameras: the minimum does not depend on their start


def test_gradcheck_points_wrt_fixed_intrinsics():
    s, cam, pid, pix, r0, t0, x0 = _problem(seed=6, points=6)

    def points_of(f, c, k1):
        kk = torch.stack([torch.stack([f[0], f.new_zeros(()), c[0]]), torch.stack([f.new_zeros(()), f[1], c[1]]),
                          f.new_tensor([0.0, 0.0, 1.0])])
        d = torch.cat([k1, k1.new_zeros(4)])
        return bundle_adjust(r0, t0, x0, cam, pid, pix, kk, d, tolerance=0, differentiable=True).points

    k = s["K"]
    args = (torch.stack([k[0, 0], k[1, 1]]), torch.stack([k[0, 2], k[1, 2]]), torch.zeros(1, dtype=torch.float64))
    assert torch.autograd.gradcheck(points_of, tuple(a.clone().requires_grad_(True) for a in args), eps=1e-4,
                                    atol=1e-7, rtol=1e-4, fast_mode=True)


def test_differentiable_batch_gradients_equal_single_and_refined_starts_get_none():
    (r0, t0, x0, pix, k), cam, pid = _batch(3, points=10)
    pix_b = pix.clone().requires_grad_(True)
    k_b = k.clone().requires_grad_(True)
    out = bundle_adjust_batched(r0, t0, x0, cam, pid, pix_b, k_b, refine_intrinsics=("cx",), tolerance=1e-14,
                                differentiable=True)
    out.points.square().sum().backward()
    assert k_b.grad[:, 0, 2].abs().max() == 0 and k_b.grad[:, 0, 0].abs().min() > 0  # cx refined, fx held
    for i in range(3):
        p1, k1 = pix[i].clone().requires_grad_(True), k[i].clone().requires_grad_(True)
        one = bundle_adjust(r0[i], t0[i], x0[i], cam, pid, p1, k1, refine_intrinsics=("cx",), tolerance=1e-14,
                            differentiable=True)
        one.points.square().sum().backward()
        assert torch.allclose(pix_b.grad[i], p1.grad, rtol=1e-9, atol=1e-12)
        assert torch.allclose(k_b.grad[i], k1.grad, rtol=1e-9, atol=1e-12)
        assert torch.equal(out.points[i].detach(), one.points.detach())


def test_differentiable_needs_a_fixed_gauge_and_warns_when_not_converged():
    s, cam, pid, pix, r0, t0, x0 = _problem(points=6)
    with pytest.raises(ValueError, match="needs a fixed gauge"):
        bundle_adjust(r0, t0, x0, cam, pid, pix, s["K"], fixed_cameras=(), differentiable=True)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        bundle_adjust(r0, t0, x0, cam, pid, pix, s["K"], iterations=1, differentiable=True)


def test_unrolled_steps_tend_to_the_implicit_gradient():
    s, cam, pid, pix, r0, t0, x0 = _problem(seed=4, points=8)

    def grads(mode, steps):
        p, x = pix.clone().requires_grad_(True), x0.clone().requires_grad_(True)
        r = bundle_adjust(r0, t0, x, cam, pid, p, s["K"], refine_intrinsics=("fx",), iterations=steps,
                          tolerance=1e-14, differentiable=mode)
        (r.points.square().sum() + r.translations.sum()).backward()
        return r, p.grad, x.grad

    ref, g_pix, _ = grads("implicit", 100)
    few, g_few, x_few = grads("unrolled", 5)
    many, g_many, x_many = grads("unrolled", 30)
    assert few.iterations == 5 and not few.converged and many.converged
    assert (many.points - ref.points).abs().max() < 1e-7  # measured 1e-8
    assert (g_many - g_pix).abs().max() < 1e-6 * g_pix.abs().max()  # measured 6e-8
    assert (g_few - g_pix).abs().max() > 1e-3 * g_pix.abs().max()
    # The start matters after 5 steps, not at the (unique, gauge-fixed) minimum.
    assert x_few.abs().max() > 1e-3 and x_many.abs().max() < 1e-8
    with pytest.raises(ValueError, match="differentiable must be"):
        bundle_adjust(r0, t0, x0, cam, pid, pix, s["K"], differentiable="newton")

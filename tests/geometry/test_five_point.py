"""5-point essential matrix solver: truth among the solutions, essential-manifold properties, batching, real data."""

from __future__ import annotations

import math

import cv2
import pytest
import torch
from geo_helpers import random_rotations, two_view_scene

from torchworks.core.errors import ShapeError
from torchworks.geometry.essential import essential_from_pose
from torchworks.geometry.five_point import find_essential_5point, solve_5point_normalized
from torchworks.geometry.ransac import ransac
from torchworks.geometry.rotations import axis_angle_to_matrix, geodesic_angle, matrix_to_axis_angle

D = torch.float64


def _random_problems(b: int, n: int = 5, seed: int = 0):
    """b random calibrated scenes: (normalized x1 (b, n, 2), x2, E_true (b, 3, 3) with unit Frobenius norm)."""
    g = torch.Generator().manual_seed(seed)
    rot = axis_angle_to_matrix(matrix_to_axis_angle(random_rotations(b, seed=seed + 1)) * (0.5 / math.pi))  # <= 0.5 rad
    t = 0.7 * torch.nn.functional.normalize(torch.randn(b, 3, generator=g, dtype=D), dim=-1)
    pts = torch.cat([(torch.rand(b, n, 2, generator=g, dtype=D) - 0.5) * 4,
                     4 + 4 * torch.rand(b, n, 1, generator=g, dtype=D)], -1)
    pts2 = pts @ rot.transpose(-1, -2) + t[:, None]
    assert bool((pts2[..., 2] > 0.5).all())  # both cameras see every point (the scenes are not degenerate)
    e = essential_from_pose(rot, t)
    return pts[..., :2] / pts[..., 2:], pts2[..., :2] / pts2[..., 2:], e / e.norm(dim=(-1, -2), keepdim=True)


def _distance_to_truth(cands: torch.Tensor, valid: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    c = cands / cands.norm(dim=(-1, -2), keepdim=True).clamp(min=1e-300)
    d = torch.minimum((c - truth[:, None]).abs().amax((-1, -2)), (c + truth[:, None]).abs().amax((-1, -2)))
    return torch.where(valid, d, torch.full_like(d, math.inf)).amin(-1)


def test_true_essential_is_among_the_solutions_to_1e9():
    n1, n2, truth = _random_problems(300)
    e, valid = solve_5point_normalized(n1, n2)
    assert e.shape == (300, 10, 3, 3) and valid.shape == (300, 10)
    # Up to scale and sign, every problem's true E is one of the returned real solutions.
    assert _distance_to_truth(e, valid, truth).max().item() < 1e-9
    # Complex roots come in conjugate pairs, so a degree-10 system has an even number of real solutions.
    counts = valid.sum(-1)
    assert counts.min() >= 2 and counts.max() <= 10 and bool((counts % 2 == 0).all())
    # Valid solutions come first; invalid slots are zero.
    assert bool((valid[:, :-1] | ~valid[:, 1:]).all())
    assert (~valid).any() and e[~valid].abs().max().item() == 0.0


def test_every_solution_is_essential_and_satisfies_the_five_constraints():
    n1, n2, _ = _random_problems(100, seed=3)
    e, valid = solve_5point_normalized(n1, n2)
    sols = e[valid]  # (S, 3, 3)
    sv = torch.linalg.svdvals(sols)
    # Two equal singular values (scaled to 1) and one zero; rounding-level deviations only.
    assert (sv - torch.tensor([1.0, 1.0, 0.0], dtype=D)).abs().max().item() < 1e-10
    b = valid.nonzero()[:, 0]
    h1 = torch.cat([n1, torch.ones_like(n1[..., :1])], -1)[b]  # (S, 5, 3)
    h2 = torch.cat([n2, torch.ones_like(n2[..., :1])], -1)[b]
    residual = torch.einsum("sni,sij,snj->sn", h2, sols, h1)
    assert residual.abs().max().item() < 1e-10


def test_cubic_constraint_coefficients_evaluate_to_det_and_the_trace_constraint_of_e():
    from torchworks.geometry.five_point import _cubic_constraints, _monomials

    g = torch.Generator().manual_seed(2)
    basis = torch.randn(2, 3, 4, 9, generator=g, dtype=D)  # two leading batch dimensions
    coeffs = _cubic_constraints(basis)
    assert coeffs.shape == (2, 3, 10, 20)
    xyz = torch.randn(2, 3, 7, 3, generator=g, dtype=D)  # 7 random points (x, y, z) per basis
    mono = _monomials(*xyz.unbind(-1))[0]  # (2, 3, 7, 20)
    got = torch.einsum("...cm,...pm->...pc", coeffs, mono)  # (2, 3, 7, 10)
    w = torch.cat([xyz, torch.ones_like(xyz[..., :1])], -1)  # (2, 3, 7, 4)
    e = (w @ basis).unflatten(-1, (3, 3))  # E = x X + y Y + z Z + W
    eet = e @ e.transpose(-1, -2)
    trace = eet.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    want = torch.cat([torch.linalg.det(e)[..., None], (2 * eet @ e - trace * e).flatten(-2)], -1)
    assert (got - want).abs().max().item() < 1e-11 * want.abs().max().item()


def test_batched_equals_one_by_one_and_pixels_api_matches_normalized():
    n1, n2, truth = _random_problems(4, seed=5)
    e, valid = solve_5point_normalized(n1, n2)
    for i in range(4):
        ei, vi = solve_5point_normalized(n1[i], n2[i])
        assert torch.equal(vi, valid[i]) and (ei - e[i]).abs().max().item() < 1e-12
    K = torch.tensor([[800.0, 0.5, 320], [0, 780, 240], [0, 0, 1]], dtype=D)
    pix1 = n1 @ K[:2, :2].T + K[:2, 2]
    pix2 = n2 @ K[:2, :2].T + K[:2, 2]
    ep, vp = find_essential_5point(pix1, pix2, K, K)
    assert _distance_to_truth(ep, vp, truth).max().item() < 1e-9


def test_more_than_five_exact_points_give_the_least_squares_solution():
    n1, n2, truth = _random_problems(20, n=12, seed=7)
    e, valid = solve_5point_normalized(n1, n2)
    assert _distance_to_truth(e, valid, truth).max().item() < 1e-9
    # Weights that zero out all but five points reproduce the minimal solve on those five.
    w = torch.zeros(20, 12, dtype=D)
    w[:, :5] = 1
    ew, vw = solve_5point_normalized(n1, n2, weights=w)
    assert _distance_to_truth(ew, vw, truth).max().item() < 1e-9


def test_degenerate_sample_returns_no_solution_instead_of_raising():
    x = torch.zeros(5, 2, dtype=D)  # all five points identical: the constraints are rank 1
    e, valid = solve_5point_normalized(x, x)
    assert e.shape == (10, 3, 3) and torch.isfinite(e).all()
    good = e[valid]
    if good.shape[0]:  # whatever is returned must still be a valid essential matrix
        sv = torch.linalg.svdvals(good)
        assert (sv - torch.tensor([1.0, 1.0, 0.0], dtype=D)).abs().max().item() < 1e-8


def test_errors():
    with pytest.raises(ShapeError, match="N >= 5"):
        solve_5point_normalized(torch.zeros(4, 2, dtype=D), torch.zeros(4, 2, dtype=D))
    with pytest.raises(ShapeError, match="N >= 5"):
        solve_5point_normalized(torch.zeros(5, 2, dtype=D), torch.zeros(6, 2, dtype=D))
    with pytest.raises(ShapeError, match="intrinsics"):
        find_essential_5point(torch.zeros(5, 2, dtype=D), torch.zeros(5, 2, dtype=D), torch.eye(4, dtype=D),
                              torch.eye(3, dtype=D))
    with pytest.raises(TypeError, match="floating"):
        solve_5point_normalized(torch.zeros(5, 2, dtype=torch.long), torch.zeros(5, 2, dtype=torch.long))


def test_ransac_5point_recovers_the_synthetic_pose_with_outliers():
    s = two_view_scene(300, noise=0.5, seed=11)
    g = torch.Generator().manual_seed(2)
    x2 = s["x2"].clone()
    x2[:90] = torch.rand(90, 2, generator=g, dtype=D) * torch.tensor([640.0, 480.0], dtype=D)
    r = ransac(s["x1"], x2, "essential", intrinsics1=s["K"], intrinsics2=s["K"], essential_solver="5point")
    assert not r.degenerate and r.inliers[90:].float().mean().item() > 0.95 and r.inliers[:90].sum().item() < 5
    assert math.degrees(geodesic_angle(r.rotation, s["R"]).item()) < 0.25  # measured 0.10 deg (0.5 px noise)
    # 5 points per sample: far fewer samples than the 7-point search needs at 30 % outliers.
    assert r.iterations <= 128


def _temple(i):
    from geo_helpers import data_dir

    base = data_dir("multiview_temple_sparse_ring")
    for line in (base / "templeSR_par.txt").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[0] == f"templeSR{i:04d}.png":
            v = torch.tensor([float(x) for x in parts[1:]], dtype=D)
            return base / parts[0], v[:9].reshape(3, 3), v[9:18].reshape(3, 3), v[18:]
    raise AssertionError(i)


@pytest.mark.parametrize(("a", "b"), [(1, 2), (10, 11)])
def test_temple_5point_ransac_agrees_with_opencv_find_essential_mat(a, b):
    (pa, K, Ra, _), (pb, _, Rb, _) = _temple(a), _temple(b)
    sift = cv2.SIFT_create(contrastThreshold=0.01)
    ka, da = sift.detectAndCompute(cv2.imread(str(pa), cv2.IMREAD_GRAYSCALE), None)
    kb, db = sift.detectAndCompute(cv2.imread(str(pb), cv2.IMREAD_GRAYSCALE), None)
    matches = [m for m, n in cv2.BFMatcher().knnMatch(da, db, k=2) if m.distance < 0.8 * n.distance]
    x1 = torch.tensor([ka[m.queryIdx].pt for m in matches], dtype=D)
    x2 = torch.tensor([kb[m.trainIdx].pt for m in matches], dtype=D)
    r = ransac(x1, x2, "essential", threshold=1.0, intrinsics1=K, intrinsics2=K, essential_solver="5point")
    ec, mask = cv2.findEssentialMat(x1.numpy(), x2.numpy(), K.numpy(), method=cv2.RANSAC, prob=0.999,
                                    threshold=1.0)
    _, rc, _, _ = cv2.recoverPose(ec[:3], x1.numpy(), x2.numpy(), K.numpy(), mask=mask.copy())
    r_gt = Rb @ Ra.T
    ours = math.degrees(geodesic_angle(r.rotation, r_gt).item())
    between = math.degrees(geodesic_angle(r.rotation, torch.from_numpy(rc)).item())
    print(f"ours vs truth {ours:.3f} deg, ours vs OpenCV {between:.3f} deg")
    # Measured: ours 0.40 / 0.31 deg from the ground truth, OpenCV RANSAC 0.61 / 0.35; ours vs OpenCV 1.01 / 0.1
    # deg (their errors point in different directions on 1-2). Both are within the 1 deg of the truth,
    # so they can differ by up to 2 deg; 1.5 deg leaves margin for OpenCV's unseeded RANSAC.
    assert ours < 1.0 and between < 1.5
    assert abs(r.num_inliers - int(mask.sum())) <= 0.05 * len(matches)

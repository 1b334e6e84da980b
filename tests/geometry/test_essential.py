"""Essential matrix: the two conventions agree, decomposition, cheirality vs cv2.recoverPose, gradients."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from geo_helpers import random_rotations, two_view_scene

from torchworks.core.errors import ShapeError
from torchworks.geometry import essential as es
from torchworks.geometry.epipolar import _unit_sign, sampson_distance
from torchworks.geometry.rotations import geodesic_angle


def test_note_and_common_conventions_agree_up_to_sign():
    R = random_rotations(5, seed=8)
    t = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    T = -(R.transpose(-1, -2) @ t[..., None])[..., 0]  # camera-2 centre in camera-1 coordinates
    e_common = es.essential_from_pose(R, t, "common")
    e_note = es.essential_from_pose(R, T, "note")
    assert torch.allclose(e_note, -e_common, atol=1e-14)
    # Longuet-Higgins on a point seen by both cameras, in both conventions.
    X1 = torch.tensor([0.3, -0.2, 5.0], dtype=torch.float64)
    X2 = (R @ X1[:, None])[..., 0] + t  # (5, 3)
    assert torch.allclose((R @ (X1 - T)[..., None])[..., 0], X2, atol=1e-14)
    xn1, xn2 = X1 / X1[2], X2 / X2[:, 2:]
    for e in (e_common, e_note):
        assert (xn2[:, None, :] @ e @ xn1[:, None]).abs().max() < 1e-14


def test_decompose_gives_four_candidates_containing_truth():
    s = two_view_scene(10, seed=2)
    E = es.essential_from_pose(s["R"], s["t"])
    rots, trans = es.decompose_essential(E)
    assert rots.shape == (4, 3, 3) and trans.shape == (4, 3)
    assert torch.allclose(torch.linalg.det(rots), torch.ones(4, dtype=torch.float64))
    t_unit = s["t"] / s["t"].norm()
    hits = [(geodesic_angle(r, s["R"]) < 1e-10) & ((t - t_unit).norm() < 1e-10) for r, t in zip(rots, trans,
                                                                                                 strict=True)]
    assert sum(bool(h) for h in hits) == 1
    # R1, R2 match cv2.decomposeEssentialMat up to ordering.
    r1, r2, _ = cv2.decomposeEssentialMat(E.numpy())
    for r in (r1, r2):
        assert min(np.abs(r - rots[i].numpy()).max() for i in (0, 2)) < 1e-10


@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_recover_pose_matches_opencv(noise):
    s = two_view_scene(200, noise=noise, seed=9)
    K = s["K"]
    E = es.find_essential(s["x1"], s["x2"], K, K)
    R, t, mask = es.recover_pose(E, s["x1"], s["x2"], K, K)
    n, Rc, tc, mask_cv = cv2.recoverPose(E.numpy(), s["x1"].numpy(), s["x2"].numpy(), K.numpy())
    assert np.abs(R.numpy() - Rc).max() < 1e-9 and np.abs(t.numpy() - tc[:, 0]).max() < 1e-9
    assert int(mask.sum()) == n == 200
    tol = 1e-9 if noise == 0 else 2e-3
    assert geodesic_angle(R, s["R"]).item() < tol
    assert (t - s["t"] / s["t"].norm()).norm().item() < 10 * tol
    # After LM on the Sampson error our pose explains the data at least as well as OpenCV's 5-point E.
    ec, _ = cv2.findEssentialMat(s["x1"].numpy(), s["x2"].numpy(), K.numpy(), method=cv2.LMEDS)
    Rr, tr = es.refine_pose_sampson(R, t, s["x1"], s["x2"], K, K)
    ki = torch.linalg.inv(K)
    fs = [ki.T @ e @ ki for e in (E, es.essential_from_pose(Rr, tr), torch.from_numpy(ec[:3]))]
    rms = [sampson_distance(f, s["x1"], s["x2"]).pow(2).mean().sqrt().item() for f in fs]
    assert rms[1] <= rms[0] + 1e-12 and rms[1] <= rms[2] * (1 + 1e-6) + 1e-9
    assert geodesic_angle(Rr, s["R"]).item() <= max(geodesic_angle(R, s["R"]).item(), 1e-9) * 1.5


def test_find_essential_has_essential_singular_values():
    s = two_view_scene(30, noise=0.3, seed=3)
    E = es.find_essential(s["x1"], s["x2"], s["K"], s["K"])
    sv = torch.linalg.svdvals(E)
    assert torch.allclose(sv, torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(_unit_sign(E), _unit_sign(es.project_to_essential(E)), atol=1e-12)


def test_gradcheck_find_essential_and_recover_pose():
    # Noisy data: on exact data the linear E already has two equal singular values (see decompose_essential).
    s = two_view_scene(12, seed=4, noise=0.5)
    x1 = s["x1"].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: es.find_essential(a, s["x2"], s["K"], s["K"]), (x1,))
    # recover_pose selects a branch discretely; inside the branch (R, t) is smooth in E. An exact E has two equal
    # singular values (SVD backward undefined), so check at one with distinct values (1, 0.8, 0).
    u, _, vh = torch.linalg.svd(es.essential_from_pose(s["R"], s["t"]))
    E = (u @ torch.diag(torch.tensor([1.0, 0.8, 0.0], dtype=torch.float64)) @ vh).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e: es.recover_pose(e, s["x1"], s["x2"], s["K"], s["K"])[0], (E,))


def test_errors():
    with pytest.raises(ValueError, match="convention"):
        es.essential_from_pose(torch.eye(3), torch.zeros(3), "opencv")
    with pytest.raises(ShapeError):
        es.decompose_essential(torch.eye(4))
    with pytest.raises(ShapeError, match="N >= 8"):
        es.find_essential(torch.zeros(5, 2), torch.zeros(5, 2), torch.eye(3), torch.eye(3))


def test_sampson_problem_jacobian_matches_finite_differences():
    # The analytic Jacobian of the relative-pose LM (used by refine_pose_sampson and RANSAC) against central
    # differences of the residuals, with per-point weights and a skewed second camera.
    from torchworks.geometry.camera import pixels_to_normalized
    from torchworks.geometry.essential import _SampsonProblem
    from torchworks.geometry.rotations import axis_angle_to_matrix

    s = two_view_scene(200, noise=0.5, seed=1)
    k2 = s["K"].clone()
    k2[0, 1] = 3.0
    p = _SampsonProblem.from_normalized(pixels_to_normalized(s["x1"], s["K"]), pixels_to_normalized(s["x2"], k2),
                                        s["K"], k2, torch.rand(200, dtype=torch.float64))
    rot = (s["R"] @ axis_angle_to_matrix(torch.tensor([0.01, -0.02, 0.005], dtype=torch.float64))).numpy()
    t = (s["t"] / s["t"].norm()).numpy()
    r, jac = p.residuals_and_jacobian(rot, t)
    assert np.allclose(r, p.residuals(rot, t), atol=1e-13)
    num = np.zeros_like(jac)
    for k in range(5):
        d = np.zeros(5)
        d[k] = 1e-6
        num[:, k] = (p.residuals(*p.step(rot, t, d)) - p.residuals(*p.step(rot, t, -d))) / 2e-6
    assert np.abs(jac - num).max() < 1e-8 * np.abs(jac).max()


def test_sampson_problem_residuals_and_reused_rows_agree_with_direct_evaluation():
    # The residuals equal sampson_distance of F = K2^-T E K1^-1 (skewed second camera, E not exact), a subset's
    # equal the full problem's on its points, and the Jacobian from an LM trial's reused rows equals the full
    # computation bit for bit (the LM path must not depend on the reuse).
    from torchworks.geometry.camera import pixels_to_normalized
    from torchworks.geometry.essential import _SampsonProblem, _skew_np

    s = two_view_scene(200, noise=0.5, seed=2)
    k2 = s["K"].clone()
    k2[0, 1], k2[1, 2] = 3.0, k2[1, 2] + 17.0
    p = _SampsonProblem.from_normalized(pixels_to_normalized(s["x1"], s["K"]), pixels_to_normalized(s["x2"], k2),
                                        s["K"], k2)
    rot, t = s["R"].numpy(), (s["t"] / s["t"].norm()).numpy()
    e = _skew_np(t) @ rot + 0.01 * np.random.default_rng(0).standard_normal((3, 3))
    f = torch.linalg.inv(k2).T @ torch.from_numpy(e) @ torch.linalg.inv(s["K"])
    ref = sampson_distance(f, s["x1"], s["x2"]).numpy()
    assert np.allclose(np.abs(p.residuals_of(e)), ref, rtol=1e-9, atol=1e-12)
    mask = np.arange(200) % 3 != 0
    sub = p.subset(mask)
    assert np.allclose(sub.residuals_of(e), p.residuals_of(e)[mask], rtol=1e-12, atol=1e-15)
    res, rows = sub.residuals_with_rows(rot, t)
    r1, j1 = sub.residuals_and_jacobian(rot, t, rows)
    r2, j2 = sub.residuals_and_jacobian(rot, t)
    assert np.array_equal(r1, r2) and np.array_equal(j1, j2)
    assert np.allclose(res, r1, rtol=1e-12, atol=1e-15)


def test_fast_cheirality_picks_the_same_pose_as_recover_pose():
    from torchworks.geometry.camera import pixels_to_normalized
    from torchworks.geometry.essential import _pose_from_essential

    for seed in range(5):
        s = two_view_scene(60, noise=0.3, seed=seed)
        e = es.essential_from_pose(s["R"], s["t"])
        rot, t, _ = es.recover_pose(e, s["x1"], s["x2"], s["K"], s["K"])
        n1 = torch.cat([pixels_to_normalized(s["x1"], s["K"]), torch.ones(60, 1, dtype=torch.float64)], 1).numpy()
        n2 = torch.cat([pixels_to_normalized(s["x2"], s["K"]), torch.ones(60, 1, dtype=torch.float64)], 1).numpy()
        r2, t2 = _pose_from_essential(e.numpy(), n1, n2)
        assert np.allclose(r2, rot.numpy(), atol=1e-12) and np.allclose(t2, t.numpy(), atol=1e-12)

"""Fundamental matrix: 8/7-point vs cv2.findFundamentalMat (Sampson error), epipoles, lines, distances."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from geo_helpers import two_view_scene

from torchworks.core.errors import ShapeError
from torchworks.geometry import epipolar as ep
from torchworks.geometry.camera import projection_matrix
from torchworks.geometry.essential import essential_from_pose
from torchworks.geometry.se3 import make_pose


def _rms(x):
    return x.pow(2).mean().sqrt().item()


@pytest.mark.parametrize("offset", [0.0, 3000.0])
def test_eight_point_matches_opencv_sampson(offset):
    s = two_view_scene(300, noise=0.5, seed=4)
    x1, x2 = s["x1"] + offset, s["x2"] + offset
    ours = ep.find_fundamental(x1, x2)
    ref, _ = cv2.findFundamentalMat(x1.numpy(), x2.numpy(), cv2.FM_8POINT)
    ref = torch.from_numpy(ref)
    assert _rms(ep.sampson_distance(ours, x1, x2)) == pytest.approx(_rms(ep.sampson_distance(ref, x1, x2)), rel=1e-6)
    # Same algorithm: OpenCV only differs by rounding the points to float32.
    f32 = ep.find_fundamental(x1.float().double(), x2.float().double())
    assert (ep._unit_sign(ref) - f32).abs().max() < 1e-8
    assert torch.linalg.matrix_rank(ours).item() == 2


def test_noise_free_f_equals_f_from_essential_and_from_projections():
    s = two_view_scene(50, seed=0)
    K, R, t = s["K"], s["R"], s["t"]
    f_e = ep._unit_sign(ep.fundamental_from_essential(essential_from_pose(R, t), K, K))
    P1 = projection_matrix(K, make_pose(torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)))
    P2 = projection_matrix(K, make_pose(R, t))
    assert (ep.fundamental_from_projections(P1, P2) - f_e).abs().max() < 1e-12
    assert (ep.find_fundamental(s["x1"], s["x2"]) - f_e).abs().max() < 1e-10
    assert ep.sampson_distance(f_e, s["x1"], s["x2"]).max() < 1e-9
    E = ep.essential_from_fundamental(f_e, K, K)
    assert torch.allclose(ep._unit_sign(E), ep._unit_sign(essential_from_pose(R, t)), atol=1e-12)


def test_seven_point_contains_opencv_solutions():
    s = two_view_scene(7, seed=5, noise=0.2)
    fs, valid = ep.find_fundamental_7point(s["x1"], s["x2"])
    ref, _ = cv2.findFundamentalMat(s["x1"].numpy(), s["x2"].numpy(), cv2.FM_7POINT)
    refs = [ep._unit_sign(torch.from_numpy(ref[3 * i:3 * i + 3])) for i in range(ref.shape[0] // 3)]
    ours = [fs[i] for i in range(3) if valid[i]]
    assert len(ours) == len(refs) >= 1
    for r in refs:  # solution order is not defined: match each OpenCV solution to one of ours
        assert min((o - r).abs().max().item() for o in ours) < 1e-6
    for o in ours:
        assert abs(torch.linalg.det(o).item()) < 1e-12
        assert ep.sampson_distance(o, s["x1"], s["x2"]).max() < 1e-6


def test_epipoles_and_lines_vs_opencv():
    s = two_view_scene(20, noise=0.3, seed=6)
    F = ep.find_fundamental(s["x1"], s["x2"])
    e1, e2 = ep.epipoles(F)
    assert (F @ e1).abs().max() < 1e-12 and (F.T @ e2).abs().max() < 1e-12
    for image in (1, 2):
        pts = s["x1"] if image == 1 else s["x2"]
        ours = ep.epipolar_lines(F, pts, image)
        ref = cv2.computeCorrespondEpilines(pts.numpy().reshape(-1, 1, 2), image, F.numpy())[:, 0]
        # OpenCV's sign is arbitrary per line; compare up to sign.
        diff = np.minimum(np.abs(ours.numpy() - ref).max(1), np.abs(ours.numpy() + ref).max(1))
        assert diff.max() < 1e-6
    # Hand check on exact data: the epipole in image 2 is the image of camera 1's centre, K t.
    exact = two_view_scene(20, seed=6)
    Fx = ep.find_fundamental(exact["x1"], exact["x2"])
    _, e2x = ep.epipoles(Fx)
    kt = exact["K"] @ exact["t"]
    assert torch.allclose(e2x[:2] / e2x[2], kt[:2] / kt[2], rtol=1e-8)


def test_distances_hand_values_and_opencv_sampson():
    # F of a pure x translation: epipolar lines are the rows v2 = v1.
    F = torch.tensor([[0.0, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=torch.float64)
    x1 = torch.tensor([[10.0, 20.0]], dtype=torch.float64)
    x2 = torch.tensor([[50.0, 23.0]], dtype=torch.float64)  # 3 px off the line in each image
    assert ep.symmetric_epipolar_distance(F, x1, x2, squared=True).item() == pytest.approx(18.0)
    assert ep.sampson_distance(F, x1, x2, squared=True).item() == pytest.approx(4.5)  # 9 / (1 + 1)
    s = two_view_scene(5, noise=1.0, seed=7)
    Fn = ep.find_fundamental(two_view_scene(20, seed=7)["x1"], two_view_scene(20, seed=7)["x2"])
    for a, b in zip(s["x1"], s["x2"], strict=True):
        ref = cv2.sampsonDistance(np.append(a.numpy(), 1.0)[:, None], np.append(b.numpy(), 1.0)[:, None], Fn.numpy())
        assert ep.sampson_distance(Fn, a[None], b[None], squared=True).item() == pytest.approx(ref, rel=1e-12)


def test_batched_and_gradcheck_exact_data():
    scenes = [two_view_scene(12, seed=i) for i in range(2)]
    x1 = torch.stack([s["x1"] for s in scenes])
    x2 = torch.stack([s["x2"] for s in scenes])
    fb = ep.find_fundamental(x1, x2)
    assert torch.allclose(fb[1], ep.find_fundamental(x1[1], x2[1]), atol=1e-12)
    n1 = x1[0].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: ep.find_fundamental(a, b), (n1, x2[0]), fast_mode=False)
    # The unsquared distance has a kink at zero residual (like |x|): check it on noisy points.
    assert torch.autograd.gradcheck(lambda a: ep.sampson_distance(fb[0], a, x2[0] + 0.5), (n1,))
    assert torch.autograd.gradcheck(lambda a: ep.sampson_distance(fb[0], a, x2[0], squared=True), (n1,))
    assert torch.autograd.gradcheck(lambda a: ep.symmetric_epipolar_distance(fb[0], a, x2[0], squared=True), (n1,))


def _qr_route(x1, x2, w=None):
    # The textbook solve: QR + SVD of the normalized design matrix itself (no A^T A).
    from torchworks.geometry.homography import normalize_points, null_vector
    (n1, t1), (n2, t2) = normalize_points(x1, w), normalize_points(x2, w)
    a = ep._design(n1, n2) if w is None else ep._design(n1, n2) * w.sqrt()[..., None]
    return ep._unit_sign(t2.mT @ ep.enforce_rank2(null_vector(a).unflatten(-1, (3, 3))) @ t1)


@pytest.mark.parametrize("noise", [0.0, 0.5, 3.0])
def test_gram_route_is_as_exact_as_qr_svd(noise):
    s = two_view_scene(500, noise=noise, seed=11)
    assert (ep.find_fundamental(s["x1"], s["x2"]) - _qr_route(s["x1"], s["x2"])).abs().max() < 1e-13
    w = torch.rand(500, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert (ep.find_fundamental(s["x1"], s["x2"], w) - _qr_route(s["x1"], s["x2"], w)).abs().max() < 1e-13


def test_large_batches_in_blocks_equal_one_problem_at_a_time():
    # 40 problems x 600 points exceed one block of the no-grad path (2**14 points), weighted and not.
    scenes = [two_view_scene(600, noise=0.5, seed=20 + i) for i in range(40)]
    x1, x2 = torch.stack([s["x1"] for s in scenes]), torch.stack([s["x2"] for s in scenes])
    w = torch.rand(40, 600, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert x1.shape[0] * x1.shape[1] > ep._BLOCK_POINTS
    for weights in (None, w):
        batched = ep.find_fundamental(x1, x2, weights)
        for i in (0, 26, 39):  # first block, second block, last problem
            one = ep.find_fundamental(x1[i], x2[i], None if weights is None else weights[i])
            assert (batched[i] - one).abs().max() < 1e-14
            assert (batched[i] - _qr_route(x1[i], x2[i], None if weights is None else weights[i])).abs().max() < 1e-13


def test_a_point_at_the_centroid_is_fine():
    # Hartley's mean distance includes a zero distance, which r2 * rsqrt(r2) must turn into 0, not NaN:
    # the centroid of these 9 points is exactly (0, 0), one point sits on it, the others at distance 1 or sqrt(2).
    pts = torch.tensor([[0.0, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [-1, -1], [1, -1], [-1, 1]],
                       dtype=torch.float64)
    moments, (scales, t), _ = ep._moments_blockwise(pts[None], pts[None] + 5, None)
    s = math.sqrt(2) / ((4 + 4 * math.sqrt(2)) / 9)  # sqrt(2) / mean distance
    assert torch.isfinite(moments).all() and scales[0, 2].item() == pytest.approx(s, rel=1e-15)
    assert torch.isfinite(ep.find_fundamental(pts, pts @ torch.tensor([[1.0, 0.1], [0.2, 1.0]],
                                                                       dtype=torch.float64) + 3)).all()


def test_ill_conditioned_problems_fall_back_to_qr_svd(monkeypatch):
    # Points squeezed into a thin strip (y spread 1e-3 of the x spread): the normalized design matrix has a
    # condition number ~1e6, so A^T A would lose ~12 digits; only that problem of the batch takes the QR route.
    good = two_view_scene(200, noise=0.5, seed=1)
    thin = two_view_scene(200, noise=0.0, seed=2)
    squeeze = torch.tensor([1.0, 1e-3], dtype=torch.float64)
    x1 = torch.stack([good["x1"], thin["x1"] * squeeze])
    x2 = torch.stack([good["x2"], thin["x2"] * squeeze + torch.randn(200, 2, dtype=torch.float64) * 1e-6])
    calls = []
    real = ep.null_vector
    monkeypatch.setattr(ep, "null_vector", lambda a: calls.append(a.shape) or real(a))
    f = ep.find_fundamental(x1, x2)
    assert calls, "the ill-conditioned problem should have been solved by QR + SVD"
    assert (f - _qr_route(x1, x2)).abs().max() < 1e-12
    calls.clear()
    ep.find_fundamental(good["x1"], good["x2"])
    assert not calls


def test_errors():
    z = torch.zeros(7, 2, dtype=torch.float64)
    with pytest.raises(ShapeError, match="N >= 8"):
        ep.find_fundamental(z, z)
    with pytest.raises(ShapeError, match="exactly 7"):
        ep.find_fundamental_7point(torch.zeros(8, 2), torch.zeros(8, 2))
    with pytest.raises(ValueError, match="image must be 1 or 2"):
        ep.epipolar_lines(torch.eye(3), torch.zeros(3, 2), 3)
    with pytest.raises(ShapeError):
        ep.sampson_distance(torch.eye(3), torch.zeros(3, 2), torch.zeros(4, 2))

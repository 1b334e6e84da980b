"""Triangulation: DLT vs cv2.triangulatePoints, midpoint, N views, reprojection error, cheirality flags."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from geo_helpers import random_rotations, two_view_scene

from torchworks.core.errors import ShapeError
from torchworks.geometry import triangulation as tr
from torchworks.geometry.camera import projection_matrix
from torchworks.geometry.se3 import make_pose


def _cams(s):
    eye = make_pose(torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    return projection_matrix(s["K"], eye), projection_matrix(s["K"], make_pose(s["R"], s["t"]))


def test_dlt_matches_opencv_and_recovers_noise_free_points():
    s = two_view_scene(500, noise=0.5, seed=1)
    P1, P2 = _cams(s)
    X = tr.triangulate_points(P1, P2, s["x1"], s["x2"])
    ref = cv2.triangulatePoints(P1.numpy(), P2.numpy(), s["x1"].numpy().T, s["x2"].numpy().T)
    assert np.abs(X.numpy() - (ref[:3] / ref[3]).T).max() < 1e-9
    exact = two_view_scene(50, seed=1)
    assert (tr.triangulate_points(P1, P2, exact["x1"], exact["x2"]) - exact["X"]).abs().max() < 1e-11
    assert (tr.triangulate_midpoint(torch.stack([P1, P2]), torch.stack([exact["x1"], exact["x2"]]))
            - exact["X"]).abs().max() < 1e-11


def test_n_views_and_reprojection_error():
    K = two_view_scene(1)["K"]
    Rs = random_rotations(4, seed=3) @ torch.diag(torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64))
    Rs = torch.eye(3, dtype=torch.float64) + 0.0 * Rs  # all cameras look down +z from different centres
    centres = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [-1, -0.5, 0.2]], dtype=torch.float64)
    P = projection_matrix(K, make_pose(Rs, -(Rs @ centres[..., None])[..., 0]))  # (4, 3, 4)
    X = torch.randn(30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + torch.tensor(
        [0, 0, 8.0], dtype=torch.float64)
    xh = torch.cat([X, torch.ones(30, 1, dtype=torch.float64)], -1) @ P.transpose(-1, -2)
    x = xh[..., :2] / xh[..., 2:]  # (4, 30, 2)
    for fn in (tr.triangulate_dlt, tr.triangulate_midpoint):
        assert (fn(P, x) - X).abs().max() < 1e-10
    assert tr.reprojection_error(P, X, x).max() < 1e-10
    noisy = x.clone()
    noisy[1, 0, 0] += 2.0
    err = tr.reprojection_error(P, X, noisy)
    assert err[1, 0].item() == pytest.approx(2.0) and err.shape == (4, 30)
    # Batched over two independent problems equals per-problem.
    pb, xb = torch.stack([P, P]), torch.stack([x, noisy])
    assert torch.allclose(tr.triangulate_dlt(pb, xb)[1], tr.triangulate_dlt(P, noisy), atol=1e-12)


def test_points_behind_a_camera_are_flagged():
    s = two_view_scene(20, seed=2)
    P1, P2 = _cams(s)
    P = torch.stack([P1, P2])
    X = s["X"].clone()
    X[:3, 2] *= -1  # behind camera 1
    d = tr.depths(P, X)
    assert torch.allclose(d[0], X[:, 2], atol=1e-12)  # K has a positive diagonal: depth = camera-frame Z
    front = tr.in_front_of_cameras(P, X)
    assert (~front[:3]).all() and front[3:].all()
    assert torch.equal(tr.in_front_of_cameras(-P, X), front)  # invariant to the sign of P


def test_gradcheck_dlt_and_midpoint():
    s = two_view_scene(6, noise=0.3, seed=5)
    P1, P2 = _cams(s)
    P = torch.stack([P1, P2])
    x = torch.stack([s["x1"], s["x2"]]).requires_grad_(True)
    assert torch.autograd.gradcheck(tr.triangulate_dlt, (P, x))
    assert torch.autograd.gradcheck(tr.triangulate_midpoint, (P.clone().requires_grad_(True), x))
    exact = two_view_scene(6, seed=5)
    xe = torch.stack([exact["x1"], exact["x2"]]).requires_grad_(True)
    assert torch.autograd.gradcheck(tr.triangulate_dlt, (P, xe))


def test_errors():
    with pytest.raises(ShapeError, match="V >= 2"):
        tr.triangulate_dlt(torch.zeros(1, 3, 4), torch.zeros(1, 5, 2))
    with pytest.raises(ShapeError):
        tr.triangulate_dlt(torch.zeros(2, 3, 4), torch.zeros(3, 5, 2))
    with pytest.raises(TypeError, match="floating"):
        tr.triangulate_dlt(torch.zeros(2, 3, 4), torch.zeros(2, 5, 2, dtype=torch.int64))


def test_adjugate_solver_equals_svd_and_float32():
    s = two_view_scene(2000, noise=0.5, seed=3)
    P1, P2 = _cams(s)
    P, x = torch.stack([P1, P2]), torch.stack([s["x1"], s["x2"]])
    ref = tr.triangulate_dlt(P, x, "svd")
    for solver in ("auto", "adjugate"):
        assert ((tr.triangulate_dlt(P, x, solver) - ref).abs().max() / ref.abs().max()) < 1e-11
    # Three views through QR + adjugate.
    P3, x3 = torch.stack([P1, P2, P2]), torch.stack([s["x1"], s["x2"], s["x2"] + 0.3])
    assert ((tr.triangulate_dlt(P3, x3, "adjugate") - tr.triangulate_dlt(P3, x3, "svd")).abs().max()
            / ref.abs().max()) < 1e-11
    # float32 stays finite (the adjugate is computed on a rescaled system, no overflow).
    x32 = tr.triangulate_dlt(P.float(), x.float(), "adjugate")
    assert torch.isfinite(x32).all() and ((x32.double() - ref).abs().max() / ref.abs().max()) < 1e-4
    with pytest.raises(ValueError, match="solver"):
        tr.triangulate_dlt(P, x, "cofactor")


def test_public_api_imports():
    import torchworks.geometry as g

    assert callable(g.ransac) and "convert_pose" in g.__all__ and "triangulate_dlt" in g.__all__

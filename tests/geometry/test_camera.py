"""Cameras and distortion: parity with cv2.projectPoints / cv2.undistortPoints, round trips, gradients."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from torchworks.core.errors import ShapeError
from torchworks.geometry import camera as cam
from torchworks.geometry import distortion as dist
from torchworks.geometry.rotations import axis_angle_to_matrix
from torchworks.geometry.se3 import make_pose

# Zero skew: cv2.projectPoints silently ignores K[0, 1] (measured: 0.15 px off with skew 0.5).
K_NP = np.array([[800.0, 0.0, 320.0], [0, 780.0, 240.0], [0, 0, 1]])
D5 = np.array([-0.28, 0.12, 0.001, -0.0015, -0.02])
D8 = np.array([0.1, -0.05, 0.001, 0.002, 0.01, 0.05, -0.01, 0.003])


def _points(n=200, seed=0):
    g = np.random.default_rng(seed)
    return np.concatenate([g.uniform(-2, 2, (n, 2)), g.uniform(3, 8, (n, 1))], 1)


@pytest.mark.parametrize("d", [None, D5[:4], D5, D8])
def test_project_points_matches_opencv(d):
    X = _points()
    rvec, tvec = np.array([0.1, -0.2, 0.3]), np.array([0.2, -0.1, 0.5])
    ref, _ = cv2.projectPoints(X, rvec, tvec, K_NP, d)
    R = axis_angle_to_matrix(torch.from_numpy(rvec))
    ours = cam.world_to_pixels(torch.from_numpy(X), torch.from_numpy(K_NP), make_pose(R, torch.from_numpy(tvec)),
                               None if d is None else torch.from_numpy(d))
    assert np.abs(ours.numpy() - ref[:, 0]).max() < 1e-10


@pytest.mark.parametrize("d", [D5, D8])
def test_undistort_matches_converged_opencv_and_inverts_distort(d):
    X = _points()
    px, _ = cv2.projectPoints(X, np.zeros(3), np.zeros(3), K_NP, d)
    # OpenCV's default 5 fixed-point iterations do not converge at this distortion; give it 200 to compare.
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-16)
    ref = cv2.undistortPoints(px, K_NP, d, None, None, None, crit)[:, 0]  # OpenCV 5: criteria in undistortPoints
    ours = dist.undistort_points(torch.from_numpy(px[:, 0]), torch.from_numpy(K_NP), torch.from_numpy(d))
    assert np.abs(ours.numpy() - ref).max() < 1e-9
    truth = X[:, :2] / X[:, 2:]
    assert np.abs(ours.numpy() - truth).max() < 1e-12
    default = cv2.undistortPoints(px, K_NP, d)[:, 0]
    assert np.abs(default - truth).max() > np.abs(ours.numpy() - truth).max()  # ours is the more exact one
    again = dist.distort_points(dist.undistort_points(torch.from_numpy(px[:, 0]), torch.from_numpy(K_NP),
                                                      torch.from_numpy(d), new_intrinsics=torch.from_numpy(K_NP)),
                                torch.from_numpy(K_NP), torch.from_numpy(d))
    assert np.abs(again.numpy() - px[:, 0]).max() < 1e-9


def test_unproject_round_trip_and_in_front():
    X = torch.from_numpy(_points(20)).reshape(2, 10, 3)
    K = cam.intrinsics_matrix(torch.tensor([800.0, 600.0]), torch.tensor([780.0, 610.0]), 320.0, 240.0, skew=0.3)
    assert K.shape == (2, 3, 3) and K.dtype == torch.float32
    K = K.double()
    px = cam.project_points(X, K)
    assert torch.allclose(cam.unproject_points(px, X[..., 2], K), X, atol=1e-12)
    assert cam.in_front(X).all() and not cam.in_front(-X).any()
    P = cam.projection_matrix(K, make_pose(torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)))
    assert P.shape == (2, 3, 4)


def test_orthographic_hand_values_and_round_trip():
    K = cam.intrinsics_matrix(10.0, 20.0, 100.0, 50.0)
    X = torch.tensor([[1.0, 2.0, 5.0], [-1.0, 0.5, 100.0]], dtype=torch.float64)
    uv = cam.project_orthographic(X, K)
    assert uv.tolist() == [[110.0, 90.0], [90.0, 60.0]]  # u = 10 x + 100, v = 20 y + 50, independent of Z
    assert torch.equal(cam.unproject_orthographic(uv, X[:, 2], K), X)


def test_intrinsics_params_round_trip():
    K = cam.intrinsics_matrix(1.0, 2.0, 3.0, 4.0, 5.0)
    assert [p.item() for p in cam.intrinsics_params(K)] == [1, 2, 3, 4, 5]
    assert K.tolist() == [[1, 5, 3], [0, 2, 4], [0, 0, 1]]


def test_gradcheck_projection_and_undistortion():
    X = torch.from_numpy(_points(4)).requires_grad_(True)
    K = torch.from_numpy(K_NP).requires_grad_(True)
    d = torch.from_numpy(D5).requires_grad_(True)
    assert torch.autograd.gradcheck(cam.project_points, (X, K, d))
    px = cam.project_points(X, K, d).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, k, c: dist.undistort_points(p, k, c), (px, K, d))


def test_errors():
    with pytest.raises(ShapeError):
        cam.project_points(torch.zeros(5, 2), torch.eye(3))
    with pytest.raises(ValueError, match="4, 5 or 8"):
        dist.distort_normalized(torch.zeros(5, 2), torch.zeros(6))
    with pytest.raises(ValueError, match="iterations"):
        dist.undistort_normalized(torch.zeros(5, 2), torch.zeros(5), iterations=0)
    with pytest.raises(TypeError, match="floating"):
        cam.project_points(torch.zeros(5, 3, dtype=torch.int32), torch.eye(3))
    with pytest.raises(ShapeError):
        cam.unproject_points(torch.zeros(5, 2), torch.ones(5, 1), torch.eye(3))

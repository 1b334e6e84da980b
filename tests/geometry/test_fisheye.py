"""Kannala-Brandt fisheye model and undistortion maps against cv2.fisheye and cv2.initUndistortRectifyMap + remap,
on the shared chessboard images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from geo_helpers import data_dir

from torchworks.geometry.fisheye import (
    fisheye_distort_normalized,
    fisheye_project_points,
    fisheye_undistort_normalized,
    fisheye_undistort_points,
    remap,
    undistort_rectify_map,
)
from torchworks.geometry.rotations import axis_angle_to_matrix

K = torch.tensor([[400.0, 0, 320], [0, 410.0, 240], [0, 0, 1]], dtype=torch.float64)
D_FISH = torch.tensor([0.1, -0.05, 0.01, -0.002], dtype=torch.float64)


def test_fisheye_projection_and_undistortion_match_opencv():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 3, generator=g, dtype=torch.float64)
    x[:, 2] = x[:, 2].abs() + 0.5  # up to ~80 deg off axis
    ours = fisheye_project_points(x, K, D_FISH)
    ref = cv2.fisheye.projectPoints(x.numpy()[None], np.zeros(3), np.zeros(3), K.numpy(), D_FISH.numpy())[0][0]
    assert np.abs(ours.numpy() - ref).max() < 1e-9
    und = fisheye_undistort_points(ours, K, D_FISH, K)
    ref_u = cv2.fisheye.undistortPoints(ours.numpy()[None], K.numpy(), D_FISH.numpy(), P=K.numpy())[0]
    assert np.abs(und.numpy() - ref_u).max() < 1e-8
    truth = (x[:, :2] / x[:, 2:]) * K.diagonal()[:2] + K[:2, 2]
    assert (und - truth).abs().max() < 1e-8  # exact inverse (OpenCV's too, to its 10 iterations)
    centre = torch.zeros(1, 2, dtype=torch.float64)  # the optical axis is a fixed point of both directions
    assert torch.equal(fisheye_distort_normalized(centre, D_FISH), centre)
    assert torch.equal(fisheye_undistort_normalized(centre, D_FISH), centre)


@pytest.mark.parametrize("model", ["fisheye", "radtan"])
def test_undistort_rectify_maps_match_opencv(model):
    new_k = K.clone()
    new_k[0, 0] = new_k[1, 1] = 300.0
    rot = axis_angle_to_matrix(torch.tensor([0.02, -0.03, 0.01], dtype=torch.float64))
    if model == "fisheye":
        dist = D_FISH
        mx, my = cv2.fisheye.initUndistortRectifyMap(K.numpy(), dist.numpy(), rot.numpy(), new_k.numpy(), (640, 480),
                                                     cv2.CV_32FC1)
    else:
        dist = torch.tensor([-0.2, 0.05, 0.001, -0.002, 0.01], dtype=torch.float64)
        mx, my = cv2.initUndistortRectifyMap(K.numpy(), dist.numpy(), rot.numpy(), new_k.numpy(), (640, 480),
                                             cv2.CV_32FC1)
    ours = undistort_rectify_map(K, dist, new_k, 480, 640, rotation=rot, model=model)
    assert ours.shape == (480, 640, 2)
    # OpenCV's maps are float32: ~3e-5 px of rounding at 640 px.
    assert np.abs(ours[..., 0].numpy() - mx).max() < 1e-4 and np.abs(ours[..., 1].numpy() - my).max() < 1e-4


def test_remap_real_chessboard_like_opencv():
    base = data_dir("opencv_samples_geometry") / "chessboard_stereo"
    img = cv2.imread(str(base / "left01.jpg"), cv2.IMREAD_GRAYSCALE)
    # The left camera's calibration from the shared data (OpenCV's own calibrateCamera on these views).
    fs = cv2.FileStorage(str(base / "left_intrinsics.yml"), cv2.FILE_STORAGE_READ)
    k = torch.from_numpy(fs.getNode("camera_matrix").mat())
    dist = torch.from_numpy(fs.getNode("distortion_coefficients").mat().ravel())
    new_k = k.clone()
    mx, my = cv2.initUndistortRectifyMap(k.numpy(), dist.numpy(), None, new_k.numpy(), img.shape[::-1],
                                         cv2.CV_32FC1)
    ref = cv2.remap(img, mx, my, cv2.INTER_LINEAR).astype(np.float64)
    ours = remap(torch.from_numpy(img).double()[None, None],
                 undistort_rectify_map(k, dist, new_k, *img.shape))[0, 0].numpy()
    # OpenCV interpolates with 5-bit fixed-point weights and rounds to uint8: measured mean 0.16, max < 1 level.
    diff = np.abs(ours - ref)
    assert diff.mean() < 0.3 and diff.max() < 1.0


def test_remap_is_differentiable_and_checks_inputs():
    img = torch.rand(1, 1, 8, 9, dtype=torch.float64, requires_grad=True)
    grid = torch.stack(torch.meshgrid(torch.arange(8.0), torch.arange(9.0), indexing="ij")[::-1], -1).double()
    same = remap(img, grid)  # the identity map returns the image
    assert torch.allclose(same, img)
    assert torch.autograd.gradcheck(lambda i: remap(i, grid + 0.3), (img,))
    with pytest.raises(ValueError, match="model"):
        undistort_rectify_map(K, None, K, 4, 4, model="equidistant")
    with pytest.raises(ValueError, match="4 coefficients"):
        fisheye_distort_normalized(torch.zeros(3, 2, dtype=torch.float64), torch.zeros(5, dtype=torch.float64))

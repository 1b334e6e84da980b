"""Stereo: rectification vs cv2.stereoRectify / initUndistortRectifyMap, disparity <-> depth, Middlebury GT."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from geo_helpers import data_dir

from torchworks.core.errors import ShapeError
from torchworks.geometry import stereo as st
from torchworks.geometry.camera import project_points
from torchworks.geometry.rotations import axis_angle_to_matrix

K1 = np.array([[530.0, 0, 320], [0, 532, 240], [0, 0, 1]])
K2 = np.array([[535.0, 0, 318], [0, 533, 243], [0, 0, 1]])
D = np.array([[0.05, -0.1, 0.001, 0.0005, 0.0]])


def _pair():
    R = axis_angle_to_matrix(torch.tensor([0.01, -0.03, 0.02], dtype=torch.float64))
    t = torch.tensor([-0.1, 0.003, 0.002], dtype=torch.float64)
    return R, t


def test_rectification_matches_opencv():
    R, t = _pair()
    R1, R2, P1, P2, Q, _, _ = cv2.stereoRectify(K1, D, K2, D, (640, 480), R.numpy(), t.numpy()[:, None], alpha=-1)
    r = st.rectify_stereo(torch.from_numpy(K1), torch.from_numpy(K2), R, t, new_intrinsics=torch.from_numpy(P1[:, :3]))
    assert np.abs(r.rotation1.numpy() - R1).max() < 1e-12 and np.abs(r.rotation2.numpy() - R2).max() < 1e-12
    assert np.abs(r.projection2.numpy() - P2).max() < 1e-9 and np.abs(r.q.numpy() - Q).max() < 1e-9
    mx, my = cv2.initUndistortRectifyMap(K1, D, R1, P1, (640, 480), cv2.CV_32FC1)
    ours = st.rectification_map(torch.from_numpy(K1), torch.from_numpy(D[0]), r.rotation1, r.intrinsics, 480, 640)
    assert np.abs(ours[..., 0].numpy() - mx).max() < 1e-3 and np.abs(ours[..., 1].numpy() - my).max() < 1e-3


def test_rectified_points_share_rows_and_give_depth():
    R, t = _pair()
    r = st.rectify_stereo(torch.from_numpy(K1), torch.from_numpy(K2), R, t)
    X = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + torch.tensor(
        [0, 0, 5.0], dtype=torch.float64)
    x1 = project_points(X @ r.rotation1.T, r.intrinsics)
    x2 = project_points((X @ R.T + t) @ r.rotation2.T, r.intrinsics)
    assert (x1[:, 1] - x2[:, 1]).abs().max() < 1e-10  # epipolar lines are image rows
    disp = x1[:, 0] - x2[:, 0]
    assert (disp > 0).all()
    z = st.disparity_to_depth(disp, r.intrinsics[1, 1], t.norm())
    assert torch.allclose(z, (X @ r.rotation1.T)[:, 2], atol=1e-10)
    assert torch.allclose(st.depth_to_disparity(z, r.intrinsics[1, 1], t.norm()), disp, atol=1e-10)


def test_disparity_depth_hand_values():
    d = torch.tensor([10.0, 0.0, -1.0])
    z = st.disparity_to_depth(d, 500.0, 0.2)
    assert z[0].item() == pytest.approx(10.0) and torch.isinf(z[1:]).all()  # Z = f B / d = 500 * 0.2 / 10


def _read(path, flags=cv2.IMREAD_GRAYSCALE):
    im = cv2.imread(str(path), flags)
    if im is None:
        pytest.skip(f"cannot read {path}")
    return im


@pytest.mark.parametrize(("folder", "left", "right", "gt", "scale"), [
    ("middlebury_stereo/cones_2003", "im2.png", "im6.png", "disp2.png", 4.0),
    ("opencv_samples_geometry/aloe_stereo", "aloeL.jpg", "aloeR.jpg", "aloeGT.png", 1.0)])
def test_ground_truth_disparity_point_cloud_reprojects_onto_right_image(folder, left, right, gt, scale):
    base = data_dir(folder.split("/")[0]) / folder.split("/")[1]
    iml, imr = _read(base / left).astype(np.float32), _read(base / right).astype(np.float32)
    disp = torch.from_numpy(_read(base / gt, cv2.IMREAD_UNCHANGED).astype(np.float64) / scale)
    h, w = disp.shape
    # The pairs are rectified but publish no calibration: any f, B give the same pixels back.
    K = torch.tensor([[1000.0, 0, w / 2], [0, 1000.0, h / 2], [0, 0, 1]], dtype=torch.float64)
    r = st.rectify_stereo(K, K, torch.eye(3, dtype=torch.float64), torch.tensor([-0.16, 0, 0], dtype=torch.float64))
    pts = st.disparity_to_points(disp, r.q)  # (H, W, 3)
    ref = cv2.reprojectImageTo3D(disp.numpy().astype(np.float32), r.q.numpy())
    valid = disp > 0
    assert np.abs(pts[valid].numpy() - ref[valid.numpy()]).max() < 1e-3 * np.abs(ref[valid.numpy()]).max()
    proj = pts[valid] @ r.projection2[:, :3].T + r.projection2[:, 3]
    uv = proj[:, :2] / proj[:, 2:]
    v, u = torch.nonzero(valid, as_tuple=True)
    assert (uv[:, 0] - (u - disp[valid])).abs().max() < 1e-9 and (uv[:, 1] - v).abs().max() < 1e-9
    # Photometric check on the real images: sampling the right image at the GT correspondences reproduces the left.
    mx = np.full((h, w), -1.0, np.float32)
    mx[valid.numpy()] = uv[:, 0].numpy()
    warped = cv2.remap(imr, mx, np.tile(np.arange(h, dtype=np.float32)[:, None], (1, w)), cv2.INTER_LINEAR)
    m = valid.numpy() & (mx >= 0)
    err_gt = np.median(np.abs(warped[m] - iml[m]))
    err_zero = np.median(np.abs(imr[m] - iml[m]))
    assert err_gt < 0.3 * err_zero, (err_gt, err_zero)


def test_gradcheck_rectification_and_points():
    R, t = _pair()
    t = t.clone().requires_grad_(True)
    k = torch.from_numpy(K1)
    assert torch.autograd.gradcheck(lambda tt: st.rectify_stereo(k, k, R, tt).rotation1, (t,))
    d = (torch.rand(3, 4, dtype=torch.float64) * 20 + 1).requires_grad_(True)
    q = st.rectify_stereo(k, k, R, t.detach()).q
    assert torch.autograd.gradcheck(lambda x: st.disparity_to_points(x, q), (d,))


def test_errors():
    with pytest.raises(ShapeError):
        st.rectify_stereo(torch.eye(3), torch.eye(3), torch.eye(3), torch.zeros(2))

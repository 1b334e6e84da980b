"""Calibration (Zhang + LM) vs cv2.calibrateCamera on synthetic and real chessboards; two-view on the temple ring."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from geo_helpers import data_dir

from torchworks.core.errors import ShapeError
from torchworks.geometry import calibration as cal
from torchworks.geometry.camera import intrinsics_matrix, world_to_pixels
from torchworks.geometry.essential import recover_pose
from torchworks.geometry.ransac import ransac
from torchworks.geometry.rotations import axis_angle_to_matrix, geodesic_angle
from torchworks.geometry.se3 import make_pose

BOARD = np.zeros((54, 3))
BOARD[:, :2] = np.mgrid[0:9, 0:6].T.reshape(-1, 2) * 0.025


def _synthetic_views(k, dist, n_views=8, noise=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    obj = torch.from_numpy(BOARD)
    poses = []
    for _ in range(n_views):
        r = axis_angle_to_matrix((torch.rand(3, generator=g, dtype=torch.float64) - 0.5) * 0.8)
        t = torch.tensor([-0.1, -0.06, 0.45], dtype=torch.float64) + 0.05 * torch.randn(3, generator=g,
                                                                                         dtype=torch.float64)
        poses.append(make_pose(r, t))
    pix = world_to_pixels(obj, k, torch.stack(poses), dist)
    return obj, pix + noise * torch.randn(pix.shape, generator=g, dtype=torch.float64)


def test_synthetic_recovers_truth_and_matches_opencv():
    k = intrinsics_matrix(540.0, 545.0, 330.0, 238.0)
    dist = torch.tensor([-0.25, 0.08, 0.001, -0.0005, -0.01], dtype=torch.float64)
    obj, pix = _synthetic_views(k, dist)
    r = cal.calibrate_camera(obj, pix)
    assert r.rms < 1e-6 and (r.intrinsics - k).abs().max() < 1e-4 and (r.distortion - dist).abs().max() < 1e-5
    obj, pix = _synthetic_views(k, dist, noise=0.3, seed=1)
    r = cal.calibrate_camera(obj, pix)
    rms, K, D, _, _ = cv2.calibrateCamera([BOARD.astype(np.float32)] * pix.shape[0],
                                          [p.numpy().astype(np.float32) for p in pix], (640, 480), None, None)
    assert r.rms <= rms + 1e-4  # same model and cost; OpenCV works on float32 points
    assert abs(r.intrinsics[0, 0].item() / K[0, 0] - 1) < 1e-4 and abs(r.intrinsics[1, 1].item() / K[1, 1] - 1) < 1e-4


def test_zhang_closed_form_exact_without_distortion():
    k = intrinsics_matrix(800.0, 780.0, 320.0, 240.0)
    obj, pix = _synthetic_views(k, None, n_views=4)
    from torchworks.geometry.homography import find_homography

    hs = find_homography(obj[None, :, :2].expand(4, -1, -1), pix)
    assert (cal.intrinsics_from_homographies(hs) - k).abs().max() < 1e-6
    rot, t = cal.extrinsics_from_homography(k, hs)
    assert (world_to_pixels(obj, k, make_pose(rot, t)) - pix).abs().max() < 1e-6


def _corners(paths):
    found = []
    for p in paths:
        gray = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        ok, c = cv2.findChessboardCorners(gray, (9, 6))
        if ok:
            c = cv2.cornerSubPix(gray, c.reshape(-1, 1, 2), (11, 11), (-1, -1),
                                 (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-3))
            found.append(c.reshape(-1, 2).astype(np.float64))
    return np.stack(found)


def test_real_chessboards_within_one_percent_of_opencv():
    base = data_dir("opencv_samples_geometry") / "chessboard_stereo"
    pix = _corners(sorted(base.glob("left*.jpg")))
    assert pix.shape == (13, 54, 2)
    rms, K, D, _, _ = cv2.calibrateCamera([BOARD.astype(np.float32)] * len(pix), [p.astype(np.float32) for p in pix],
                                          (640, 480), None, None)
    r = cal.calibrate_camera(torch.from_numpy(BOARD), torch.from_numpy(pix))
    # Measured: fx, fy agree to ~4e-8 relative and the RMS to 1e-7 px (0.4087 px).
    assert abs(r.intrinsics[0, 0].item() / K[0, 0] - 1) < 1e-2 and abs(r.intrinsics[1, 1].item() / K[1, 1] - 1) < 1e-2
    assert abs(r.intrinsics[0, 0].item() / K[0, 0] - 1) < 1e-5
    assert r.rms == pytest.approx(rms, abs=1e-4)


def _temple(i):
    base = data_dir("multiview_temple_sparse_ring")
    for line in (base / "templeSR_par.txt").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[0] == f"templeSR{i:04d}.png":
            v = torch.tensor([float(x) for x in parts[1:]], dtype=torch.float64)
            return base / parts[0], v[:9].reshape(3, 3), v[9:18].reshape(3, 3), v[18:]
    raise AssertionError(i)


@pytest.mark.parametrize(("a", "b"), [(1, 2), (10, 11)])
def test_temple_two_view_recovers_relative_rotation_within_one_degree(a, b):
    (pa, K, Ra, ta), (pb, _, Rb, tb) = _temple(a), _temple(b)
    sift = cv2.SIFT_create(contrastThreshold=0.01)  # more, weaker features: the temple is poorly textured
    ka, da = sift.detectAndCompute(cv2.imread(str(pa), cv2.IMREAD_GRAYSCALE), None)
    kb, db = sift.detectAndCompute(cv2.imread(str(pb), cv2.IMREAD_GRAYSCALE), None)
    matches = [m for m, n in cv2.BFMatcher().knnMatch(da, db, k=2) if m.distance < 0.8 * n.distance]
    x1 = torch.tensor([ka[m.queryIdx].pt for m in matches], dtype=torch.float64)
    x2 = torch.tensor([kb[m.trainIdx].pt for m in matches], dtype=torch.float64)
    r = ransac(x1, x2, "essential", threshold=1.0, intrinsics1=K, intrinsics2=K, seed=0)
    assert not r.degenerate and r.num_inliers > 100
    R_gt = Rb @ Ra.T
    t_gt = tb - R_gt @ ta
    # Measured: 0.40 deg (1-2) and 0.31 deg (10-11); OpenCV findEssentialMat(MAGSAC) + recoverPose: 0.12, 0.31.
    assert math.degrees(geodesic_angle(r.rotation, R_gt).item()) < 1.0
    assert math.degrees(math.acos(min(1.0, float(r.translation @ t_gt / t_gt.norm())))) < 5.0
    # recover_pose on the returned E picks the same pose.
    R, t, _ = recover_pose(r.model, x1[r.inliers], x2[r.inliers], K, K)
    assert geodesic_angle(R, r.rotation).item() < 1e-6


def test_errors():
    with pytest.raises(ShapeError, match="V >= 2"):
        cal.calibrate_camera(torch.from_numpy(BOARD), torch.zeros(1, 54, 2))
    with pytest.raises(ValueError, match="image_size"):
        cal.calibrate_camera(torch.from_numpy(BOARD), torch.zeros(2, 54, 2))
    with pytest.raises(ValueError, match="Z = 0"):
        cal.calibrate_camera(torch.from_numpy(BOARD) + 1, torch.zeros(3, 54, 2))
    with pytest.raises(ShapeError):
        cal.calibrate_camera(torch.zeros(50, 3), torch.zeros(3, 54, 2))


def test_two_views_match_opencv():
    # Issue 23: calibration refused two views. With two, the principal point starts at the image centre (as in
    # OpenCV's initialisation) and the same LM follows; synthetic and real boards land on OpenCV's optimum.
    k = intrinsics_matrix(540.0, 545.0, 330.0, 238.0)
    dist = torch.tensor([-0.25, 0.08, 0.001, -0.0005, -0.01], dtype=torch.float64)
    obj, pix = _synthetic_views(k, dist, n_views=2, noise=0.2, seed=3)
    base = data_dir("opencv_samples_geometry") / "chessboard_stereo"
    real = torch.from_numpy(_corners(sorted(base.glob("left0[12].jpg"))))
    for points in (pix, real):
        r = cal.calibrate_camera(obj, points, image_size=(480, 640))
        rms, K, D, _, _ = cv2.calibrateCamera([BOARD.astype(np.float32)] * 2,
                                              [p.numpy().astype(np.float32) for p in points], (640, 480), None, None)
        assert r.rotations.shape == (2, 3, 3) and r.rms <= rms + 1e-4
        assert np.allclose(r.intrinsics.numpy(), K, rtol=1e-3)


def test_calibration_speed_against_opencv():
    # Issue 23 goal: within 2x OpenCV's CPU time (benchmarks/geometry/bench_calibration.py measures it; ~0.75x
    # here). A loose 3x bound keeps the test stable on a loaded machine.
    import time

    base = data_dir("opencv_samples_geometry") / "chessboard_stereo"
    pix = _corners(sorted(base.glob("left*.jpg")))
    obj32, img32 = [BOARD.astype(np.float32)] * len(pix), [p.astype(np.float32) for p in pix]

    def cpu(fn):
        times = []
        for _ in range(5):
            c = time.process_time()
            fn()
            times.append(time.process_time() - c)
        return sorted(times)[2]

    ours = cpu(lambda: cal.calibrate_camera(torch.from_numpy(BOARD), torch.from_numpy(pix)))
    ref = cpu(lambda: cv2.calibrateCamera(obj32, img32, (640, 480), None, None))
    assert ours < 3 * ref

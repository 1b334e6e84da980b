"""The shared projection with analytic Jacobians (calibration, PnP, bundle adjustment) against OpenCV and finite
differences."""

from __future__ import annotations

import cv2
import numpy as np

from torchworks.geometry._reprojection import project, rodrigues


def _setup(seed=0):
    rng = np.random.default_rng(seed)
    intr = np.array([700.0, 710.0, 320.0, 240.0, -0.2, 0.05, 0.001, -0.002, 0.01])
    rot = rodrigues(rng.normal(size=3) * 0.3)
    t = np.array([0.1, -0.2, 4.0])
    pts = rng.uniform(-1, 1, size=(20, 3))
    return intr, rot, t, pts


def test_projection_matches_opencv():
    intr, rot, t, pts = _setup()
    uv, z = project(intr, rot, t, pts)
    k = np.array([[intr[0], 0, intr[2]], [0, intr[1], intr[3]], [0, 0, 1]])
    ref = cv2.projectPoints(pts, cv2.Rodrigues(rot)[0], t, k, intr[4:])[0][:, 0]
    assert np.abs(uv - ref).max() < 1e-9 and np.allclose(z, (pts @ rot.T + t)[:, 2])


def test_jacobians_match_central_differences():
    intr, rot, t, pts = _setup(1)
    uv, _, j_intr, j_pose, j_pts = project(intr, rot, t, pts, True, True, True)
    h = 1e-6
    num_intr = np.stack([(project(intr + h * e, rot, t, pts)[0] - project(intr - h * e, rot, t, pts)[0]) / (2 * h)
                         for e in np.eye(9)], -1)
    num_pose = np.stack([(project(intr, rodrigues(h * e[:3]) @ rot, t + h * e[3:], pts)[0]
                          - project(intr, rodrigues(-h * e[:3]) @ rot, t - h * e[3:], pts)[0]) / (2 * h)
                         for e in np.eye(6)], -1)
    num_pts = np.stack([(project(intr, rot, t, pts + h * e)[0] - project(intr, rot, t, pts - h * e)[0]) / (2 * h)
                        for e in np.eye(3)], -1)
    for ana, num in ((j_intr, num_intr), (j_pose, num_pose), (j_pts, num_pts)):
        assert np.abs(ana - num).max() < 1e-6 * max(1.0, np.abs(ana).max())

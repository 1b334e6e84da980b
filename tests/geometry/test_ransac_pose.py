"""Robust E's relative pose (ransac/pose.py): cheirality without triangulation, the Tukey refinement on the scenes
where a Huber-only refinement bent the translation, and accuracy against OpenCV's USAC_MAGSAC on benchmark scenes."""

from __future__ import annotations

import math
import statistics

import cv2
import numpy as np
import pytest
import torch

from torchworks.geometry.ransac import ransac
from torchworks.geometry.ransac.hypotheses import _iterations_needed
from torchworks.geometry.ransac.pose import _in_front
from torchworks.geometry.rotations import axis_angle_to_matrix, geodesic_angle
from torchworks.geometry.synthetic import two_view_scene


def _errors_deg(rot, trans, scene) -> tuple[float, float]:
    t = torch.as_tensor(trans, dtype=torch.float64).reshape(3)
    cos = float(t @ scene["t"] / (t.norm() * scene["t"].norm()))
    return (math.degrees(float(geodesic_angle(torch.as_tensor(rot, dtype=torch.float64), scene["R"]))),
            math.degrees(math.acos(max(-1.0, min(1.0, cos)))))


def test_in_front_is_the_sign_of_both_depths():
    # Exact correspondences of points at known depths, a third of them behind camera 1 or camera 2.
    g = torch.Generator().manual_seed(0)
    rot = axis_angle_to_matrix(torch.tensor([0.1, -0.2, 0.05], dtype=torch.float64)).numpy()
    trans = np.array([0.3, -0.1, 0.05])
    x1 = torch.randn(300, 3, generator=g, dtype=torch.float64).numpy()
    x1[:, 2] = np.where(np.arange(300) % 3 == 0, -1.0, 1.0) * (1 + 4 * np.abs(x1[:, 2]))
    x2 = x1 @ rot.T + trans
    n1, n2 = x1 / x1[:, 2:], x2 / x2[:, 2:]
    design = np.concatenate([np.zeros((300, 9)), n1, n2], 1)
    expected = (x1[:, 2] > 0) & (x2[:, 2] > 0)
    assert 50 < expected.sum() < 250
    assert np.array_equal(_in_front(design, rot, trans), expected)
    assert not _in_front(design, rot, -trans)[expected].any()  # -t puts every point in front behind


# Scenes of bench_robust.py where the estimate used to fail: 2169 and 2117 (forward-ish motion) had translation
# errors of 1.23 and 1.93 deg with the Huber refinement alone (a few outliers near their epipolar lines bent t;
# OpenCV MAGSAC 0.15 and 0.10); 2127 (f = 1460 px) ended 8 deg / 168 deg off when the Huber passes were cut short,
# and at 0.25 px noise 8 deg / 160 deg off when LM stopped on a small cost decrease while still zigzagging down
# a narrow valley; at 1 px noise it ended 7.9 deg / 159 deg off when LO used the final refinement's narrower cost.
# The median over four RANSAC seeds: 2117's translation error moves between 0.84 and 1.58 deg with the seed (local
# minima a few MSAC units apart), with this code and the one before.
@pytest.mark.parametrize(("seed", "noise", "max_rot", "max_trans"),
                         [(2169, 0.5, 0.1, 0.5), (2117, 0.5, 0.2, 1.2), (2127, 0.5, 1.0, 1.0), (2127, 0.25, 0.5, 0.5),
                          (2127, 1.0, 1.5, 2.0)])
def test_weakly_determined_scenes_keep_their_translation(seed, noise, max_rot, max_trans):
    s = two_view_scene("general", n=1000, noise=noise, outliers=0.3, seed=seed)
    errs = [_errors_deg(r.rotation, r.translation, s) for r in
            (ransac(s["x1"], s["x2"], "essential", intrinsics1=s["K"], intrinsics2=s["K"], seed=k) for k in range(4))]
    rot_err, trans_err = statistics.median(e[0] for e in errs), statistics.median(e[1] for e in errs)
    assert rot_err < max_rot and trans_err < max_trans, errs


def test_stopping_counts_the_robust_set_not_the_hard_inliers():
    # At 1 px noise and a 1 px threshold the hard inliers are ~65 % of the true ones (455 of 700 here), and the
    # bound on them asks for 325 five-point samples; the robust set (errors within 3 sigma, at most 2 px) holds the
    # true inliers, so the first round of 64 suffices, and the pose is as accurate.
    s = two_view_scene("general", n=1000, noise=1.0, outliers=0.3, seed=2001)
    r = ransac(s["x1"], s["x2"], "essential", intrinsics1=s["K"], intrinsics2=s["K"])
    assert _iterations_needed(r.num_inliers / 1000, 5, 0.999) > 250
    assert r.iterations <= 96
    rot_err, trans_err = _errors_deg(r.rotation, r.translation, s)
    assert rot_err < 0.3 and trans_err < 1.5, (rot_err, trans_err)
    # It does not stop before the standard bound of the true inlier share: at 50 % outliers that is 218 samples.
    s = two_view_scene("general", n=1000, noise=0.5, outliers=0.5, seed=2001)
    r = ransac(s["x1"], s["x2"], "essential", intrinsics1=s["K"], intrinsics2=s["K"])
    assert _iterations_needed(0.5, 5, 0.999) == 218
    assert 190 <= r.iterations <= 300
    rot_err, trans_err = _errors_deg(r.rotation, r.translation, s)
    assert rot_err < 0.2 and trans_err < 1.0, (rot_err, trans_err)


def test_as_accurate_as_opencv_magsac_on_benchmark_scenes():
    # The first 40 scenes of benchmarks/geometry/bench_robust.py (the bench runs 300): median rotation error 0.057
    # deg for ours against 0.065 for MAGSAC, 95th percentile of the translation error 0.50 against 1.10 deg.
    ours, magsac = [], []
    for i in range(40):
        s = two_view_scene("general", n=1000, noise=0.5, outliers=0.3, seed=2000 + i)
        r = ransac(s["x1"], s["x2"], "essential", intrinsics1=s["K"], intrinsics2=s["K"])
        ours.append(_errors_deg(r.rotation, r.translation, s))
        a1, a2, k = s["x1"].numpy(), s["x2"].numpy(), s["K"].numpy()
        e, mask = cv2.findEssentialMat(a1, a2, k, cv2.USAC_MAGSAC, 0.999, 1.0)
        _, rot, t, _ = cv2.recoverPose(e[:3], a1, a2, k, mask=mask.copy())
        magsac.append(_errors_deg(rot, t, s))

    def p95(v):
        return sorted(v)[37]

    assert statistics.median(e[0] for e in ours) <= statistics.median(e[0] for e in magsac)
    assert p95([e[0] for e in ours]) <= p95([e[0] for e in magsac])
    assert p95([e[1] for e in ours]) <= p95([e[1] for e in magsac])
    assert max(e[1] for e in ours) <= max(e[1] for e in magsac)
    assert all(r < 1 and t < 5 for r, t in ours)

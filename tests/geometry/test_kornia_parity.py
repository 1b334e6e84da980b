"""Live parity with kornia (the [dev] extra) on the operations both libraries offer, in float64.

Tolerances: where both sides evaluate the same closed form (Rodrigues, quaternions, projection, distortion, E from
F) they differ only by rounding, so the bounds are a few hundred ulps of the values involved (1e-13 on O(1)
rotations, 1e-10 on O(1e3) pixels). Where both solve the same least-squares problem by different factorizations
(DLT for H and F, triangulation, 5-point) the bound is set by the problem's conditioning, stated at each test.
"""

from __future__ import annotations

import math

import pytest
import torch
from geo_helpers import random_rotations, two_view_scene

kornia = pytest.importorskip("kornia", reason="kornia (a [dev] extra) is not installed: kornia parity skipped")
from kornia.geometry import calibration as kcal  # noqa: E402
from kornia.geometry import camera as kcam  # noqa: E402
from kornia.geometry import conversions as kconv  # noqa: E402
from kornia.geometry import epipolar as kepi  # noqa: E402
from kornia.geometry import homography as khom  # noqa: E402

from torchworks.geometry import (  # noqa: E402
    axis_angle_to_matrix,
    distort_points,
    find_fundamental,
    find_homography,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    project_points,
    quaternion_to_matrix,
    recover_pose,
    triangulate_dlt,
    undistort_points,
)
from torchworks.geometry.camera import projection_matrix  # noqa: E402
from torchworks.geometry.epipolar import essential_from_fundamental  # noqa: E402
from torchworks.geometry.essential import essential_from_pose  # noqa: E402
from torchworks.geometry.five_point import solve_5point_normalized  # noqa: E402
from torchworks.geometry.se3 import make_pose  # noqa: E402

D = torch.float64


def _scale_sign(ref: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x rescaled to ref's Frobenius norm and sign, (..., 3, 3)."""
    x = x * (ref.norm(dim=(-1, -2), keepdim=True) / x.norm(dim=(-1, -2), keepdim=True))
    return x * torch.where((ref * x).sum((-1, -2), keepdim=True) < 0, -1.0, 1.0).to(x.dtype)


def test_rotation_conversions_match_kornia():
    g = torch.Generator().manual_seed(0)
    axis = torch.nn.functional.normalize(torch.randn(2000, 3, generator=g, dtype=D), dim=-1)
    # Angles away from pi, where axis-angle is two-valued (v and -v) and the libraries may pick either.
    vec = axis * torch.rand(2000, 1, generator=g, dtype=D) * (math.pi - 1e-3)
    mats = axis_angle_to_matrix(vec)
    assert (mats - kconv.axis_angle_to_rotation_matrix(vec)).abs().max().item() < 1e-13
    assert (matrix_to_axis_angle(mats) - kconv.rotation_matrix_to_axis_angle(mats)).abs().max().item() < 1e-12
    q = matrix_to_quaternion(mats, order="wxyz")
    qk = kconv.rotation_matrix_to_quaternion(mats)
    qk = qk * torch.where(qk[:, :1] < 0, -1.0, 1.0).to(D)  # kornia leaves the sign free; ours has w >= 0
    assert (q - qk).abs().max().item() < 1e-13
    rots = random_rotations(500, seed=3)
    qr = matrix_to_quaternion(rots, order="wxyz")
    assert (quaternion_to_matrix(qr, order="wxyz") - kconv.quaternion_to_rotation_matrix(qr)).abs().max() < 1e-14
    # Our explicit xyzw order equals kornia's (wxyz-only) quaternion reordered.
    assert torch.equal(matrix_to_quaternion(rots, order="xyzw"), qr[:, [1, 2, 3, 0]])


def test_projection_and_distortion_match_kornia():
    g = torch.Generator().manual_seed(1)
    K = torch.tensor([[800.0, 0, 320], [0, 780, 240], [0, 0, 1]], dtype=D)
    X = torch.cat([(torch.rand(500, 2, generator=g, dtype=D) - 0.5) * 4, 4 + 6 * torch.rand(500, 1, generator=g,
                                                                                          dtype=D)], -1)
    assert (project_points(X, K) - kcam.project_points(X, K)).abs().max().item() < 1e-10  # pixels ~ 1e3
    dist = torch.tensor([-0.25, 0.08, 0.001, -0.0005, -0.01], dtype=D)
    und = torch.rand(500, 2, generator=g, dtype=D) * torch.tensor([640.0, 480.0], dtype=D)
    dp = distort_points(und, K, dist)
    assert (dp - kcal.distort_points(und, K, dist)).abs().max().item() < 1e-10
    # Undistortion is iterative on both sides: kornia's fixed-point iteration with 20 steps and our Newton steps
    # both reach the exact inverse (measured 2e-13 px), kornia's default 5 steps only ~4e-4 px.
    ours = undistort_points(dp, K, dist, K)
    kor = kcal.undistort_points(dp, K, dist, num_iters=20)
    assert (ours - kor).abs().max().item() < 1e-9 and (ours - und).abs().max().item() < 1e-9


def test_homography_and_fundamental_dlt_match_kornia():
    s = two_view_scene(100, noise=0.5, seed=4)
    # Same normalized algebraic least squares; kornia's SVD solver and our QR + SVD differ by rounding amplified by
    # the condition number of the 8/9-column design (measured 1e-12 for H with H22 = 1, 3e-16 for unit-norm F).
    p = two_view_scene(100, noise=0.5, seed=4, planar=True)
    h = find_homography(p["x1"], p["x2"])
    hk = khom.find_homography_dlt(p["x1"][None], p["x2"][None], solver="svd")[0]
    assert (h - hk / hk[2, 2]).abs().max().item() < 1e-10
    f = find_fundamental(s["x1"], s["x2"])
    fk = kepi.find_fundamental(s["x1"][None], s["x2"][None], method="8POINT")[0]
    assert (f - _scale_sign(f, fk)).abs().max().item() < 1e-13
    e = essential_from_fundamental(f, s["K"], s["K"])
    assert (e - kepi.essential_from_fundamental(f, s["K"], s["K"])).abs().max().item() < 1e-9 * e.abs().max()


def test_triangulation_and_recover_pose_match_kornia():
    s = two_view_scene(200, noise=0.5, seed=6)
    K = s["K"]
    eye = make_pose(torch.eye(3, dtype=D), torch.zeros(3, dtype=D))
    P = torch.stack([projection_matrix(K, eye), projection_matrix(K, make_pose(s["R"], s["t"]))])
    ours = triangulate_dlt(P, torch.stack([s["x1"], s["x2"]]), "svd")
    kor = kepi.triangulate_points(P[0], P[1], s["x1"], s["x2"], solver="svd")
    # Both take the smallest right singular vector of the same 4x4 system per point: rounding only.
    assert (ours - kor).abs().max().item() < 1e-10 * kor.abs().max().item()
    E = essential_from_pose(s["R"], s["t"])
    R, t, mask = recover_pose(E, s["x1"], s["x2"], K, K)
    rk, tk, _, count = kepi.motion_from_essential_choose_solution(E, K, K, s["x1"], s["x2"])
    assert (R - rk).abs().max().item() < 1e-12 and (t - tk.reshape(3)).abs().max().item() < 1e-12
    assert int(mask.sum()) == int(count)


def test_five_point_solutions_match_kornia_find_essential():
    s = [two_view_scene(5, seed=i) for i in range(20)]
    ki = torch.linalg.inv(s[0]["K"])
    n1 = torch.stack([x["x1"] for x in s]) @ ki[:2, :2].T + ki[:2, 2]
    n2 = torch.stack([x["x2"] for x in s]) @ ki[:2, :2].T + ki[:2, 2]
    ours, valid = solve_5point_normalized(n1, n2)
    kor = kepi.find_essential(n1, n2)  # (B, 10, 3, 3), NaN slots for complex roots
    kvalid = torch.isfinite(kor).flatten(-2).all(-1)
    for b in range(20):
        a, k = ours[b][valid[b]], kor[b][kvalid[b]]
        k = k / k.norm(dim=(-1, -2), keepdim=True)
        a = a / a.norm(dim=(-1, -2), keepdim=True)
        # Same number of real solutions, and every kornia solution is one of ours up to sign. 1e-8: kornia roots
        # a degree-10 polynomial (measured 1.5e-10 here, up to ~1e-8 on ill-conditioned samples), ours an action
        # matrix polished by Gauss-Newton (~1e-14).
        assert a.shape[0] == k.shape[0], b
        d = torch.minimum((a[:, None] - k[None]).abs().amax((-1, -2)), (a[:, None] + k[None]).abs().amax((-1, -2)))
        assert d.amin(0).max().item() < 1e-8, b

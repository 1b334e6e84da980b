"""Rotations: round trips over the whole range (hypothesis hits 0, 1e-8, pi - 1e-9, pi), OpenCV parity, gradients."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from geo_helpers import random_rotations
from hypothesis import given, settings
from hypothesis import strategies as st

from torchworks.core.errors import ShapeError
from torchworks.geometry import rotations as rot
from torchworks.geometry.conventions import convert_pose
from torchworks.geometry.essential import essential_from_pose
from torchworks.geometry.homography import homography_from_rotation
from torchworks.geometry.rotations import geodesic_angle, matrix_to_axis_angle, matrix_to_quaternion, matrix_to_sixd
from torchworks.geometry.se3 import camera_center, invert_pose, make_pose

EDGE_ANGLES = [0.0, 1e-12, 1e-8, 1e-5, 1e-3, 1.0, math.pi / 2, math.pi - 1e-6, math.pi - 1e-9, math.pi]
angles = st.one_of(st.sampled_from(EDGE_ANGLES), st.floats(0.0, math.pi))
axes = st.one_of(
    st.sampled_from([(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0), (1.0, 1.0, 0.0)]),
    st.tuples(*[st.floats(-1, 1)] * 3).filter(lambda v: sum(c * c for c in v) > 1e-3),
)


def _aa(axis, angle) -> torch.Tensor:
    a = torch.tensor(axis, dtype=torch.float64)
    return a / a.norm() * angle


def _same_rotation_vector(r1: torch.Tensor, r2: torch.Tensor) -> float:
    """Distance between rotation vectors modulo the pi ambiguity (r and -r are the same rotation at pi)."""
    return min((r1 - r2).abs().max().item(), (r1 + r2).abs().max().item() if r1.norm() > math.pi - 1e-6 else 9)


@settings(max_examples=300, deadline=None)
@given(axis=axes, angle=angles)
def test_round_trips_float64_within_1e12(axis, angle):
    r = _aa(axis, angle)
    R = rot.axis_angle_to_matrix(r)
    assert (R.T @ R - torch.eye(3, dtype=torch.float64)).abs().max() < 1e-14
    assert torch.linalg.det(R).item() == pytest.approx(1.0, abs=1e-14)
    # matrix -> X -> matrix
    assert (rot.axis_angle_to_matrix(rot.matrix_to_axis_angle(R)) - R).abs().max() <= 1e-12
    for order in ("wxyz", "xyzw"):
        q = rot.matrix_to_quaternion(R, order=order)
        assert (rot.quaternion_to_matrix(q, order=order) - R).abs().max() <= 1e-12
    assert (rot.sixd_to_matrix(rot.matrix_to_sixd(R)) - R).abs().max() <= 1e-12
    # X -> matrix -> X (modulo the sign of r at exactly pi)
    assert _same_rotation_vector(rot.matrix_to_axis_angle(R), r) <= 1e-12
    q = rot.axis_angle_to_quaternion(r, order="wxyz")
    assert (rot.quaternion_to_matrix(q, order="wxyz") - R).abs().max() <= 1e-12
    assert _same_rotation_vector(rot.quaternion_to_axis_angle(q, order="wxyz"), r) <= 1e-12
    assert rot.geodesic_angle(torch.eye(3, dtype=torch.float64), R).item() == pytest.approx(angle, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(axis=axes, angle=angles)
def test_quaternion_is_canonical_and_q_minus_q_same_matrix(axis, angle):
    q = rot.axis_angle_to_quaternion(_aa(axis, angle), order="wxyz")
    assert q[0] >= 0 and q.norm().item() == pytest.approx(1.0, abs=1e-15)
    m1 = rot.quaternion_to_matrix(q, order="wxyz")
    assert torch.equal(m1, rot.quaternion_to_matrix(-q, order="wxyz"))
    assert torch.allclose(rot.canonicalize_quaternion(-q, order="wxyz"), q, atol=0, rtol=0)


def test_quaternion_orders_for_rz90_hand_computed():
    # Rz(90 deg): w = cos 45, z = sin 45; kornia/pytorch3d print wxyz, scipy/roma/pycolmap print xyzw.
    R = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64)
    h = math.sqrt(0.5)
    assert torch.allclose(rot.matrix_to_quaternion(R, order="wxyz"), torch.tensor([h, 0, 0, h], dtype=torch.float64))
    assert torch.allclose(rot.matrix_to_quaternion(R, order="xyzw"), torch.tensor([0, 0, h, h], dtype=torch.float64))
    q = torch.tensor([1.0, 2, 3, 4])
    assert rot.convert_quaternion_order(q, src="wxyz", dst="xyzw").tolist() == [2, 3, 4, 1]
    assert rot.convert_quaternion_order(q, src="xyzw", dst="wxyz").tolist() == [4, 1, 2, 3]


def test_quaternion_order_is_required_and_checked():
    q = torch.tensor([1.0, 0, 0, 0])
    with pytest.raises(TypeError):
        rot.quaternion_to_matrix(q)  # no silent default order
    with pytest.raises(ValueError, match="order"):
        rot.quaternion_to_matrix(q, order="ijkw")


def test_pi_rotation_quaternion_sign_is_unique():
    # At exactly pi, w = 0 and q, -q are both valid; the canonical one has its first non-zero component > 0.
    # diag(-1, 1, -1) is exactly a half turn about y (math.pi itself is 1.2e-16 short of pi, so w would be > 0).
    R = torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64))
    assert rot.matrix_to_quaternion(R, order="wxyz").tolist() == [0, 0, 1, 0]
    assert rot.matrix_to_axis_angle(R).tolist() == [0, math.pi, 0]


def test_rodrigues_parity_with_opencv_both_directions():
    g = torch.Generator().manual_seed(1)
    vecs = torch.randn(200, 3, generator=g, dtype=torch.float64)
    angle = torch.linspace(1e-4, math.pi - 1e-3, 200, dtype=torch.float64)
    vecs = vecs / vecs.norm(dim=-1, keepdim=True) * angle[:, None]
    ours_m = rot.axis_angle_to_matrix(vecs)
    cv_m = np.stack([cv2.Rodrigues(v.numpy())[0] for v in vecs])
    assert np.abs(ours_m.numpy() - cv_m).max() < 1e-14
    ours_v = rot.matrix_to_axis_angle(ours_m)
    cv_v = np.stack([cv2.Rodrigues(m)[0][:, 0] for m in cv_m])
    # Skip the tiny angles OpenCV zeroes (< 1e-5 rad); elsewhere OpenCV is exact to ~1e-9 near pi only.
    assert np.abs(ours_v.numpy() - cv_v).max() < 1e-9
    assert (ours_v - vecs).abs().max() < 1e-14


def test_opencv_zeroes_small_rotations_but_we_do_not():
    r = torch.tensor([3e-6, 0.0, 0.0], dtype=torch.float64)
    R = rot.axis_angle_to_matrix(r)
    assert np.abs(cv2.Rodrigues(R.numpy())[0]).max() == 0.0  # the OpenCV wart this package fixes
    assert (rot.matrix_to_axis_angle(R) - r).abs().max() < 1e-20


@pytest.mark.parametrize("bad", [torch.diag(torch.tensor([1.0, 1, -1], dtype=torch.float64)),
                                 torch.eye(3, dtype=torch.float64) * 1.01,
                                 torch.tensor([[1, 0.1, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)])
def test_non_rotations_raise_unless_projected(bad):
    with pytest.raises(ValueError, match="not a rotation"):
        rot.matrix_to_axis_angle(bad)
    with pytest.raises(ValueError, match="not a rotation"):
        rot.matrix_to_quaternion(bad, order="wxyz")
    R = rot.axis_angle_to_matrix(rot.matrix_to_axis_angle(bad, project=True))
    assert bool(rot.is_rotation_matrix(R))
    assert bool(rot.is_rotation_matrix(rot.project_to_so3(bad)))


def test_non_unit_quaternion_raises_unless_projected():
    q = torch.tensor([2.0, 0, 0, 0], dtype=torch.float64)
    with pytest.raises(ValueError, match="not unit"):
        rot.quaternion_to_matrix(q, order="wxyz")
    assert torch.equal(rot.quaternion_to_matrix(q, order="wxyz", project=True), torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="zero norm"):
        rot.quaternion_to_axis_angle(torch.zeros(4), order="wxyz", project=True)


def test_project_to_so3_nearest_rotation_of_reflection_and_noise():
    R = random_rotations(5, seed=3)
    noisy = R + 1e-3 * torch.randn(5, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    P = rot.project_to_so3(noisy)
    assert rot.is_rotation_matrix(P, atol=1e-13).all()
    assert (P - R).abs().max() < 3e-3


def test_shapes_batched_and_errors():
    R = random_rotations(12).reshape(3, 4, 3, 3)
    assert rot.matrix_to_axis_angle(R).shape == (3, 4, 3)
    assert rot.matrix_to_quaternion(R, order="xyzw").shape == (3, 4, 4)
    assert rot.matrix_to_sixd(R).shape == (3, 4, 6)
    assert rot.geodesic_angle(R, R[:1]).shape == (3, 4)
    # batched equals per-item
    assert torch.equal(rot.matrix_to_axis_angle(R)[1, 2], rot.matrix_to_axis_angle(R[1, 2]))
    with pytest.raises(ShapeError, match=r"\(\.\.\., 3\)"):
        rot.axis_angle_to_matrix(torch.zeros(4, 2))
    with pytest.raises(ShapeError):
        rot.matrix_to_axis_angle(torch.zeros(3, 4))
    with pytest.raises(TypeError, match="floating"):
        rot.axis_angle_to_matrix(torch.zeros(3, dtype=torch.int64))


def test_float32_accuracy():
    R = random_rotations(100).float()
    assert (rot.axis_angle_to_matrix(rot.matrix_to_axis_angle(R)) - R).abs().max() < 2e-6


@pytest.mark.parametrize("angle", [0.0, 1e-8, 0.7, math.pi - 1e-3])
def test_gradcheck_axis_angle_quaternion_paths(angle):
    r = _aa((0.3, -0.5, 0.8), angle).requires_grad_(True)
    assert torch.autograd.gradcheck(rot.axis_angle_to_matrix, (r,))
    assert torch.autograd.gradcheck(lambda v: rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(v)), (r,))
    assert torch.autograd.gradcheck(lambda v: rot.axis_angle_to_quaternion(v, order="xyzw"), (r,))
    assert torch.autograd.gradcheck(
        lambda v: rot.quaternion_to_axis_angle(rot.axis_angle_to_quaternion(v, order="wxyz"), order="wxyz"), (r,))
    assert torch.autograd.gradcheck(lambda v: rot.matrix_to_sixd(rot.axis_angle_to_matrix(v)), (r,))


def test_gradcheck_quaternion_to_matrix_and_sixd():
    q = torch.tensor([0.8, 0.1, -0.3, 0.5], dtype=torch.float64)
    q = (q / q.norm()).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: rot.quaternion_to_matrix(v, order="wxyz", project=True), (q,))
    d = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    assert torch.autograd.gradcheck(rot.sixd_to_matrix, (d,))


@pytest.mark.parametrize("angle", [0.0, 1e-8, math.pi - 1e-9, math.pi])
def test_gradients_finite_at_singular_angles(angle):
    r = _aa((0.0, 0.0, 1.0), angle)
    R = rot.axis_angle_to_matrix(r).requires_grad_(True)
    outs = [rot.matrix_to_axis_angle(R), rot.matrix_to_quaternion(R, order="wxyz"),
            rot.geodesic_angle(torch.eye(3, dtype=torch.float64), R)]
    for out in outs:
        (g,) = torch.autograd.grad(out.sum(), R)
        assert torch.isfinite(g).all()
    v = r.clone().requires_grad_(True)
    total = rot.axis_angle_to_matrix(v).sum() + rot.axis_angle_to_quaternion(v, order="wxyz").sum()
    (g,) = torch.autograd.grad(total, v)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("call", [
    lambda m: geodesic_angle(m, m),
    lambda m: geodesic_angle(torch.eye(3, dtype=m.dtype), m),
    lambda m: matrix_to_sixd(m),
    lambda m: essential_from_pose(m, torch.ones(3, dtype=m.dtype)),
    lambda m: homography_from_rotation(torch.eye(3, dtype=m.dtype), m),
    lambda m: make_pose(m, torch.zeros(3, dtype=m.dtype)),
    lambda m: invert_pose(torch.cat([m, torch.zeros(3, 1, dtype=m.dtype)], -1)),
    lambda m: camera_center(torch.cat([m, torch.zeros(3, 1, dtype=m.dtype)], -1)),
    lambda m: convert_pose(torch.cat([m, torch.zeros(3, 1, dtype=m.dtype)], -1), "opencv", "opengl",
                           src_kind="world_to_cam"),
    lambda m: matrix_to_axis_angle(m),
    lambda m: matrix_to_quaternion(m, order="wxyz"),
], ids=["geodesic_same", "geodesic_other", "sixd", "essential", "homography", "make_pose", "invert_pose",
        "camera_center", "convert_pose", "axis_angle", "quaternion"])
@pytest.mark.parametrize("bad", ["minus_identity", "reflection", "scaled"])
def test_reflections_and_non_rotations_are_refused_everywhere(call, bad):
    # geodesic_angle(-I, -I) used to return 0: (-I)^T (-I) = I is a rotation although -I is not.
    m = {"minus_identity": -torch.eye(3, dtype=torch.float64),
         "reflection": torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)),
         "scaled": 1.01 * torch.eye(3, dtype=torch.float64)}[bad]
    with pytest.raises(ValueError, match="not a rotation"):
        call(m)
    call(torch.eye(3, dtype=torch.float64))  # and a rotation passes

"""``torchworks.geometry.pose_error``: ground-truth relative pose of two cameras and the error of an estimate."""

from __future__ import annotations

import math

import pytest
import torch
from geo_helpers import random_rotations, two_view_scene

from torchworks.geometry.pose_error import relative_pose, relative_pose_error
from torchworks.geometry.rotations import axis_angle_to_matrix
from torchworks.geometry.se3 import invert_pose, make_pose, transform_points

D = torch.float64


def test_relative_pose_maps_camera_a_points_to_camera_b():
    rots = random_rotations(6, seed=1)
    g = torch.Generator().manual_seed(2)
    ts = torch.randn(6, 3, generator=g, dtype=D)
    ra, rb, ta, tb = rots[:3], rots[3:], ts[:3], ts[3:]
    rot, t = relative_pose(ra, ta, rb, tb)
    world = torch.randn(3, 10, 3, generator=g, dtype=D)
    x_a = transform_points(make_pose(ra, ta), world)
    x_b = transform_points(make_pose(rb, tb), world)
    torch.testing.assert_close(x_a @ rot.transpose(-1, -2) + t[:, None], x_b, rtol=0, atol=1e-12)
    # the same as composing the 4x4 poses: P_b P_a^-1
    torch.testing.assert_close(make_pose(rot, t), make_pose(rb, tb) @ invert_pose(make_pose(ra, ta)), rtol=0,
                               atol=1e-12)


def test_known_errors():
    scene = two_view_scene()
    rot, t = scene["R"], scene["t"]
    assert [float(e) for e in relative_pose_error(rot, t, rot, t)] == pytest.approx([0.0, 0.0], abs=1e-15)
    # 0.2 rad more about any axis, the translation turned by 0.3 rad and scaled: exactly those angles
    turn = axis_angle_to_matrix(torch.tensor([0.0, 0.0, 0.3], dtype=D))
    t_in_plane = torch.tensor([2.0, -1.0, 0.0], dtype=D)
    rot_err, t_err = relative_pose_error(axis_angle_to_matrix(torch.tensor([0.2, 0, 0], dtype=D)) @ rot,
                                         5 * turn @ t_in_plane, rot, t_in_plane)
    assert rot_err.item() == pytest.approx(0.2, abs=1e-12) and t_err.item() == pytest.approx(0.3, abs=1e-12)
    # a swapped pair of cameras points the other way: pi, not 0
    assert relative_pose_error(rot, -t, rot, t)[1].item() == pytest.approx(math.pi, abs=1e-12)


def test_tiny_direction_errors_are_resolved_unlike_acos():
    t_gt = torch.tensor([1.0, 0.0, 0.0], dtype=D)
    t = torch.tensor([1.0, 1e-9, 0.0], dtype=D)
    _, err = relative_pose_error(torch.eye(3, dtype=D), t, torch.eye(3, dtype=D), t_gt)
    assert err.item() == pytest.approx(1e-9, rel=1e-6)
    assert math.acos(min(1.0, float(t @ t_gt / t.norm()))) == 0.0  # what acos would report


def test_batched_with_broadcast_ground_truth():
    rots = random_rotations(5, seed=3)
    ts = torch.randn(5, 3, generator=torch.Generator().manual_seed(4), dtype=D)
    rot_err, t_err = relative_pose_error(rots, ts, rots[0], ts[0])
    assert rot_err.shape == t_err.shape == (5,)
    assert rot_err[0].item() < 1e-15 and t_err[0].item() < 1e-15 and (rot_err[1:] > 0.01).all()
    for i in range(5):
        single = relative_pose_error(rots[i], ts[i], rots[0], ts[0])
        assert single[0].item() == pytest.approx(rot_err[i].item(), abs=1e-12)
        assert single[1].item() == pytest.approx(t_err[i].item(), abs=1e-12)


def test_direction_error_gradcheck():
    t = torch.tensor([0.3, -1.0, 0.5], dtype=D, requires_grad=True)
    t_gt = torch.tensor([0.1, -0.8, 0.9], dtype=D, requires_grad=True)
    eye = torch.eye(3, dtype=D)
    assert torch.autograd.gradcheck(lambda a, b: relative_pose_error(eye, a, eye, b)[1], (t, t_gt))


def test_errors():
    eye = torch.eye(3, dtype=D)
    t = torch.tensor([1.0, 0, 0], dtype=D)
    with pytest.raises(ValueError, match="zero translation"):
        relative_pose_error(eye, torch.zeros(3, dtype=D), eye, t)
    with pytest.raises(ValueError):  # a reflection is not a rotation
        relative_pose_error(-eye, t, eye, t)
    with pytest.raises(ValueError, match=r"t must have shape \(\.\.\., 3\)"):
        relative_pose_error(eye, torch.zeros(4, dtype=D), eye, t)
    with pytest.raises(TypeError, match="floating-point"):
        relative_pose(eye, torch.zeros(3, dtype=torch.long), eye, t)
    with pytest.raises(ValueError, match=r"rot_b must have shape \(\.\.\., 3, 3\)"):
        relative_pose(eye, t, torch.eye(4, dtype=D), t)

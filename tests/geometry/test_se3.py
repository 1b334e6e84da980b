"""SE(3): exp/log round trips, inversion, camera centre C = -R^T t, gradients."""

from __future__ import annotations

import math

import pytest
import torch
from geo_helpers import random_rotations

from torchworks.core.errors import ShapeError
from torchworks.geometry import se3


@pytest.mark.parametrize("angle", [0.0, 1e-8, 1e-3, 1.0, math.pi - 1e-9])
def test_exp_log_round_trip(angle):
    w = torch.tensor([0.2, -0.6, 0.77], dtype=torch.float64)
    tw = torch.cat([torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), w / w.norm() * angle])
    T = se3.se3_exp(tw)
    assert (se3.se3_log(T) - tw).abs().max() < 1e-12
    assert (se3.se3_exp(se3.se3_log(T)) - T).abs().max() < 1e-12


def test_exp_matches_hand_computed_pure_translation_and_rotation():
    tw = torch.tensor([1.0, 2.0, 3.0, 0, 0, 0], dtype=torch.float64)
    assert torch.equal(se3.se3_exp(tw)[:3, 3], tw[:3])
    # A quarter turn about z with rho = (1, 0, 0): V rho = (sin t / t, (1 - cos t) / t, 0) = (2/pi, 2/pi, 0).
    T = se3.se3_exp(torch.tensor([1.0, 0, 0, 0, 0, math.pi / 2], dtype=torch.float64))
    assert torch.allclose(T[:3, 3], torch.tensor([2 / math.pi, 2 / math.pi, 0], dtype=torch.float64), atol=1e-15)


def test_invert_center_and_transform():
    R = random_rotations(4, seed=5)
    t = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    w2c = se3.make_pose(R, t)
    c2w = se3.invert_pose(w2c)
    assert torch.allclose(w2c @ c2w, torch.eye(4, dtype=torch.float64).expand(4, 4, 4), atol=1e-15)
    C = se3.camera_center(w2c)
    assert torch.allclose(C, c2w[:, :3, 3], atol=1e-15)
    assert torch.allclose(se3.translation_from_center(R, C), t, atol=1e-15)
    # The centre maps to the camera origin.
    assert se3.transform_points(w2c, C[:, None]).abs().max() < 1e-14
    assert se3.invert_pose(w2c[:, :3]).shape == (4, 4, 4)


def test_gradcheck_exp_log():
    tw = torch.tensor([0.3, -0.1, 0.2, 0.4, 0.1, -0.5], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(se3.se3_exp, (tw,))
    assert torch.autograd.gradcheck(lambda v: se3.se3_log(se3.se3_exp(v)), (tw,))
    small = torch.tensor([0.3, -0.1, 0.2, 0.0, 0.0, 0.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: se3.se3_log(se3.se3_exp(v)), (small,))


def test_errors():
    with pytest.raises(ShapeError):
        se3.se3_exp(torch.zeros(5))
    with pytest.raises(ShapeError):
        se3.invert_pose(torch.zeros(2, 3))
    bad = torch.eye(4, dtype=torch.float64)
    bad[:3, :3] *= -1  # a reflection: refused by make_pose and by every function that reads a pose's rotation
    with pytest.raises(ValueError, match="not a rotation"):
        se3.se3_log(bad)
    with pytest.raises(ValueError, match="rotation is not a rotation"):
        se3.make_pose(bad[:3, :3], torch.zeros(3, dtype=torch.float64))

"""Euler angles: all 12 sequences x intrinsic/extrinsic, round trips at and next to the gimbal poles."""

from __future__ import annotations

import math

import pytest
import torch
from geo_helpers import random_rotations
from hypothesis import given, settings
from hypothesis import strategies as st

from torchworks.core.errors import ShapeError
from torchworks.geometry.euler import EULER_SEQUENCES, euler_to_matrix, matrix_to_euler

COMBOS = [(a, i) for a in EULER_SEQUENCES for i in (True, False)]
TAU = math.pi / 2


def _pole_angles(axes: str) -> list[float]:
    """Middle angles at and within one ulp-ish of the gimbal poles of the sequence."""
    if axes[0] == axes[2]:
        return [0.0, 1e-15, 1e-9, math.pi, math.pi - 1e-9, math.pi - 1e-15]
    return [TAU, -TAU, TAU - 1e-9, -TAU + 1e-15, TAU - 1e-15]


@settings(max_examples=200, deadline=None)
@given(combo=st.sampled_from(COMBOS), outer=st.tuples(st.floats(-math.pi, math.pi), st.floats(-math.pi, math.pi)),
       pole=st.integers(0, 5), at_pole=st.booleans(), mid=st.floats(-TAU, math.pi))
def test_matrix_euler_matrix_round_trip_including_poles(combo, outer, pole, at_pole, mid):
    axes, intrinsic = combo
    poles = _pole_angles(axes)
    middle = poles[pole % len(poles)] if at_pole else mid
    ang = torch.tensor([outer[0], middle, outer[1]], dtype=torch.float64)
    R = euler_to_matrix(ang, axes, intrinsic=intrinsic)
    back = matrix_to_euler(R, axes, intrinsic=intrinsic)
    assert (euler_to_matrix(back, axes, intrinsic=intrinsic) - R).abs().max() <= 1e-12
    assert back.abs().max() <= math.pi + 1e-12


@pytest.mark.parametrize(("axes", "intrinsic"), COMBOS)
def test_random_round_trip_and_ranges(axes, intrinsic):
    R = random_rotations(500, seed=2)
    e = matrix_to_euler(R, axes, intrinsic=intrinsic)
    assert (euler_to_matrix(e, axes, intrinsic=intrinsic) - R).abs().max() < 1e-14
    if axes[0] == axes[2]:
        assert (e[:, 1] >= 0).all() and (e[:, 1] <= math.pi).all()
    else:
        assert (e[:, 1].abs() <= TAU + 1e-15).all()
    # Angles inside the principal range come back unchanged.
    a = torch.tensor([0.3, 0.4 if axes[0] != axes[2] else 1.2, -1.0], dtype=torch.float64)
    assert torch.allclose(matrix_to_euler(euler_to_matrix(a, axes, intrinsic=intrinsic), axes, intrinsic=intrinsic),
                          a, atol=1e-14)


def test_intrinsic_is_reversed_extrinsic_and_hand_values():
    a = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    assert torch.allclose(euler_to_matrix(a, "ZYX", intrinsic=True), euler_to_matrix(a.flip(0), "XYZ", intrinsic=False))
    # Hand-computed: intrinsic ZYX (yaw 90 deg, 0, 0) is Rz(90) = [[0, -1, 0], [1, 0, 0], [0, 0, 1]].
    R = euler_to_matrix(torch.tensor([TAU, 0.0, 0.0], dtype=torch.float64), "ZYX", intrinsic=True)
    assert torch.allclose(R, torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64), atol=1e-16)
    # Intrinsic XYZ = Rx(a) Ry(b) Rz(c): with a = b = 90 deg, e_x maps to Rx Ry e_x = Rx(-e_z)... = (0, 1, 0).
    R = euler_to_matrix(torch.tensor([TAU, TAU, 0.0], dtype=torch.float64), "XYZ", intrinsic=True)
    assert torch.allclose(R[:, 0], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), atol=1e-15)


def test_gimbal_pole_zeroes_the_third_angle():
    R = euler_to_matrix(torch.tensor([0.3, TAU, -1.1], dtype=torch.float64), "ZYX", intrinsic=True)
    e = matrix_to_euler(R, "ZYX", intrinsic=True)
    assert e[2] == 0 and e[0].item() == pytest.approx(0.3 + 1.1, abs=1e-12)


def test_gradients_finite_at_poles_and_gradcheck_generic():
    for axes, middle in (("ZYX", TAU), ("ZXZ", 0.0), ("ZXZ", math.pi)):
        R = euler_to_matrix(torch.tensor([0.3, middle, -0.2], dtype=torch.float64), axes, intrinsic=True)
        R.requires_grad_(True)
        (g,) = torch.autograd.grad(matrix_to_euler(R, axes, intrinsic=True).sum(), R)
        assert torch.isfinite(g).all()
    a = torch.tensor([0.3, 0.5, -0.2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: euler_to_matrix(v, "YXZ", intrinsic=False), (a,))
    assert torch.autograd.gradcheck(
        lambda v: matrix_to_euler(euler_to_matrix(v, "YXZ", intrinsic=False), "YXZ", intrinsic=False), (a,))


def test_errors_and_shapes():
    with pytest.raises(ValueError, match="axes"):
        euler_to_matrix(torch.zeros(3), "XXY", intrinsic=True)
    with pytest.raises(TypeError):
        euler_to_matrix(torch.zeros(3), "XYZ")  # the frame must be stated
    with pytest.raises(ShapeError):
        euler_to_matrix(torch.zeros(2, 4), "XYZ", intrinsic=True)
    with pytest.raises(ValueError, match="not a rotation"):
        matrix_to_euler(-torch.eye(3, dtype=torch.float64), "XYZ", intrinsic=True)
    assert euler_to_matrix(torch.zeros(2, 5, 3), "XYZ", intrinsic=True).shape == (2, 5, 3, 3)
    assert matrix_to_euler(random_rotations(6).reshape(2, 3, 3, 3), "ZYZ", intrinsic=False).shape == (2, 3, 3)

"""Trifocal tensor: from cameras, point/line transfer, linear estimation, consistency with the pairwise F's."""

from __future__ import annotations

import pytest
import torch

from torchworks.core.errors import ShapeError
from torchworks.geometry import trifocal as tf
from torchworks.geometry.camera import intrinsics_matrix, projection_matrix
from torchworks.geometry.epipolar import _unit_sign, fundamental_from_projections, sampson_distance
from torchworks.geometry.rotations import axis_angle_to_matrix
from torchworks.geometry.se3 import make_pose

D = torch.float64


def _scene(n=30, noise=0.0, seed=0):
    K = intrinsics_matrix(800.0, 790.0, 320.0, 240.0)
    poses = [([0.0, 0, 0], [0.0, 0, 0]), ([0.05, -0.1, 0.02], [-1.0, 0.1, 0.2]),
             ([-0.03, 0.15, 0.01], [1.0, 0.3, -0.1])]
    Ps = [projection_matrix(K, make_pose(axis_angle_to_matrix(torch.tensor(r, dtype=D)), torch.tensor(t, dtype=D)))
          for r, t in poses]
    g = torch.Generator().manual_seed(seed)
    X = torch.cat([torch.randn(n, 2, generator=g, dtype=D), 4 + 4 * torch.rand(n, 1, generator=g, dtype=D)], -1)
    xs = []
    for P in Ps:
        h = torch.cat([X, torch.ones(n, 1, dtype=D)], -1) @ P.T
        xs.append(h[:, :2] / h[:, 2:] + noise * torch.randn(n, 2, generator=g, dtype=D))
    return Ps, X, xs


def _close_up_to_sign(a, b):
    return min((a - b).abs().max().item(), (a + b).abs().max().item())


def test_point_transfer_and_estimation_noise_free():
    Ps, _, xs = _scene()
    T = tf.trifocal_from_projections(*Ps)
    assert T.shape == (3, 3, 3) and T.norm().item() == pytest.approx(1.0)
    assert (tf.transfer_point(T, xs[0], xs[1]) - xs[2]).abs().max() < 1e-9
    assert _close_up_to_sign(tf.find_trifocal(*xs), T) < 1e-12


def test_canonical_cameras_match_hand_formula():
    # With P1 = [I | 0], P2 = [A | a4], P3 = [B | b4]: T_i = a_i b4^T - a4 b_i^T (HZ eq. 15.1).
    Ps, _, _ = _scene()
    A = Ps[1] / Ps[1].norm()
    B = Ps[2] / Ps[2].norm()
    P1 = torch.eye(3, 4, dtype=D)
    hand = torch.stack([A[:, i, None] * B[None, :, 3] - A[:, 3, None] * B[None, :, i] for i in range(3)])
    assert _close_up_to_sign(tf.trifocal_from_projections(P1, A, B), hand / hand.norm()) < 1e-14


def test_line_transfer():
    Ps, X, _ = _scene()
    ones = torch.ones(10, 1, dtype=D)

    def lines(P):  # image of the 3D line through X[i] and X[i + 10]
        a = torch.cat([X[:10], ones], -1) @ P.T
        b = torch.cat([X[10:20], ones], -1) @ P.T
        return torch.linalg.cross(a, b)

    T = tf.trifocal_from_projections(*Ps)
    l1 = tf.transfer_line(T, lines(Ps[1]), lines(Ps[2]))
    ref = lines(Ps[0])
    ref = ref / ref[:, :2].norm(dim=-1, keepdim=True)
    sign = torch.sign((l1 * ref).sum(-1, keepdim=True))
    assert (l1 - sign * ref).abs().max() < 1e-12


def test_consistent_with_pairwise_fundamentals():
    Ps, _, xs = _scene()
    f21, f31 = tf.fundamentals_from_trifocal(tf.trifocal_from_projections(*Ps))
    assert _close_up_to_sign(f21, _unit_sign(fundamental_from_projections(Ps[0], Ps[1]))) < 1e-12
    assert _close_up_to_sign(f31, _unit_sign(fundamental_from_projections(Ps[0], Ps[2]))) < 1e-12
    assert sampson_distance(f21, xs[0], xs[1]).max() < 1e-9
    e2, e3 = tf.trifocal_epipoles(tf.trifocal_from_projections(*Ps))
    c1 = torch.tensor([0.0, 0, 0, 1], dtype=D)
    for e, P in ((e2, Ps[1]), (e3, Ps[2])):
        img = P @ c1
        assert _close_up_to_sign(e, img / img.norm()) < 1e-12


def test_noisy_estimation_transfers_within_noise_and_batched():
    Ps, _, xs = _scene(200, noise=0.5, seed=1)
    T = tf.find_trifocal(*xs)
    err = (tf.transfer_point(T, xs[0], xs[1]) - xs[2]).norm(dim=-1)
    assert err.median() < 2.0
    tb = tf.find_trifocal(*[torch.stack([x, x]) for x in xs])
    assert tb.shape == (2, 3, 3, 3) and _close_up_to_sign(tb[1], T) < 1e-12


def test_gradcheck():
    Ps, _, xs = _scene(8, noise=0.3, seed=2)
    x1 = xs[0].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: tf.find_trifocal(a, xs[1], xs[2]), (x1,))
    p = Ps[1].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda q: tf.trifocal_from_projections(Ps[0], q, Ps[2]), (p,))
    T = tf.trifocal_from_projections(*Ps)
    assert torch.autograd.gradcheck(lambda a: tf.transfer_point(T, a, xs[1]), (x1,))


def test_errors():
    with pytest.raises(ShapeError, match="N >= 7"):
        tf.find_trifocal(*[torch.zeros(6, 2, dtype=D)] * 3)
    with pytest.raises(ShapeError):
        tf.trifocal_from_projections(torch.zeros(3, 3), torch.zeros(3, 4), torch.zeros(3, 4))
    with pytest.raises(ShapeError):
        tf.transfer_line(torch.zeros(3, 3), torch.zeros(2, 3), torch.zeros(2, 3))

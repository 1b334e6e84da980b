"""Homography: plane- and rotation-induced H, normalized DLT vs cv2.findHomography, transfer error, gradients."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from geo_helpers import two_view_scene

from torchworks.core.errors import ShapeError
from torchworks.geometry import homography as ho
from torchworks.geometry.rotations import axis_angle_to_matrix


def test_dlt_matches_opencv_transfer_error_on_noisy_plane():
    s = two_view_scene(100, noise=0.5, planar=True, seed=3)
    ours = ho.find_homography(s["x1"], s["x2"])
    ref, _ = cv2.findHomography(s["x1"].numpy(), s["x2"].numpy(), 0)
    e_ours = ho.transfer_error(ours, s["x1"], s["x2"]).pow(2).mean().sqrt().item()
    e_cv = ho.transfer_error(torch.from_numpy(ref), s["x1"], s["x2"]).pow(2).mean().sqrt().item()
    # OpenCV adds LM refinement of exactly this error; the algebraic DLT is within 0.1 % of it.
    assert e_ours <= 1.001 * e_cv
    assert ours[2, 2].item() == 1.0


def test_noise_free_plane_recovers_plane_homography_exactly():
    s = two_view_scene(30, planar=True, seed=1)
    # The scene's plane is z = 6 + 0.3 x' - 0.2 y' in normalized terms; recover n, d from 3 of its points.
    X = s["X"]
    n = torch.linalg.cross(X[1] - X[0], X[2] - X[0])
    n = n / n.norm()
    d = (n @ X[0]).item()
    if d < 0:
        n, d = -n, -d
    H = ho.homography_from_plane(s["K"], s["K"], s["R"], s["t"], n, d)
    assert ho.transfer_error(H, s["x1"], s["x2"]).max() < 1e-9
    est = ho.find_homography(s["x1"], s["x2"])
    assert (est - H).abs().max() < 1e-9
    ref, _ = cv2.findHomography(s["x1"].numpy(), s["x2"].numpy(), 0)
    # OpenCV rounds the points to float32, so it is exact only to ~1e-5 px; ours to 1e-9 px.
    assert ho.transfer_error(torch.from_numpy(ref), s["x1"], s["x2"]).max() < 1e-3
    assert np.abs(ref / ref[2, 2] - H.numpy()).max() / np.abs(H.numpy()).max() < 1e-6


def test_rotation_homography_is_exact_for_any_depth():
    K = torch.tensor([[700.0, 0, 320], [0, 710, 240], [0, 0, 1]], dtype=torch.float64)
    R = axis_angle_to_matrix(torch.tensor([0.02, 0.1, -0.05], dtype=torch.float64))
    X = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + torch.tensor(
        [0, 0, 5.0], dtype=torch.float64)
    x1 = (X / X[:, 2:]) @ K.T
    x2h = (X @ R.T) @ K.T
    H = ho.homography_from_rotation(K, R)
    assert ho.transfer_error(H, x1[:, :2], x2h[:, :2] / x2h[:, 2:]).max() < 1e-10


def test_batched_equals_single_and_weights():
    s = [two_view_scene(40, noise=0.3, planar=True, seed=i) for i in range(3)]
    x1 = torch.stack([v["x1"] for v in s])
    x2 = torch.stack([v["x2"] for v in s])
    hb = ho.find_homography(x1, x2)
    for i in range(3):
        assert torch.allclose(hb[i], ho.find_homography(x1[i], x2[i]), atol=1e-12)
    # Zero weight on a gross outlier removes it.
    x2o = x2[0].clone()
    x2o[0] += 100
    w = torch.ones(40, dtype=torch.float64)
    w[0] = 0
    assert torch.allclose(ho.find_homography(x1[0, 1:], x2o[1:]), ho.find_homography(x1[0], x2o, w), atol=1e-10)


def test_symmetric_transfer_and_normalize_points():
    H = torch.tensor([[1.0, 0, 5], [0, 1, -3], [0, 0, 1]], dtype=torch.float64)
    x1 = torch.tensor([[0.0, 0.0], [1.0, 2.0]], dtype=torch.float64)
    x2 = torch.tensor([[5.0, -3.0], [6.0, 0.0]], dtype=torch.float64)  # second one is 1 px off in v
    assert ho.transfer_error(H, x1, x2).tolist() == [0.0, 1.0]
    assert ho.transfer_error(H, x1, x2, symmetric=True).tolist() == [0.0, 2.0]
    pts = torch.rand(20, 2, dtype=torch.float64) * 500
    n, T = ho.normalize_points(pts)
    assert n.mean(0).abs().max() < 1e-12 and n.norm(dim=-1).mean().item() == pytest.approx(2**0.5)
    assert torch.allclose(ho.apply_homography(T, pts), n, atol=1e-12)


def test_gradcheck_on_noise_free_data():
    # kornia's LU solver fails exactly this check (research note); QR + SVD passes.
    s = two_view_scene(10, planar=True, seed=2)
    x1 = s["x1"].clone().requires_grad_(True)
    x2 = s["x2"].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(ho.find_homography, (x1, x2), fast_mode=False)
    s4 = two_view_scene(4, planar=True, seed=2)
    assert torch.autograd.gradcheck(ho.find_homography, (s4["x1"].requires_grad_(True), s4["x2"]))


def test_errors():
    with pytest.raises(ShapeError, match="N >= 4"):
        ho.find_homography(torch.zeros(3, 2, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(ShapeError):
        ho.find_homography(torch.zeros(5, 3), torch.zeros(5, 3))
    with pytest.raises(ShapeError):
        ho.apply_homography(torch.eye(4), torch.zeros(5, 2))


def _mp_null_vector(a: torch.Tensor) -> torch.Tensor:
    # Reference to ~40 digits: the eigenvector of the smallest eigenvalue of A^T A in mpmath (exact products).
    import mpmath  # a dependency of sympy, which torch requires

    mpmath.mp.dps = 40
    A = mpmath.matrix(a.tolist())
    evals, evecs = mpmath.eigsy(A.T * A)
    i = min(range(a.shape[-1]), key=lambda j: evals[j])
    return torch.tensor([float(evecs[k, i]) for k in range(a.shape[-1])], dtype=torch.float64)


def test_batched_null_vector_by_inverse_iteration_is_exact():
    # The batched no-grad path (QR, then inverse iteration on R) against a 40-digit reference, on the normalized
    # DLT systems of noisy homographies; QR + SVD of R is shown beside it as the bar to meet.
    g = torch.Generator().manual_seed(0)
    x1 = torch.rand(4, 60, 2, dtype=torch.float64, generator=g) * 640
    h = torch.tensor([[1.1, 0.02, 5], [0.01, 0.95, -3], [1e-4, 2e-5, 1]], dtype=torch.float64)
    x2 = ho.apply_homography(h, x1) + torch.randn(4, 60, 2, dtype=torch.float64, generator=g)
    (n1, _), (n2, _) = ho.normalize_points(x1), ho.normalize_points(x2)
    o, i = torch.zeros_like(n1[..., 0]), torch.ones_like(n1[..., 0])
    x, y, u, v = n1[..., 0], n1[..., 1], n2[..., 0], n2[..., 1]
    a = torch.cat([torch.stack([-x, -y, -i, o, o, o, u * x, u * y, u], -1),
                   torch.stack([o, o, o, -x, -y, -i, v * x, v * y, v], -1)], -2)
    ours = ho.null_vector(a)
    svd = torch.linalg.svd(torch.linalg.qr(a, mode="r")[1])[2][..., -1, :]
    for b in range(4):
        ref = _mp_null_vector(a[b])
        e_ours = (ours[b] * torch.sign(ours[b] @ ref) - ref).abs().max().item()
        e_svd = (svd[b] * torch.sign(svd[b] @ ref) - ref).abs().max().item()
        assert e_ours <= max(e_svd, 4e-16) * 2, (b, e_ours, e_svd)


def test_inverse_iteration_falls_back_to_svd_without_a_gap_or_with_exact_null_space():
    g = torch.Generator().manual_seed(1)
    # (a) two nearly equal smallest singular values: inverse iteration cannot converge, so the answer is exactly
    # the SVD of the same triangular factor.
    q = torch.linalg.qr(torch.randn(3, 40, 9, dtype=torch.float64, generator=g))[0]
    s = torch.tensor([9.0, 8, 7, 6, 5, 4, 3, 1.0, 1.0 - 1e-9], dtype=torch.float64)
    v = torch.linalg.qr(torch.randn(9, 9, dtype=torch.float64, generator=g))[0]
    a = (q * s) @ v.T
    svd_of_r = torch.linalg.svd(torch.linalg.qr(a, mode="r")[1])[2][..., -1, :]
    assert torch.equal(ho.null_vector(a), svd_of_r)
    # (b) an exactly singular system (noise-free data, R[-1, -1] may be exactly 0): finite, unit, in the null space.
    b = torch.randn(2, 30, 8, dtype=torch.float64, generator=g)
    b = torch.cat([b, b[..., :1] + b[..., 1:2]], -1)  # column 9 = column 1 + column 2
    nv = ho.null_vector(b)
    assert torch.isfinite(nv).all() and torch.allclose(nv.norm(dim=-1), torch.ones(2, dtype=torch.float64))
    assert (b @ nv[..., None]).abs().max() < 1e-12

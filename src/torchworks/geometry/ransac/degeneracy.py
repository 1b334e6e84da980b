"""The degeneracy test of F and E: does one homography explain (nearly) all the inliers (a plane, or a camera that
only rotated)?

Part of :mod:`torchworks.geometry.ransac`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from torchworks.geometry._checks import to_homogeneous
from torchworks.geometry.camera import pixels_to_normalized
from torchworks.geometry.ransac.hypotheses import _local_optimize, _sample
from torchworks.geometry.ransac.points import _errors, _homography_sampson_of, _msac, _Points
from torchworks.geometry.so3 import project_to_so3

# The degeneracy test scores H by its Sampson error, ~ sigma^2 chi^2 with 2 degrees of freedom, where the F/E
# inliers were selected on a Sampson error with 1: its threshold is the F/E one times the ratio of the two
# 95 % quantiles, chi2_2(0.95) / chi2_1(0.95) = 5.991 / 3.841, so that both tests keep the same share of
# noise-only correspondences.
_H_THRESHOLD_SCALE = 5.991464547107979 / 3.841458820694124
# Share of the F/E inliers a homography must explain for the data to be called planar / a pure rotation.
_DEGENERATE_SHARE = 0.9


def _probe(x1: torch.Tensor, x2: torch.Tensor, idx: torch.Tensor, probe: torch.Tensor, th2: float
           ) -> np.ndarray | None:
    """The first stage of the test, in NumPy (at 32 x 128 errors, tensor ops would cost several times the
    arithmetic): the 4-point homographies of the samples ``idx`` (S, 4) (Hartley-normalized over all points, an
    8 x 8 solve with H[2, 2] = 1 each, as :func:`hypotheses._homography_4point`), and the one with the lowest MSAC
    score on the points ``probe``. Returns it as a (3, 3) float64 array, or None when it explains under half of
    the probe points (or no sample is solvable)."""
    a1, a2 = x1.detach().cpu().double().numpy(), x2.detach().cpu().double().numpy()
    norm, back = [], []
    for a in (a1, a2):
        mean = a.mean(0)
        scale = math.sqrt(2) / max(float(np.linalg.norm(a - mean, axis=1).mean()), 1e-12)
        norm.append((a - mean) * scale)
        back.append(np.array([[scale, 0, -scale * mean[0]], [0, scale, -scale * mean[1]], [0, 0, 1]]))
    s1, s2 = norm[0][idx.cpu().numpy()], norm[1][idx.cpu().numpy()]  # (S, 4, 2)
    x, y, u, v = s1[..., 0], s1[..., 1], s2[..., 0], s2[..., 1]
    o, i = np.zeros_like(x), np.ones_like(x)
    system = np.concatenate([np.stack([x, y, i, o, o, o, -u * x, -u * y], -1),
                             np.stack([o, o, o, x, y, i, -v * x, -v * y], -1)], 1)  # (S, 8, 8)
    valid = np.abs(np.linalg.det(system)) > 1e-12
    if not valid.any():
        return None
    sol = np.linalg.solve(system[valid], np.concatenate([u, v], 1)[valid][..., None])[..., 0]
    hs = np.linalg.inv(back[1]) @ np.concatenate([sol, np.ones((sol.shape[0], 1))], 1).reshape(-1, 3, 3) @ back[0]
    hs = hs / hs[:, 2:, 2:]
    p = probe.cpu().numpy()
    h1 = np.concatenate([a1[p], np.ones((p.size, 1))], 1).T[None]  # (1, 3, P)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.nan_to_num(_homography_sampson_of(hs[None], h1, a2[p, 0][None], a2[p, 1][None])[0], nan=np.inf)
    best = int(np.minimum(err, th2).sum(1).argmin())
    if int((err[best] < th2).sum()) < 0.5 * p.size:
        return None
    return hs[best]


def _degeneracy(model, x1, x2, threshold, seed, k1, k2) -> str:
    n = x1.shape[0]
    if n < 8:
        return ""
    th2 = threshold**2 * _H_THRESHOLD_SCALE
    gen = torch.Generator(device=x1.device).manual_seed(seed + 1)
    # If one H fits >= 90 % of the points, 32 four-point samples all miss it with probability < 1e-14. They are
    # scored on at most 128 of the points first: a minimal H from noisy points already explains well over half of
    # a plane's points, while in a general scene (the common case) none comes close, and the test stops there.
    idx = _sample(gen, 1, 32, n, 4, x1.device)[0]
    probe = torch.arange(n) if n <= 128 else torch.randperm(n, generator=gen, device=x1.device)[:128]
    h = _probe(x1, x2, idx, probe, th2)
    if h is None:
        return ""
    h, pts = torch.from_numpy(h).to(x1), _Points(x1[None], x2[None])
    h, _ = _local_optimize("hsampson", h, float(_msac(_errors("hsampson", h[None, None], pts)[0, 0], th2)), pts,
                           th2)
    # A plane or a pure rotation makes a homography fit (nearly) every F inlier; a dominant plane in a
    # general scene leaves a clear fraction of off-plane inliers.
    keep = _errors("hsampson", h[None, None], pts)[0, 0] < th2
    if int(keep.sum()) < _DEGENERATE_SHARE * n:
        return ""
    if model == "fundamental":
        return "planar_or_rotation"
    # Pure rotation: H = K2 R K1^-1 for the rotation R aligning the viewing rays (Kabsch on the unit rays of the H
    # inliers): if it explains the inliers as well as H does, the camera only rotated. (The singular values of
    # K2^-1 H K1, or its nearest rotation, are too noisy with narrow fields of view.)
    r1 = to_homogeneous(pixels_to_normalized(x1[keep], k1))
    r2 = to_homogeneous(pixels_to_normalized(x2[keep], k2))
    r1, r2 = r1 / r1.norm(dim=-1, keepdim=True), r2 / r2.norm(dim=-1, keepdim=True)
    rot = project_to_so3(r2.T @ r1)  # argmax_R sum r2^T R r1
    h_rot = k2 @ rot @ torch.linalg.inv(k1)
    explained = int((_errors("hsampson", h_rot[None, None], pts)[0, 0] < th2).sum())
    return "pure_rotation" if explained >= _DEGENERATE_SHARE * n else "planar"

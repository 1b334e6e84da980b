"""The degeneracy test of F and E: does one homography explain (nearly) all the inliers (a plane, or a camera that
only rotated)?

Part of :mod:`torchworks.geometry.ransac`.
"""

from __future__ import annotations

import torch

from torchworks.geometry._checks import to_homogeneous
from torchworks.geometry.camera import pixels_to_normalized
from torchworks.geometry.ransac.hypotheses import _best, _local_optimize, _minimal, _sample
from torchworks.geometry.ransac.points import _errors, _msac, _Points
from torchworks.geometry.so3 import project_to_so3

# The degeneracy test scores H by its Sampson error, ~ sigma^2 chi^2 with 2 degrees of freedom, where the F/E
# inliers were selected on a Sampson error with 1: its threshold is the F/E one times the ratio of the two
# 95 % quantiles, chi2_2(0.95) / chi2_1(0.95) = 5.991 / 3.841, so that both tests keep the same share of
# noise-only correspondences.
_H_THRESHOLD_SCALE = 5.991464547107979 / 3.841458820694124
# Share of the F/E inliers a homography must explain for the data to be called planar / a pure rotation.
_DEGENERATE_SHARE = 0.9


def _degeneracy(model, x1, x2, threshold, seed, k1, k2) -> str:
    n = x1.shape[0]
    if n < 8:
        return ""
    pts, th2 = _Points(x1[None], x2[None]), threshold**2 * _H_THRESHOLD_SCALE
    gen = torch.Generator(device=x1.device).manual_seed(seed + 1)
    # If one H fits >= 90 % of the points, 32 four-point samples all miss it with probability < 1e-14. They are
    # scored on at most 128 of the points first: a minimal H from noisy points already explains well over half of
    # a plane's points, while in a general scene (the common case) none comes close, and the test stops there.
    hyp, valid = _minimal("hsampson", pts, _sample(gen, 1, 32, n, 4, x1.device))
    if not bool(valid.any()):
        return ""
    probe = pts if n <= 128 else pts.columns(torch.randperm(n, generator=gen, device=x1.device)[:128])
    h, score = _best("hsampson", hyp, valid, probe, th2, gen)
    h = h[0]
    if int((_errors("hsampson", h[None, None], probe)[0, 0] < th2).sum()) < 0.5 * probe.h1.shape[-1]:
        return ""
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

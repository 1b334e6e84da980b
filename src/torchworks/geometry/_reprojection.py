"""Pinhole + Brown-Conrady projection with analytic Jacobians, in NumPy float64 (private to torchworks.geometry).

One routine serves every least-squares problem on reprojection errors here: calibration (intrinsics and views),
PnP refinement (one pose) and bundle adjustment (poses, points, optionally intrinsics). The model is OpenCV's
with (k1, k2, p1, p2, k3):

    X_c = R X + t,  (x, y) = (X_c / Z_c, Y_c / Z_c),  r^2 = x^2 + y^2,  radial = 1 + k1 r^2 + k2 r^4 + k3 r^6,
    x_d = x radial + 2 p1 x y + p2 (r^2 + 2 x^2),  y_d = y radial + p1 (r^2 + 2 y^2) + 2 p2 x y,
    u = fx x_d + cx,  v = fy y_d + cy.

Poses move by left increments, R <- exp([w]x) R and t <- t + dt, so d X_c / d w = -[R X]x and d X_c / d t = I.
The functions take NumPy arrays (calibration and PnP: a few hundred residuals per call, where a tensor call costs
more than its arithmetic) or torch tensors (bundle adjustment: tens of thousands of observations), and return the
same kind.
"""

from __future__ import annotations

import numpy as np
import torch

INTRINSICS = ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3")


def _new(like, shape, fill=None):
    if isinstance(like, torch.Tensor):
        return (torch.empty if fill is None else torch.zeros)(shape, dtype=like.dtype, device=like.device)
    return (np.empty if fill is None else np.zeros)(shape)


def _xp(like):
    return torch if isinstance(like, torch.Tensor) else np


def skew(v):
    """(..., 3) -> (..., 3, 3) cross-product matrices."""
    k = _new(v, tuple(v.shape) + (3,), 0)
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    return k - _xp(v).swapaxes(k, -1, -2)


def rodrigues(w):
    """(..., 3) rotation vectors -> (..., 3, 3) rotations."""
    xp = _xp(w)
    th2 = (w * w).sum(-1)
    small = th2 < 1e-16
    ts = xp.sqrt(xp.where(small, 1.0, th2))  # the double where keeps sqrt's infinite slope at 0 out of gradients
    a = xp.where(small, 1 - th2 / 6, xp.sin(ts) / ts)
    b = xp.where(small, 0.5 - th2 / 24, 2 * (xp.sin(ts / 2) / ts) ** 2)
    k = skew(w)
    eye = _new(w, (3, 3), 0)
    eye[0, 0] = eye[1, 1] = eye[2, 2] = 1.0
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def project(intr, rot, t, points, want_intr: bool = False, want_pose: bool = False, want_points: bool = False):
    """Pixels of world points and, on request, their Jacobians.

    Args:
        intr: (9,) (fx, fy, cx, cy, k1, k2, p1, p2, k3), or (..., 9) per point.
        rot: (..., 3, 3) world_to_cam rotations; t: (..., 3) translations (broadcast against ``points``' batch).
        points: (..., 3) world points, e.g. (V, N, 3) with rot (V, 1, 3, 3) and t (V, 1, 3).

    Returns:
        (uv (..., 2), depth Z_c (...,), and the requested Jacobians in this order: d/d intrinsics (..., 2, 9),
        d/d (w, t) of the pose (..., 2, 6), d/d point (..., 2, 3)).
    """
    fx, fy, cx, cy, k1, k2, p1, p2, k3 = (intr[..., i] for i in range(9))
    xp = _xp(points)
    q = (rot @ points[..., None])[..., 0]  # R X
    pc = q + t
    z = pc[..., 2]
    iz = 1 / z
    x, y = pc[..., 0] * iz, pc[..., 1] * iz
    xx, yy, xy = x * x, y * y, x * y
    r2 = xx + yy
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * xy + p2 * (r2 + 2 * xx)
    yd = y * radial + p1 * (r2 + 2 * yy) + 2 * p2 * xy
    uv = _new(x, tuple(x.shape) + (2,))
    uv[..., 0], uv[..., 1] = fx * xd + cx, fy * yd + cy
    out = [uv, z]
    if not (want_intr or want_pose or want_points):
        return tuple(out)
    if want_intr:
        r4 = r2 * r2
        j = _new(x, tuple(x.shape) + (2, 9), 0)
        j[..., 0, 0], j[..., 0, 2], j[..., 1, 1], j[..., 1, 3] = xd, 1.0, yd, 1.0
        j[..., 0, 4], j[..., 0, 5], j[..., 0, 6], j[..., 0, 7], j[..., 0, 8] = (
            fx * x * r2, fx * x * r4, fx * 2 * xy, fx * (r2 + 2 * xx), fx * x * r4 * r2)
        j[..., 1, 4], j[..., 1, 5], j[..., 1, 6], j[..., 1, 7], j[..., 1, 8] = (
            fy * y * r2, fy * y * r4, fy * (r2 + 2 * yy), fy * 2 * xy, fy * y * r4 * r2)
        out.append(j)
    # d(pixels) / d(camera point): d(xd, yd)/d(x, y) times d(x, y)/d(X_c), scaled by (fx, fy).
    drad = k1 + r2 * (2 * k2 + 3 * k3 * r2)  # d radial / d r2
    a00 = radial + 2 * xx * drad + 2 * p1 * y + 6 * p2 * x
    a01 = 2 * xy * drad + 2 * p1 * x + 2 * p2 * y
    a11 = radial + 2 * yy * drad + 6 * p1 * y + 2 * p2 * x
    d_cam = _new(x, tuple(x.shape) + (2, 3))
    d_cam[..., 0, 0], d_cam[..., 0, 1], d_cam[..., 0, 2] = fx * a00 * iz, fx * a01 * iz, -fx * (a00 * x + a01 * y) * iz
    d_cam[..., 1, 0], d_cam[..., 1, 1], d_cam[..., 1, 2] = fy * a01 * iz, fy * a11 * iz, -fy * (a01 * x + a11 * y) * iz
    if want_pose:
        out.append(xp.concatenate([d_cam @ -skew(q), d_cam], -1))
    if want_points:
        out.append(d_cam @ xp.broadcast_to(rot, tuple(x.shape) + (3, 3)))
    return tuple(out)

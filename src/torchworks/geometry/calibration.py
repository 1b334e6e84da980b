"""Camera calibration from views of a planar target: Zhang's closed form, then Levenberg-Marquardt refinement.

The model is OpenCV's (``cv2.calibrateCamera`` with default flags): fx, fy, cx, cy, zero skew, distortion
(k1, k2, p1, p2, k3) and one (R, t) per view, so results are directly comparable. Corner detection is left to
the caller (e.g. ``cv2.findChessboardCorners``); this module only needs the 2D-3D correspondences.

The refinement uses the analytic Jacobian of the projection and the block structure of the problem: the 9 shared
parameters couple every view, each view's 6 pose parameters only its own points, so the normal equations are
reduced to a 9 x 9 system by a Schur complement on the views (all in NumPy float64: a few hundred points per
view are far below the size where tensor calls pay off). Two views suffice: with fewer than three, Zhang's
system is replaced by OpenCV's initialisation (principal point at the image centre, focal lengths from the
homographies), which needs the image size.

References:
    Zhang, "A Flexible New Technique for Camera Calibration", PAMI 22(11), 2000 (closed form, section 3.1).
    Hartley and Zisserman, "Multiple View Geometry", 2nd ed., 2004, A6.2 (Levenberg-Marquardt), A6.3 (sparse LM).
    OpenCV ``calib3d`` ``initIntrinsicParams2D`` (focal lengths from homographies with a fixed principal point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from torchworks.core.errors import ShapeError
from torchworks.geometry._reprojection import project, rodrigues
from torchworks.geometry.homography import find_homography
from torchworks.geometry.rotations import project_to_so3


@dataclass
class CalibrationResult:
    """Output of :func:`calibrate_camera`.

    Attributes:
        intrinsics: (3, 3) K.
        distortion: (5,) (k1, k2, p1, p2, k3).
        rotations: (V, 3, 3) world_to_cam rotation of each view (target frame -> camera).
        translations: (V, 3) world_to_cam translations, in the target's units.
        rms: root-mean-square reprojection error in pixels (OpenCV's returned value).
        iterations: LM iterations run.
    """

    intrinsics: torch.Tensor
    distortion: torch.Tensor
    rotations: torch.Tensor
    translations: torch.Tensor
    rms: float
    iterations: int


def _v(h: torch.Tensor, i: int, j: int) -> torch.Tensor:
    a, b = h[..., :, i], h[..., :, j]
    return torch.stack([a[..., 0] * b[..., 0], a[..., 0] * b[..., 1] + a[..., 1] * b[..., 0], a[..., 1] * b[..., 1],
                        a[..., 2] * b[..., 0] + a[..., 0] * b[..., 2], a[..., 2] * b[..., 1] + a[..., 1] * b[..., 2],
                        a[..., 2] * b[..., 2]], -1)


def intrinsics_from_homographies(homographies: torch.Tensor, zero_skew: bool = True) -> torch.Tensor:
    """Zhang's closed-form K from V >= 3 (or >= 2 with zero skew) plane-to-image homographies.

    Args:
        homographies: (V, 3, 3) H mapping target-plane (X, Y, 1) to pixels; better conditioned when the pixels
            were normalized (see :func:`calibrate_camera`).
        zero_skew: add the constraint B12 = 0 (skew 0, as OpenCV assumes).

    Returns:
        (3, 3) K.
    """
    h = homographies / homographies.norm(dim=(-1, -2), keepdim=True)
    rows = [_v(h, 0, 1), _v(h, 0, 0) - _v(h, 1, 1)]
    a = torch.cat(rows, 0)
    if zero_skew:
        a = torch.cat([a, a.new_tensor([[0.0, 1, 0, 0, 0, 0]]) * a.abs().max()], 0)
    b = torch.linalg.svd(a)[2][-1]
    b = b * torch.sign(b[0])  # B = K^-T K^-1 is positive definite up to the SVD's sign
    b11, b12, b22, b13, b23, b33 = b.unbind()
    v0 = (b12 * b13 - b11 * b23) / (b11 * b22 - b12**2)
    lam = b33 - (b13**2 + v0 * (b12 * b13 - b11 * b23)) / b11
    alpha = torch.sqrt(lam / b11)
    beta = torch.sqrt(lam * b11 / (b11 * b22 - b12**2))
    gamma = -b12 * alpha**2 * beta / lam
    u0 = gamma * v0 / beta - b13 * alpha**2 / lam
    zero, one = torch.zeros_like(alpha), torch.ones_like(alpha)
    return torch.stack([alpha, gamma, u0, zero, beta, v0, zero, zero, one]).reshape(3, 3)


def extrinsics_from_homography(intrinsics: torch.Tensor, homography: torch.Tensor
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, t) of a view from its plane homography: [r1 r2 t] ~ K^-1 H, with the target in front (t_z > 0).

    Args:
        intrinsics: (3, 3) K.
        homography: (..., 3, 3) plane-to-image H.

    Returns:
        (R (..., 3, 3) projected onto SO(3), t (..., 3)).
    """
    m = torch.linalg.solve(intrinsics, homography)
    lam = 1 / m[..., :, 0].norm(dim=-1)
    lam = lam * torch.sign(m[..., 2, 2])  # t_z = lam * m_22 must be positive
    r1, r2, t = (lam[..., None] * m[..., :, k] for k in range(3))
    rot = project_to_so3(torch.stack([r1, r2, torch.linalg.cross(r1, r2)], -1))
    return rot, t


def intrinsics_from_homographies_centered(homographies: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """K from V >= 1 plane-to-image homographies with the principal point fixed at the image centre (OpenCV's
    initialisation): each view's orthogonality constraints are linear in (1/fx^2, 1/fy^2) once the centre is
    subtracted, solved in least squares over the views.

    Args:
        homographies: (V, 3, 3) H mapping target-plane (X, Y, 1) to pixels.
        image_size: (height, width) in pixels.

    Returns:
        (3, 3) K with zero skew.
    """
    h_img, w_img = image_size
    cx, cy = (w_img - 1) / 2, (h_img - 1) / 2
    shift = torch.tensor([[1.0, 0, -cx], [0, 1, -cy], [0, 0, 1]], dtype=homographies.dtype)
    h = shift @ homographies
    h = h / h.norm(dim=(-1, -2), keepdim=True)
    a, b = h[..., :, 0], h[..., :, 1]  # columns h1, h2
    # h1^T B h2 = 0 and h1^T B h1 = h2^T B h2 with B = diag(1/fx^2, 1/fy^2, 1) after centring.
    rows = torch.cat([torch.stack([a[:, 0] * b[:, 0], a[:, 1] * b[:, 1]], -1),
                      torch.stack([a[:, 0] ** 2 - b[:, 0] ** 2, a[:, 1] ** 2 - b[:, 1] ** 2], -1)])
    rhs = torch.cat([-a[:, 2] * b[:, 2], -(a[:, 2] ** 2 - b[:, 2] ** 2)])
    inv_f2 = torch.linalg.lstsq(rows, rhs[:, None]).solution[:, 0]
    if not bool((inv_f2 > 0).all()):
        raise ValueError("the views do not determine the focal lengths (targets seen frontally or from similar "
                         "directions); add views with the target tilted differently")
    f = inv_f2.rsqrt()
    return torch.tensor([[float(f[0]), 0.0, cx], [0.0, float(f[1]), cy], [0.0, 0.0, 1.0]], dtype=homographies.dtype)


def calibrate_camera(object_points: torch.Tensor, image_points: torch.Tensor, iterations: int = 50,
                     image_size: tuple[int, int] | None = None) -> CalibrationResult:
    """Calibrate one camera from V >= 2 views of a planar target.

    Args:
        object_points: (N, 3) or (V, N, 3) target points with Z = 0 (e.g. chessboard corners in metres).
        image_points: (V, N, 2) detected pixels of the same points in each view.
        iterations: maximum LM iterations.
        image_size: (height, width) in pixels; required for two views (the principal point starts at the image
            centre), optional otherwise.

    Returns:
        A :class:`CalibrationResult`.
    """
    if image_points.dim() != 3 or image_points.shape[-1] != 2 or image_points.shape[0] < 2:
        raise ShapeError(f"image_points must have shape (V >= 2, N, 2), got {tuple(image_points.shape)}")
    views = image_points.shape[0]
    obj = object_points.to(torch.float64).expand(views, -1, -1)
    if obj.shape[1] != image_points.shape[1] or obj.shape[-1] != 3:
        raise ShapeError(f"object_points must be (N, 3) or (V, N, 3) matching image_points "
                         f"{tuple(image_points.shape)}, got {tuple(object_points.shape)}")
    if obj.shape[1] < 4:
        raise ShapeError(f"need at least 4 target points per view, got {obj.shape[1]}")
    if obj[..., 2].abs().max() > 1e-9 * obj.abs().max():
        raise ValueError("object_points must lie on the plane Z = 0 (a planar calibration target)")
    if views < 3 and image_size is None:
        raise ValueError("two views need image_size=(height, width): the principal point starts at the image centre")
    pix = image_points.to(torch.float64)
    # Normalize pixels (centre, unit scale) so that the homographies and Zhang's system are well conditioned.
    centre = pix.reshape(-1, 2).mean(0)
    scale = 1 / (pix.reshape(-1, 2) - centre).abs().max()
    n = torch.tensor([[scale, 0, -scale * centre[0]], [0, scale, -scale * centre[1]], [0, 0, 1]], dtype=pix.dtype)
    hs = find_homography(obj[..., :2], (pix - centre) * scale)
    h_pix = torch.linalg.solve(n, hs)
    k = torch.linalg.solve(n, intrinsics_from_homographies(hs)) if views >= 3 else \
        intrinsics_from_homographies_centered(h_pix, image_size)
    if not bool(torch.isfinite(k).all()):
        if image_size is None:
            raise ValueError("Zhang's closed form failed on these views; pass image_size=(height, width)")
        k = intrinsics_from_homographies_centered(h_pix, image_size)
    rot, t = extrinsics_from_homography(k, h_pix)
    state = _LMState(np.array([k[0, 0], k[1, 1], k[0, 2], k[1, 2], 0, 0, 0, 0, 0], dtype=np.float64),
                     rot.numpy().copy(), t.numpy().copy())
    state, it, cost = _levenberg_marquardt(state, obj.numpy(), pix.numpy(), iterations)
    p = torch.from_numpy(state.intr)
    kk = torch.tensor([[p[0], 0.0, p[2]], [0.0, p[1], p[3]], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return CalibrationResult(kk, p[4:9].clone(), torch.from_numpy(state.rot), torch.from_numpy(state.t),
                             math.sqrt(cost / (views * obj.shape[1])), it)


class _LMState:
    """Calibration parameters: intr = (fx, fy, cx, cy, k1, k2, p1, p2, k3), rot (V, 3, 3), t (V, 3)."""

    def __init__(self, intr: np.ndarray, rot: np.ndarray, t: np.ndarray):
        self.intr, self.rot, self.t = intr, rot, t

    def moved(self, d_intr: np.ndarray, d_pose: np.ndarray) -> _LMState:
        # Poses move by a left increment: R <- exp(w) R, t <- t + dt.
        return _LMState(self.intr + d_intr, rodrigues(d_pose[:, :3]) @ self.rot, self.t + d_pose[:, 3:])


def _project(state: _LMState, obj: np.ndarray, jacobian: bool):
    """Pixels (V, N, 2) of the target points (V, N, 3); with ``jacobian`` also d/d(intrinsics) (V, N, 2, 9) and
    d/d(w, t) of the view's pose (V, N, 2, 6)."""
    out = project(state.intr, state.rot[:, None], state.t[:, None], obj, want_intr=jacobian, want_pose=jacobian)
    return (out[0], out[2], out[3]) if jacobian else out[0]


def _levenberg_marquardt(state: _LMState, obj: np.ndarray, pix: np.ndarray, iterations: int):
    """LM with the views eliminated by a Schur complement; returns (state, iterations run, final squared cost)."""
    lam = 1e-3
    uv, j_intr, j_pose = _project(state, obj, True)
    res = (uv - pix).reshape(uv.shape[0], -1)  # (V, 2N)
    cost = float((res * res).sum())
    it = 0
    while it < iterations:
        it += 1
        v = res.shape[0]
        ji = j_intr.reshape(v, -1, 9)
        jp = j_pose.reshape(v, -1, 6)
        ji_t, jp_t = np.swapaxes(ji, 1, 2), np.swapaxes(jp, 1, 2)
        u_blk = ji.reshape(-1, 9).T @ ji.reshape(-1, 9)  # (9, 9) shared block
        w_blk = ji_t @ jp  # (V, 9, 6) coupling
        v_blk = jp_t @ jp  # (V, 6, 6) per view
        g_i = ji.reshape(-1, 9).T @ res.reshape(-1)
        g_p = (jp_t @ res[..., None])[..., 0]  # (V, 6)
        u_diag, v_diag = np.diag(u_blk).copy(), np.diagonal(v_blk, axis1=1, axis2=2).copy()
        improved = False
        for _ in range(10):  # raise the damping until the step lowers the cost
            ud = u_blk + np.diag(lam * u_diag)
            vd = v_blk.copy()
            vd[:, np.arange(6), np.arange(6)] += lam * v_diag
            vinv = np.linalg.inv(vd)
            wv = w_blk @ vinv  # (V, 9, 6)
            schur = ud - (wv @ np.swapaxes(w_blk, 1, 2)).sum(0)
            rhs = -g_i + (wv @ g_p[..., None]).sum(0)[:, 0]
            d_intr = np.linalg.solve(schur, rhs)
            d_pose = -(vinv @ (g_p + d_intr @ w_blk)[..., None])[..., 0]
            trial = state.moved(d_intr, d_pose)
            new_res = (_project(trial, obj, False) - pix).reshape(v, -1)
            new_cost = float((new_res * new_res).sum())
            if new_cost < cost:
                improved = True
                break
            lam *= 10
        if not improved:
            break
        rel = (cost - new_cost) / cost
        state, cost, lam = trial, new_cost, max(lam / 10, 1e-12)
        if rel < 1e-12 or float(np.abs(d_intr).max()) < 1e-12 * float(np.abs(state.intr[:4]).max()):
            break
        uv, j_intr, j_pose = _project(state, obj, True)
        res = (uv - pix).reshape(v, -1)
    return state, it, cost

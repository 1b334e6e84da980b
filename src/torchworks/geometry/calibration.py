"""Camera calibration from views of a planar target: Zhang's closed form, then Levenberg-Marquardt refinement.

The model is OpenCV's (``cv2.calibrateCamera`` with default flags): fx, fy, cx, cy, zero skew, distortion
(k1, k2, p1, p2, k3) and one (R, t) per view, so results are directly comparable. Corner detection is left to
the caller (e.g. ``cv2.findChessboardCorners``); this module only needs the 2D-3D correspondences.

References:
    Zhang, "A Flexible New Technique for Camera Calibration", PAMI 22(11), 2000 (closed form, section 3.1).
    Hartley and Zisserman, "Multiple View Geometry", 2nd ed., 2004, A6.2 (Levenberg-Marquardt).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from torchworks.core.errors import ShapeError
from torchworks.geometry.camera import world_to_pixels
from torchworks.geometry.homography import find_homography
from torchworks.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle, project_to_so3
from torchworks.geometry.se3 import _stack_pose


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


def _project(params: torch.Tensor, obj: torch.Tensor, views: int) -> torch.Tensor:
    # params (B, 9 + 6V) -> pixels (B, V, N, 2)
    fx, fy, cx, cy = params[:, 0], params[:, 1], params[:, 2], params[:, 3]
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    k = torch.stack([fx, zero, cx, zero, fy, cy, zero, zero, one], -1).reshape(-1, 1, 3, 3)
    dist = params[:, None, 4:9]
    ext = params[:, 9:].reshape(-1, views, 6)
    pose = _stack_pose(axis_angle_to_matrix(ext[..., :3]), ext[..., 3:])
    return world_to_pixels(obj, k, pose, dist)


def calibrate_camera(object_points: torch.Tensor, image_points: torch.Tensor, iterations: int = 50
                     ) -> CalibrationResult:
    """Calibrate one camera from V views of a planar target.

    Args:
        object_points: (N, 3) or (V, N, 3) target points with Z = 0 (e.g. chessboard corners in metres).
        image_points: (V, N, 2) detected pixels of the same points in each view, V >= 3.
        iterations: maximum LM iterations.

    Returns:
        A :class:`CalibrationResult`.
    """
    if image_points.dim() != 3 or image_points.shape[-1] != 2 or image_points.shape[0] < 3:
        raise ShapeError(f"image_points must have shape (V >= 3, N, 2), got {tuple(image_points.shape)}")
    views = image_points.shape[0]
    obj = object_points.to(torch.float64).expand(views, -1, -1)
    if obj.shape[1] != image_points.shape[1] or obj.shape[-1] != 3:
        raise ShapeError(f"object_points must be (N, 3) or (V, N, 3) matching image_points "
                         f"{tuple(image_points.shape)}, got {tuple(object_points.shape)}")
    if obj[..., 2].abs().max() > 1e-9 * obj.abs().max():
        raise ValueError("object_points must lie on the plane Z = 0 (a planar calibration target)")
    pix = image_points.to(torch.float64)
    # Normalize pixels (centre, unit scale) so that Zhang's linear system is well conditioned.
    centre = pix.reshape(-1, 2).mean(0)
    scale = 1 / (pix.reshape(-1, 2) - centre).abs().max()
    n = torch.tensor([[scale, 0, -scale * centre[0]], [0, scale, -scale * centre[1]], [0, 0, 1]], dtype=pix.dtype)
    hs = find_homography(obj[..., :2], (pix - centre) * scale)
    k = torch.linalg.solve(n, intrinsics_from_homographies(hs))
    rot, t = extrinsics_from_homography(k, torch.linalg.solve(n, hs))
    p = torch.cat([torch.stack([k[0, 0], k[1, 1], k[0, 2], k[1, 2]]), torch.zeros(5, dtype=pix.dtype),
                   torch.cat([matrix_to_axis_angle(rot), t], -1).flatten()])
    p, it = _levenberg_marquardt(p, obj, pix, iterations)
    res = _project(p[None], obj, views)[0] - pix
    ext = p[9:].reshape(views, 6)
    kk = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=p.dtype)
    kk[0, 0], kk[1, 1], kk[0, 2], kk[1, 2] = p[0], p[1], p[2], p[3]
    return CalibrationResult(kk, p[4:9].clone(), axis_angle_to_matrix(ext[:, :3]), ext[:, 3:].clone(),
                             float(res.pow(2).sum(-1).mean().sqrt()), it)


def _levenberg_marquardt(p: torch.Tensor, obj: torch.Tensor, pix: torch.Tensor, iterations: int):
    views = pix.shape[0]
    lam = 1e-3
    cost = (_project(p[None], obj, views)[0] - pix).pow(2).sum()
    it = 0
    for _ in range(iterations):
        it += 1
        # Central differences for all parameters in one batched projection (2P + 1 parameter sets).
        h = 1e-6 * p.abs().clamp(min=1.0)
        probe = torch.cat([p[None], p + torch.diag(h), p - torch.diag(h)])
        out = (_project(probe, obj, views) - pix).flatten(1)  # (2P + 1, M)
        res, plus, minus = out[0], out[1:1 + p.numel()], out[1 + p.numel():]
        jac = ((plus - minus) / (2 * h[:, None])).T  # (M, P)
        jtj, jtr = jac.T @ jac, jac.T @ res
        improved = False
        for _ in range(10):
            step = torch.linalg.solve(jtj + lam * torch.diag(jtj.diagonal()), -jtr)
            new_cost = (_project((p + step)[None], obj, views)[0] - pix).pow(2).sum()
            if new_cost < cost:
                p, lam, improved = p + step, max(lam / 10, 1e-12), True
                rel = float((cost - new_cost) / cost)
                cost = new_cost
                break
            lam *= 10
        if not improved or rel < 1e-12:
            break
    return p, it

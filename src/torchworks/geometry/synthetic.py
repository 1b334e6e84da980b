"""Random synthetic scenes with ground truth, for tests and benchmarks (seeded; never touches the global RNG).

Two-view families (:func:`two_view_scene`):

* ``"general"``: points spread in depth (the far/near depth ratio is drawn in [1.5, 4]), a baseline of 5-30 % of
  the median depth in a random direction, a rotation of up to 20 degrees;
* ``"planar"``: the same cameras, all points on one plane tilted up to 60 degrees from facing the camera;
* ``"rotation"``: a pure rotation (zero baseline), points at any depth.

Multi-view scenes (:func:`multi_view_scene`) place cameras on an arc looking at a cloud of points, for PnP and
bundle adjustment. Intrinsics have f in [500, 1500] px on a 640 x 480 image with the principal point near the centre.
Poses are ``world_to_cam`` (x_cam = R X + t), pixels follow OpenCV's convention.
"""

from __future__ import annotations

import math

import torch

from torchworks.geometry.camera import project_points
from torchworks.geometry.intrinsics import intrinsics_matrix
from torchworks.geometry.rotations import axis_angle_to_matrix

KINDS = ("general", "planar", "rotation")
WIDTH, HEIGHT = 640, 480


def _uniform(gen: torch.Generator, lo: float, hi: float, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=gen, dtype=torch.float64)


def _unit(gen: torch.Generator, *shape: int) -> torch.Tensor:
    v = torch.randn(*shape, 3, generator=gen, dtype=torch.float64)
    return v / v.norm(dim=-1, keepdim=True)


def random_intrinsics(gen: torch.Generator) -> torch.Tensor:
    """(3, 3) K: f in [500, 1500] px (fy within 2 % of fx), principal point within 20 px of the image centre."""
    f = float(_uniform(gen, 500.0, 1500.0, 1))
    fy = f * float(_uniform(gen, 0.98, 1.02, 1))
    c = _uniform(gen, -20.0, 20.0, 2)
    return intrinsics_matrix(f, fy, WIDTH / 2 + float(c[0]), HEIGHT / 2 + float(c[1]))


def _in_image(pix: torch.Tensor) -> torch.Tensor:
    return (pix[:, 0] >= 0) & (pix[:, 0] <= WIDTH - 1) & (pix[:, 1] >= 0) & (pix[:, 1] <= HEIGHT - 1)


def two_view_scene(kind: str, n: int = 200, noise: float = 0.5, outliers: float = 0.0, seed: int = 0,
                   baseline: tuple[float, float] = (0.05, 0.3)) -> dict:
    """A calibrated image pair of one of the :data:`KINDS`.

    Args:
        kind: "general", "planar" or "rotation" (see the module docstring).
        n: number of correspondences (points visible in both images; drawn until there are n).
        noise: standard deviation of the Gaussian noise added to every pixel coordinate, in pixels.
        outliers: fraction of correspondences whose second point is replaced by a uniform random pixel.
        seed: the scene's seed.
        baseline: range of the baseline length as a fraction of the median depth (not used for "rotation").

    Returns:
        A dict: K (3, 3); R (3, 3), t (3,) with X2 = R X1 + t (t = 0 for "rotation"); X (n, 3) points in camera-1
        coordinates; x1, x2 (n, 2) pixels; inlier (n,) bool (False for the replaced correspondences).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if n < 1 or noise < 0 or not 0 <= outliers < 1:
        raise ValueError(f"need n >= 1, noise >= 0 and 0 <= outliers < 1, got {n}, {noise}, {outliers}")
    gen = torch.Generator().manual_seed(seed)
    K = random_intrinsics(gen)
    near = float(_uniform(gen, 2.0, 6.0, 1))
    far = near * float(_uniform(gen, 1.5, 4.0, 1))
    R = axis_angle_to_matrix(_unit(gen) * math.radians(float(_uniform(gen, 0.0, 20.0, 1))))
    length = 0.0 if kind == "rotation" else float(_uniform(gen, *baseline, 1)) * math.sqrt(near * far)
    t = _unit(gen) * length
    if kind == "planar":  # n^T X = d, normal tilted up to 60 deg from the optical axis
        tilt = math.radians(float(_uniform(gen, 0.0, 60.0, 1)))
        az = float(_uniform(gen, 0.0, 2 * math.pi, 1))
        normal = torch.tensor([math.sin(tilt) * math.cos(az), math.sin(tilt) * math.sin(az), math.cos(tilt)],
                              dtype=torch.float64)
        dist = math.sqrt(near * far)
    kinv = torch.linalg.inv(K)
    pts = []
    while sum(len(p) for p in pts) < n:
        m = 4 * n
        pix = torch.stack([_uniform(gen, 0, WIDTH - 1, m), _uniform(gen, 0, HEIGHT - 1, m)], -1)
        rays = torch.cat([pix, torch.ones(m, 1, dtype=torch.float64)], -1) @ kinv.T  # z = 1
        if kind == "planar":
            depth = dist / (rays @ normal)
        else:
            depth = _uniform(gen, near, far, m)
        X = rays * depth[:, None]
        X2 = X @ R.T + t
        ok = (depth > 0) & (X2[:, 2] > 0.1 * near)
        ok &= _in_image(project_points(X2.clamp(min=-1e9), K))
        pts.append(X[ok])
    X = torch.cat(pts)[:n]
    x1 = project_points(X, K)
    x2 = project_points(X @ R.T + t, K)
    x1 = x1 + noise * torch.randn(x1.shape, generator=gen, dtype=torch.float64)
    x2 = x2 + noise * torch.randn(x2.shape, generator=gen, dtype=torch.float64)
    inlier = torch.ones(n, dtype=torch.bool)
    k = int(round(outliers * n))
    if k:
        idx = torch.randperm(n, generator=gen)[:k]
        x2[idx] = torch.stack([_uniform(gen, 0, WIDTH - 1, k), _uniform(gen, 0, HEIGHT - 1, k)], -1)
        inlier[idx] = False
    return {"K": K, "R": R, "t": t, "X": X, "x1": x1, "x2": x2, "inlier": inlier}


def look_at(centers: torch.Tensor, target: torch.Tensor, up: torch.Tensor | None = None) -> torch.Tensor:
    """(V, 3, 3) world_to_cam rotations of cameras at ``centers`` (V, 3) looking at ``target`` (3,) (OpenCV axes:
    z towards the target, y down along ``-up``; default up = (0, -1, 0), so world y points down as in OpenCV)."""
    up = torch.tensor([0.0, -1.0, 0.0], dtype=centers.dtype) if up is None else up
    z = target - centers
    z = z / z.norm(dim=-1, keepdim=True)
    x = torch.linalg.cross(-up.expand_as(z), z)
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.linalg.cross(z, x)
    return torch.stack([x, y, z], -2)  # rows: camera axes in world coordinates


def multi_view_scene(views: int = 6, points: int = 300, noise: float = 0.5, seed: int = 0,
                     arc_degrees: float = 60.0, radius: float = 6.0) -> dict:
    """Cameras on an arc around a cloud of points, every point seen by every camera.

    Args:
        views: number of cameras (V).
        points: number of 3D points (N), uniform in a ball of radius 1.5 around the origin.
        noise: Gaussian pixel noise (standard deviation, pixels).
        seed: the scene's seed.
        arc_degrees: angular span of the camera centres around the scene.
        radius: distance of the camera centres from the origin (with up to 10 % jitter).

    Returns:
        A dict: K (3, 3) shared intrinsics; R (V, 3, 3), t (V, 3) world_to_cam; X (N, 3) world points; x (V, N, 2)
        noisy pixels; x_true (V, N, 2) noise-free pixels.
    """
    gen = torch.Generator().manual_seed(seed)
    K = random_intrinsics(gen)
    X = _unit(gen, points) * _uniform(gen, 0.0, 1.0, points, 1).pow(1 / 3) * 1.5
    ang = torch.linspace(-0.5, 0.5, views, dtype=torch.float64) * math.radians(arc_degrees)
    r = radius * _uniform(gen, 0.9, 1.1, views)
    height = _uniform(gen, -0.5, 0.5, views)
    centers = torch.stack([r * torch.sin(ang), height, -r * torch.cos(ang)], -1)
    R = look_at(centers, _uniform(gen, -0.2, 0.2, 3))
    # A small random roll about each optical axis, so no two cameras share their x axis.
    roll = axis_angle_to_matrix(torch.stack([torch.zeros(views, dtype=torch.float64)] * 2
                                            + [_uniform(gen, -0.2, 0.2, views)], -1))
    R = roll @ R
    t = -(R @ centers[..., None])[..., 0]
    x_true = project_points(X @ R.transpose(-1, -2) + t[:, None, :], K)
    x = x_true + noise * torch.randn(x_true.shape, generator=gen, dtype=torch.float64)
    return {"K": K, "R": R, "t": t, "X": X, "x": x, "x_true": x_true}

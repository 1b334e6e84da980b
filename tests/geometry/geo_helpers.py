"""Helpers shared by the geometry tests: real-data lookup and random scenes (not a test module)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def data_dir(name: str) -> Path:
    """The shared real-data folder ``name``; skips the calling test when it is absent (e.g. on a user machine)."""
    path = DATA.resolve() / name
    if not path.is_dir():
        pytest.skip(f"real data {name!r} not found at {path}")
    return path


def random_rotations(n: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """(n, 3, 3) uniform random rotations from normalized Gaussian quaternions."""
    from torchworks.geometry.rotations import quaternion_to_matrix

    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=g, dtype=dtype)
    return quaternion_to_matrix(q / q.norm(dim=-1, keepdim=True), order="wxyz")


def two_view_scene(n: int = 50, seed: int = 0, noise: float = 0.0, planar: bool = False, baseline: float = 1.0,
                   dtype=torch.float64):
    """A synthetic calibrated pair with all points in front of both cameras.

    Returns a dict with K (3, 3), R, t (relative pose, x2 = R x1 + t), X (n, 3) in camera-1 coordinates,
    x1, x2 (n, 2) pixels (with optional Gaussian pixel noise).
    """
    from torchworks.geometry.camera import intrinsics_matrix, project_points
    from torchworks.geometry.rotations import axis_angle_to_matrix

    g = torch.Generator().manual_seed(seed)
    K = intrinsics_matrix(800.0, 780.0, 320.0, 240.0, dtype=dtype)
    R = axis_angle_to_matrix(torch.tensor([0.05, -0.2, 0.03], dtype=dtype))
    t = torch.tensor([-1.0, 0.1, 0.2], dtype=dtype) * baseline
    xy = (torch.rand(n, 2, generator=g, dtype=dtype) - 0.5) * 4
    if planar:  # the plane z = 6 + 0.3 x - 0.2 y
        X = torch.cat([xy, (6 + 0.3 * xy[:, 0] - 0.2 * xy[:, 1])[:, None]], -1)
    else:
        z = 4 + 6 * torch.rand(n, generator=g, dtype=dtype)
        X = torch.cat([xy * z[:, None] / 5, z[:, None]], -1)
    x1 = project_points(X, K)
    x2 = project_points(X @ R.T + t, K)
    if noise:
        x1 = x1 + noise * torch.randn(x1.shape, generator=g, dtype=dtype)
        x2 = x2 + noise * torch.randn(x2.shape, generator=g, dtype=dtype)
    return {"K": K, "R": R, "t": t, "X": X, "x1": x1, "x2": x2}

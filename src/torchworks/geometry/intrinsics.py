"""Pinhole intrinsics K and the pixel <-> normalized-coordinate maps (the bottom of the camera modules).

Pixel convention: OpenCV's, integer coordinates at pixel centres, u = column (right), v = row (down). Both
:mod:`torchworks.geometry.camera` and :mod:`torchworks.geometry.distortion` build on this module (it imports neither),
and ``camera`` re-exports everything here.

References:
    Hartley and Zisserman, "Multiple View Geometry", 2nd ed., 2004, section 6.1 (K with skew).
"""

from __future__ import annotations

import torch

from torchworks.geometry._checks import check_shape


def intrinsics_matrix(fx, fy, cx, cy, skew=0.0, dtype: torch.dtype | None = None) -> torch.Tensor:
    """K = [[fx, skew, cx], [0, fy, cy], [0, 0, 1]].

    Args:
        fx, fy: focal lengths in pixels (floats or (...,) tensors, broadcast together).
        cx, cy: principal point in pixels.
        skew: skew in pixels (0 for square-aligned sensors).
        dtype: output dtype (default: float64 for Python numbers, else the tensors' dtype).

    Returns:
        (..., 3, 3) intrinsics matrices.
    """
    vals = [torch.as_tensor(v) for v in (fx, fy, cx, cy, skew)]
    if dtype is None:
        tensor_dtypes = [v.dtype for v in vals if v.is_floating_point() and v.dim() > 0]
        dtype = tensor_dtypes[0] if tensor_dtypes else torch.float64
    fx, fy, cx, cy, s = torch.broadcast_tensors(*[v.to(dtype) for v in vals])
    o, i = torch.zeros_like(fx), torch.ones_like(fx)
    return torch.stack([fx, s, cx, o, fy, cy, o, o, i], -1).unflatten(-1, (3, 3))


def intrinsics_params(intrinsics: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(fx, fy, cx, cy, skew), each (...,), of a (..., 3, 3) intrinsics matrix."""
    check_shape(intrinsics, (3, 3), "intrinsics")
    k = intrinsics
    return k[..., 0, 0], k[..., 1, 1], k[..., 0, 2], k[..., 1, 2], k[..., 0, 1]


def normalized_to_pixels(normalized: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Apply K to normalized image coordinates (x/z, y/z).

    Args:
        normalized: (..., N, 2) normalized coordinates (unitless).
        intrinsics: (..., 3, 3) K.

    Returns:
        (..., N, 2) pixels.
    """
    check_shape(normalized, (None, 2), "normalized")
    fx, fy, cx, cy, s = (p[..., None] for p in intrinsics_params(intrinsics))
    x, y = normalized[..., 0], normalized[..., 1]
    return torch.stack([fx * x + s * y + cx, fy * y + cy], -1)


def pixels_to_normalized(pixels: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Apply K^-1 to pixels (closed form for the upper-triangular K, no matrix inverse).

    Args:
        pixels: (..., N, 2) pixel coordinates.
        intrinsics: (..., 3, 3) K with fx, fy != 0.

    Returns:
        (..., N, 2) normalized coordinates.
    """
    check_shape(pixels, (None, 2), "pixels")
    fx, fy, cx, cy, s = (p[..., None] for p in intrinsics_params(intrinsics))
    y = (pixels[..., 1] - cy) / fy
    x = (pixels[..., 0] - cx - s * y) / fx
    return torch.stack([x, y], -1)

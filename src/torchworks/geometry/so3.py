"""SO(3) membership: the tolerance, the check every rotation input goes through, and projection onto SO(3).

Functions that take a rotation matrix raise ValueError for inputs that are not rotations (det <= 0 or not
orthonormal within :func:`rotation_tolerance`) unless called with ``project=True``, which replaces the input by
the nearest rotation; OpenCV and kornia silently return garbage for such inputs (opencv#16778).

References:
    Umeyama, "Least-squares estimation of transformation parameters between two point patterns", PAMI 1991.
"""

from __future__ import annotations

import torch

from torchworks.geometry._checks import check_float, check_shape


def rotation_tolerance(dtype: torch.dtype) -> float:
    """Largest max|R^T R - I| accepted as a rotation: 1e-6 in float64, 1e-4 in float32 and below."""
    return 1e-6 if dtype == torch.float64 else 1e-4


def is_rotation_matrix(matrix: torch.Tensor, atol: float | None = None) -> torch.Tensor:
    """Whether each matrix is in SO(3): orthonormal within ``atol`` and det > 0.

    Args:
        matrix: (..., 3, 3) float matrices.
        atol: tolerance on max|R^T R - I|; default :func:`rotation_tolerance` of the dtype.

    Returns:
        (...,) bool tensor.
    """
    check_shape(matrix, (3, 3), "matrix")
    atol = rotation_tolerance(matrix.dtype) if atol is None else atol
    # R^T R and det by elementwise products: batched 3x3 matmul/det kernels are slow for 1e5 tiny matrices.
    c0, c1, c2 = matrix[..., :, 0], matrix[..., :, 1], matrix[..., :, 2]
    dots = torch.stack([(c0 * c0).sum(-1) - 1, (c1 * c1).sum(-1) - 1, (c2 * c2).sum(-1) - 1,
                        (c0 * c1).sum(-1), (c0 * c2).sum(-1), (c1 * c2).sum(-1)], -1)
    err = dots.abs().amax(-1)
    det = (c0 * torch.linalg.cross(c1, c2)).sum(-1)
    return (err <= atol) & (det > 0)


def project_to_so3(matrix: torch.Tensor) -> torch.Tensor:
    """Nearest rotation in Frobenius norm (special orthogonal Procrustes): U diag(1, 1, det(U V^T)) V^T.

    Args:
        matrix: (..., 3, 3) float matrices (any, e.g. a noisy or reflected estimate).

    Returns:
        (..., 3, 3) rotation matrices.

    References:
        Umeyama, "Least-squares estimation of transformation parameters between two point patterns", PAMI 1991.
    """
    check_shape(matrix, (3, 3), "matrix")
    u, _, vh = torch.linalg.svd(matrix)
    d = torch.linalg.det(u @ vh)
    # Flipping the last singular direction (not negating R) gives the nearest proper rotation when det < 0.
    u = torch.cat([u[..., :2], u[..., 2:] * d[..., None, None]], dim=-1)
    return u @ vh


def rotation_input(matrix: torch.Tensor, project: bool) -> torch.Tensor:
    check_shape(matrix, (3, 3), "matrix")
    check_float(matrix, "matrix")
    if project:
        return project_to_so3(matrix)
    ok = is_rotation_matrix(matrix.detach())
    if not bool(ok.all()):
        bad = (~ok).nonzero()[0].tolist()
        raise ValueError(
            f"matrix is not a rotation (det <= 0 or not orthonormal within {rotation_tolerance(matrix.dtype)}), "
            f"first at batch index {bad}: {matrix.detach()[tuple(bad)].tolist()}; pass project=True to project "
            "onto SO(3)")
    return matrix

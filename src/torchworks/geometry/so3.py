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
    return _is_rotation_entries(matrix_entries(matrix), atol).reshape(matrix.shape[:-2])


def _is_rotation_entries(r: torch.Tensor, atol: float) -> torch.Tensor:
    # max|R^T R - I| and det from contiguous rows (3, 3, M), with in-place multiply-adds: batched 3x3
    # matmul/det kernels are slow for 1e5 tiny matrices, and so are reductions across the leading dimensions.
    col = [r[:, j] for j in range(3)]  # col[j][i] = R_ij over the batch
    err = None
    for j, k in ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)):
        d = col[j][0] * col[k][0]
        d.addcmul_(col[j][1], col[k][1]).addcmul_(col[j][2], col[k][2])
        if j == k:
            d.sub_(1)
        d.abs_()
        err = d if err is None else torch.maximum(err, d, out=err)
    det = (r[0, 0] * (r[1, 1] * r[2, 2] - r[1, 2] * r[2, 1]) - r[0, 1] * (r[1, 0] * r[2, 2] - r[1, 2] * r[2, 0])
           + r[0, 2] * (r[1, 0] * r[2, 1] - r[1, 1] * r[2, 0]))
    return (err <= atol) & (det > 0)


def matrix_entries(matrix: torch.Tensor) -> torch.Tensor:
    """The entries of (..., 3, 3) matrices as a (3, 3, M) tensor of contiguous rows (M = batch size).

    Elementwise formulas over many small matrices run several times faster on this layout than on strided
    views of the (..., 3, 3) tensor; the copy costs one pass.
    """
    return matrix.reshape(-1, 9).transpose(0, 1).contiguous().view(3, 3, -1)


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


def require_rotation(matrix: torch.Tensor, name: str) -> None:
    """Raise ValueError unless every (..., 3, 3) ``matrix`` is a rotation (orthonormal within the dtype's
    :func:`rotation_tolerance` and det = +1): reflections such as -I and scaled matrices are refused, naming
    ``name``. Used by every function that expects a rotation and has no ``project`` option."""
    check_shape(matrix, (3, 3), name)
    check_float(matrix, name)
    ok = is_rotation_matrix(matrix.detach())
    if not bool(ok.all()):
        bad = tuple((~ok).nonzero()[0].tolist())
        m = matrix.detach()[bad]
        raise ValueError(f"{name} is not a rotation (det {float(torch.linalg.det(m)):.3g}, "
                         f"max|R^T R - I| {float((m.T @ m - torch.eye(3, dtype=m.dtype)).abs().max()):.3g}; "
                         f"tolerance {rotation_tolerance(matrix.dtype)})"
                         + (f" at batch index {list(bad)}" if bad else "") + f": {m.tolist()}")


def rotation_input(matrix: torch.Tensor, project: bool) -> torch.Tensor:
    check_shape(matrix, (3, 3), "matrix")
    check_float(matrix, "matrix")
    if project:
        return project_to_so3(matrix)
    _raise_unless_rotations(matrix, is_rotation_matrix(matrix.detach()))
    return matrix


def rotation_input_entries(matrix: torch.Tensor, project: bool) -> torch.Tensor:
    """:func:`rotation_input` returning the entries as :func:`matrix_entries` rows (3, 3, M), copied once."""
    check_shape(matrix, (3, 3), "matrix")
    check_float(matrix, "matrix")
    if project:
        return matrix_entries(project_to_so3(matrix))
    r = matrix_entries(matrix)
    _raise_unless_rotations(matrix, _is_rotation_entries(r.detach(), rotation_tolerance(matrix.dtype))
                            .reshape(matrix.shape[:-2]))
    return r


def _raise_unless_rotations(matrix: torch.Tensor, ok: torch.Tensor) -> None:
    if not bool(ok.all()):
        bad = (~ok).nonzero()[0].tolist()
        raise ValueError(
            f"matrix is not a rotation (det <= 0 or not orthonormal within {rotation_tolerance(matrix.dtype)}), "
            f"first at batch index {bad}: {matrix.detach()[tuple(bad)].tolist()}; pass project=True to project "
            "onto SO(3)")

"""The 5-point essential-matrix solver (minimal relative pose of two calibrated cameras), batched, float64.

Algorithm (Stewenius' Groebner-basis / action-matrix form of Nister's method):

1. Each correspondence gives one linear equation kron(xn2, xn1) . vec(E) = 0 on normalized coordinates
   xn = K^-1 x. Five of them leave a 4-dimensional null space, E = x X + y Y + z Z + W (w fixed to 1).
2. E is essential iff det(E) = 0 and 2 E E^T E - tr(E E^T) E = 0: ten cubic equations in (x, y, z), written as a
   10 x 20 matrix over the 20 monomials of degree <= 3.
3. Eliminating the 10 cubic monomials (a 10 x 10 linear solve, i.e. Gauss-Jordan on the 10 x 20 matrix) expresses
   each of them in the 10 monomials B = (x^2, xy, xz, y^2, yz, z^2, x, y, z, 1). Multiplication by x maps B into
   cubics-with-an-x-factor and into B itself, which gives a 10 x 10 action matrix M with M b(s) = x_s b(s).
4. Its eigenvalues are the x of the (up to 10, complex) solutions and its eigenvectors are b evaluated at them,
   from which y = b_y / b_1 and z = b_z / b_1. Only the real ones are returned.

The action-matrix eigenproblem is equivalent to Nister's 10th-degree polynomial (its characteristic polynomial)
but is better conditioned than extracting the polynomial coefficients and bracketing its roots. Everything is
batched: thousands of minimal problems (RANSAC hypotheses) are one ``solve`` and one ``eig`` call. (Tried and
dropped, 2026-12: Nister's polynomial with its real roots bracketed on an angle grid, refined by Newton and
certified by a Sturm count, vectorised in NumPy, was 1.3-1.4x slower per sample at batches of 64 and 192: some
280 small array operations cost more than the 10 x 10 ``eig`` (about 13 of the 28 us per sample), and close real
roots, frequent in these scenes, sent 3-6 % of the samples back to ``eig``.)

More than five points are accepted: the 4-dimensional null space is then the least-squares one (the four
smallest right singular vectors), which makes the solver a cheap non-minimal estimator as well.

References:
    Nister, "An efficient solution to the five-point relative pose problem", PAMI 26(6), 2004.
    Stewenius, Engels and Nister, "Recent developments on direct relative orientation", ISPRS Journal of
    Photogrammetry and Remote Sensing 60(4), 2006 (the 10 x 20 elimination and the action matrix used here).
    Reference implementations behave alike: OpenCV ``findEssentialMat`` (``modules/calib3d/src/five-point.cpp``,
    Nister's polynomial with Sturm-free root finding) and kornia ``find_essential`` (``epipolar/essential.py``);
    they differ in how the candidates are packed (OpenCV stacks them as a 3k x 3 matrix, kornia pads to 10
    without a validity mask).
"""

from __future__ import annotations

import torch

from torchworks.core.errors import ShapeError
from torchworks.geometry.camera import pixels_to_normalized
from torchworks.geometry.epipolar import _check_pairs, _design, _unit_sign

MAX_SOLUTIONS = 10

# The 20 monomials of degree <= 3 in (x, y, z) are ordered as the 10 cubics (eliminated) followed by the basis
# B = (x^2, xy, xz, y^2, yz, z^2, x, y, z, 1); the x-multiples of B's first six entries are the first six cubics,
# in the same order (see :func:`_monomials`).


def _monomials(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Roots (...,) x3 -> (the 20 monomials in ``_CUBIC`` order (..., 20), their gradients (..., 20, 3))."""
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    xx, xy, xz, yy, yz, zz = x * x, x * y, x * z, y * y, y * z, z * z
    m = [xx * x, xx * y, xx * z, xy * y, xy * z, xz * z, yy * y, yy * z, yz * z, zz * z, xx, xy, xz, yy, yz, zz,
         x, y, z, one]
    dx = [3 * xx, 2 * xy, 2 * xz, yy, yz, zz, zero, zero, zero, zero, 2 * x, y, z, zero, zero, zero, one, zero,
          zero, zero]
    dy = [zero, xx, zero, 2 * xy, xz, zero, 3 * yy, 2 * yz, zz, zero, zero, x, zero, 2 * y, z, zero, zero, one,
          zero, zero]
    dz = [zero, zero, xx, zero, xy, 2 * xz, zero, yy, 2 * yz, 3 * zz, zero, zero, x, zero, y, 2 * z, zero, zero,
          one, zero]
    return torch.stack(m, -1), torch.stack([torch.stack(d, -1) for d in (dx, dy, dz)], -1)


# The ten constraints are cubics in (x, y, z) with 20 coefficients each: their values at 20 nodes that are
# unisolvent for cubics (the principal lattice {(i, j, k) - 1 : i + j + k <= 3}, condition number ~121) determine
# them through the inverse of the nodes' monomial matrix. Evaluating E = xX + yY + zZ + W at the nodes is a few
# batched 3 x 3 products, far cheaper than expanding the polynomial products symbolically.
_NODES = torch.tensor([(i - 1, j - 1, k - 1, 1) for i in range(4) for j in range(4) for k in range(4)
                       if i + j + k <= 3], dtype=torch.float64)  # (20, 4): weights of X, Y, Z, W


# values (..., 20 nodes) @ this = coefficients (..., 20 monomials)
_NODE_INVERSE_T = torch.linalg.inv(_monomials(*_NODES[:, :3].unbind(-1))[0]).T.contiguous()
_NODES_T = _NODES.T.contiguous()  # (4, 20)
_ACTION_TAIL = torch.zeros(4, 10, dtype=torch.float64)  # rows 6-9 of the action matrix: x * (x, y, z, 1)
_ACTION_TAIL[0, 0] = _ACTION_TAIL[1, 1] = _ACTION_TAIL[2, 2] = _ACTION_TAIL[3, 6] = 1.0


def _polish(coeffs: torch.Tensor, xyz: torch.Tensor, steps: int = 1) -> torch.Tensor:
    """Gauss-Newton on the ten cubic constraints: (S, 10, 20) coefficients, (S, 3) roots -> refined roots.

    The eigen-decomposition leaves errors up to ~1e-8 on ill-conditioned samples; one quadratically convergent
    step brings them to rounding level.
    """
    for _ in range(steps):
        m, dm = _monomials(*xyz.unbind(-1))
        r = (coeffs @ m[..., None])[..., 0]  # (S, 10)
        j = coeffs @ dm  # (S, 10, 3)
        step, info = torch.linalg.solve_ex(j.transpose(-1, -2) @ j, (j.transpose(-1, -2) @ r[..., None])[..., 0])
        good = (info == 0)[..., None] & torch.isfinite(step)
        xyz = xyz - torch.where(good, step, torch.zeros_like(step))
    return xyz


def _cubic_constraints(basis: torch.Tensor) -> torch.Tensor:
    """(..., 4, 9) null-space basis (X, Y, Z, W rows) -> (..., 10, 20) coefficients of the ten cubic constraints
    det(E) = 0 and 2 E E^T E - tr(E E^T) E = 0 (rows: det, then the nine entries of the matrix constraint)."""
    # The 3 x 3 products are written as broadcast sums over a (3, 3, M) layout, M = samples x nodes innermost and
    # contiguous: batched 3 x 3 matmuls (one per node and sample) cost four times as much on the CPU, and with the
    # sample axis outermost every elementwise kernel ran over rows of only 20 nodes (1.3x slower at 64-192
    # samples; the values are bit for bit the same).
    batch, count = basis.shape[:-2], basis.shape[:-2].numel() * _NODES.shape[0]  # count = M
    e = (basis.transpose(-1, -2) @ _NODES_T.to(basis)).movedim(-2, 0).reshape(3, 3, count)  # (3, 3, M): E at nodes
    eet = (e[:, None] * e[None]).sum(2)  # (3, 3, M): E E^T
    trace = eet[0, 0] + eet[1, 1] + eet[2, 2]  # (M,)
    rows = 2 * (eet[:, :, None] * e[None]).sum(1) - trace * e
    r0, r1, r2 = e  # (3, M) each; det E = r0 . (r1 x r2)
    det = (r0[0] * (r1[1] * r2[2] - r1[2] * r2[1]) + r0[1] * (r1[2] * r2[0] - r1[0] * r2[2])
           + r0[2] * (r1[0] * r2[1] - r1[1] * r2[0]))  # (M,)
    values = torch.cat([det[None], rows.reshape(9, count)]).reshape(10, batch.numel(), _NODES.shape[0])  # (10, B, 20)
    return (values @ _NODE_INVERSE_T.to(basis)).movedim(0, -2).reshape(*batch, 10, 20)


def _null_space4(n1: torch.Tensor, n2: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """(..., N, 2) normalized points -> (..., 4, 9) orthonormal (least-squares for N > 5) null-space basis."""
    a = _design(n1, n2)  # (..., N, 9)
    if weights is not None:
        a = a * weights.clamp(min=0).sqrt()[..., None]
    if a.shape[-2] == 5:  # complete QR of A^T: its last four columns span the exact null space
        q = torch.linalg.qr(a.transpose(-1, -2), mode="complete")[0]  # (..., 9, 9)
        return q[..., 5:].transpose(-1, -2)
    if a.shape[-2] > 9:
        a = torch.linalg.qr(a, mode="r")[1]  # same right singular vectors, 9 x 9
    return torch.linalg.svd(a, full_matrices=True)[2][..., -4:, :]


def solve_5point_normalized(normalized1: torch.Tensor, normalized2: torch.Tensor,
                            weights: torch.Tensor | None = None, imag_tol: float = 1e-9, polish: bool = True
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """All real essential matrices through five (or more) normalized correspondences.

    Args:
        normalized1: (..., N, 2) normalized coordinates K1^-1 x1 (dehomogenized) in image 1, N >= 5, float64
            recommended (float32 loses the 1e-9 agreement but still runs).
        normalized2: (..., N, 2) corresponding normalized coordinates in image 2.
        weights: optional (..., N) non-negative weights of the epipolar equations (N > 5: weighted least-squares
            null space, used by LO-RANSAC).
        imag_tol: a root counts as real when |Im x| <= imag_tol (1 + |Re x|).
        polish: one Gauss-Newton step on the cubic constraints per real root (errors of the eigen-decomposition,
            up to ~1e-8 on ill-conditioned samples, drop to rounding level). RANSAC turns it off: its hypotheses
            are scored, then refined by LM anyway.

    Returns:
        (E (..., 10, 3, 3), valid (..., 10) bool). Valid slots hold E with xn2^T E xn1 = 0, singular values
        (1, 1, 0) and the sign of :func:`torchworks.geometry.epipolar.find_fundamental` (largest-magnitude entry
        positive); invalid slots (complex roots, degenerate samples) hold zeros. Valid solutions come first;
        their order is otherwise not meaningful. Not differentiable (eigenvector selection).
    """
    _check_pairs(normalized1, normalized2, 5)
    e, valid = _solve_raw(normalized1.detach(), normalized2.detach(), weights, imag_tol, polish)
    e = _unit_sign(e) * 2**0.5  # singular values (1, 1, 0) for an exact essential matrix
    valid = valid & torch.isfinite(e).flatten(-2).all(-1)
    e = torch.where(valid[..., None, None], e, torch.zeros_like(e))
    order = torch.argsort((~valid).to(torch.int8), dim=-1, stable=True)  # valid solutions first
    e = e.gather(-3, order[..., None, None].expand_as(e))
    return e, valid.gather(-1, order)


def _solve_raw(n1: torch.Tensor, n2: torch.Tensor, weights: torch.Tensor | None, imag_tol: float = 1e-9,
               polish: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The solver without the output conventions: (E (..., 10, 3, 3) of arbitrary scale and sign, in the
    eigenvalues' order; valid (..., 10)), invalid slots unspecified (possibly non-finite). RANSAC uses it
    directly: it scores up to scale and drops invalid slots itself."""
    basis = _null_space4(n1, n2, weights)  # (..., 4, 9)
    coeffs = _cubic_constraints(basis)  # (..., 10, 20)
    # Gauss-Jordan on the 10 x 20 matrix: cubic monomials = G @ B with G = -A_cubic^-1 A_rest.
    g, info = torch.linalg.solve_ex(coeffs[..., :10], -coeffs[..., 10:])  # (..., 10, 10)
    ok = (info == 0) & torch.isfinite(g).flatten(-2).all(-1)
    # x * (x^2, xy, xz, y^2, yz, z^2) = (x^3, x^2y, x^2z, xy^2, xyz, xz^2) = rows 0-5 of G; x * (x, y, z, 1) are
    # fixed unit rows. Failed samples get zero rows: eig must not see NaN.
    action = torch.cat([torch.where(ok[..., None, None], g[..., :6, :], 0.0),
                        _ACTION_TAIL.to(g).expand(*g.shape[:-2], 4, 10)], -2)
    values, vectors = torch.linalg.eig(action)  # (..., 10), (..., 10, 10) with eigenvectors as columns
    # For a real eigenvalue of a real matrix LAPACK returns a real eigenvector, so y and z are ratios of real parts.
    vr, v = values.real, vectors.real
    one = v[..., 9, :]
    real = (values.imag.abs() <= imag_tol * (1 + vr.abs())) & (one.abs() > 1e-12 * v.abs().amax(-2))
    valid = real & ok[..., None]
    yz = v[..., 7:9, :] / torch.where(valid, one, 1.0)[..., None, :]  # (..., 2, 10)
    coef = torch.stack([vr, yz[..., 0, :], yz[..., 1, :], torch.ones_like(vr)], -1)  # (..., 10, 4): x, y, z, 1
    if polish:
        sel = valid.nonzero(as_tuple=True)  # polish only the real roots (about half of the ten)
        xyz = coef[..., :3]
        xyz.index_put_(sel, _polish(coeffs[sel[:-1]], xyz[sel]))
    return (coef @ basis).unflatten(-1, (3, 3)), valid  # (..., 10, 3, 3)


def find_essential_5point(points1: torch.Tensor, points2: torch.Tensor, intrinsics1: torch.Tensor,
                          intrinsics2: torch.Tensor, weights: torch.Tensor | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """5-point essential matrices from pixel correspondences and known intrinsics (all real solutions).

    Args:
        points1: (..., N, 2) pixels in image 1, N >= 5 (N = 5 is the minimal problem; more points give the
            least-squares null space); points2: (..., N, 2) corresponding pixels in image 2.
        intrinsics1: (..., 3, 3) K of image 1; intrinsics2: (..., 3, 3) K of image 2.
        weights: optional (..., N) non-negative weights (N > 5).

    Returns:
        (E (..., 10, 3, 3), valid (..., 10)): see :func:`solve_5point_normalized`. Up to 10 real solutions;
        pick one with more points (RANSAC scoring) and :func:`torchworks.geometry.essential.recover_pose`.
    """
    _check_pairs(points1, points2, 5)
    if intrinsics1.shape[-2:] != (3, 3) or intrinsics2.shape[-2:] != (3, 3):
        raise ShapeError(f"intrinsics must be (..., 3, 3), got {tuple(intrinsics1.shape)} and "
                         f"{tuple(intrinsics2.shape)}")
    return solve_5point_normalized(pixels_to_normalized(points1, intrinsics1),
                                   pixels_to_normalized(points2, intrinsics2), weights)

"""Essential matrices: E from a pose (two conventions), linear estimation, the four (R, t) and cheirality.

Two conventions for the same E, both satisfying the Longuet-Higgins relation xn2^T E xn1 = 0 on normalized
coordinates xn = K^-1 x:

* ``"common"`` (OpenCV, kornia, Hartley-Zisserman): the relative pose maps camera-1 to camera-2 coordinates,
  X2 = R X1 + t, and E = [t]x R.
* ``"note"`` (the seed note, after Longuet-Higgins / Trucco-Verri): X2 = R (X1 - T), where T is the centre of
  camera 2 in camera-1 coordinates, and E = R [T]x.

They describe the same geometry when t = -R T, and then E_note = R [T]x = -[t]x R = -E_common: equal up to
the (irrelevant) sign. Tested in ``tests/geometry/test_essential.py``.

References:
    Longuet-Higgins, "A computer algorithm for reconstructing a scene from two projections", Nature 293, 1981.
    Hartley and Zisserman, "Multiple View Geometry", 2nd ed., 2004: 9.6 (E, its SVD, the four solutions).
    Trucco and Verri, "Introductory Techniques for 3-D Computer Vision", 1998, section 7.3.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from torchworks.geometry._checks import check_shape, skew
from torchworks.geometry.camera import pixels_to_normalized
from torchworks.geometry.epipolar import _check_pairs, _unit_sign, find_fundamental
from torchworks.geometry.so3 import require_rotation
from torchworks.geometry.triangulation import depths, triangulate_dlt

_W = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def essential_from_pose(rotation: torch.Tensor, translation: torch.Tensor, convention: str = "common"
                        ) -> torch.Tensor:
    """E of a relative pose.

    Args:
        rotation: (..., 3, 3) rotation R.
        translation: (..., 3) ``t`` (X2 = R X1 + t) for ``"common"``, or the note's ``T`` (centre of camera 2 in
            camera-1 coordinates, X2 = R (X1 - T)) for ``"note"``.
        convention: "common" gives [t]x R; "note" gives R [T]x (see the module docstring).

    Returns:
        (..., 3, 3) E (not normalized).
    """
    require_rotation(rotation, "rotation")
    check_shape(translation, (3,), "translation")
    if convention == "common":
        return skew(translation) @ rotation
    if convention == "note":
        return rotation @ skew(translation)
    raise ValueError(f"convention must be 'common' or 'note', got {convention!r}")


def project_to_essential(matrix: torch.Tensor) -> torch.Tensor:
    """Nearest essential matrix: singular values replaced by (1, 1, 0).

    Args:
        matrix: (..., 3, 3) matrices.

    Returns:
        (..., 3, 3) essential matrices with unit singular values.
    """
    u, _, vh = torch.linalg.svd(matrix)
    s = torch.tensor([1.0, 1.0, 0.0], dtype=matrix.dtype, device=matrix.device)
    return u @ (s[:, None] * vh)


def find_essential(points1: torch.Tensor, points2: torch.Tensor, intrinsics1: torch.Tensor,
                   intrinsics2: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Linear (8-point) essential matrix on normalized coordinates, projected onto the essential manifold.

    Args:
        points1: (..., N, 2) pixels in image 1, N >= 8; points2: (..., N, 2) in image 2.
        intrinsics1: (..., 3, 3) K of image 1; intrinsics2: (..., 3, 3) K of image 2.
        weights: optional (..., N) non-negative weights.

    Returns:
        (..., 3, 3) E with singular values (1, 1, 0) and a deterministic sign. Differentiable wherever the
        linear estimate has distinct singular values (noisy data); see :func:`decompose_essential`.
    """
    _check_pairs(points1, points2, 8)
    e = find_fundamental(pixels_to_normalized(points1, intrinsics1), pixels_to_normalized(points2, intrinsics2),
                         weights)
    return _unit_sign(project_to_essential(e)) * 2**0.5


def decompose_essential(essential: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The four (R, t) consistent with E: (U W V^T | U W^T V^T) x (+u3 | -u3).

    Args:
        essential: (..., 3, 3) E.

    Returns:
        (rotations (..., 4, 3, 3), translations (..., 4, 3) with unit norm), ordered
        (R1, t), (R1, -t), (R2, t), (R2, -t) with R1 = U W V^T.

    Gradients: an exact E has two equal singular values, where the SVD's backward pass is undefined; gradients
    are finite only for E with distinct singular values (e.g. a linear estimate before projection).
    """
    check_shape(essential, (3, 3), "essential")
    u, _, vh = torch.linalg.svd(essential)
    # E = (-U) S (-V)^T as well, so flipping keeps a valid SVD while making both rotations proper.
    u = u * torch.where(torch.linalg.det(u) < 0, -1.0, 1.0).to(u.dtype)[..., None, None]
    vh = vh * torch.where(torch.linalg.det(vh) < 0, -1.0, 1.0).to(u.dtype)[..., None, None]
    w = _W.to(u)
    r1 = u @ w @ vh
    r2 = u @ w.T @ vh
    t = u[..., :, 2]
    rots = torch.stack([r1, r1, r2, r2], -3)
    trans = torch.stack([t, -t, t, -t], -2)
    return rots, trans


def recover_pose(essential: torch.Tensor, points1: torch.Tensor, points2: torch.Tensor,
                 intrinsics1: torch.Tensor, intrinsics2: torch.Tensor, max_depth: float = 50.0
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pick the (R, t) of E that puts the most points in front of both cameras (``cv2.recoverPose``).

    Args:
        essential: (..., 3, 3) E.
        points1: (..., N, 2) pixels in image 1; points2: (..., N, 2) in image 2.
        intrinsics1: (..., 3, 3) K of image 1; intrinsics2: (..., 3, 3) K of image 2.
        max_depth: points farther than this (in units of |t| = 1) do not vote, as in OpenCV (distanceThresh),
            because near-infinite points have a random depth sign.

    Returns:
        (R (..., 3, 3), t (..., 3) unit, in_front (..., N) bool for the chosen solution), with X2 = R X1 + t.
    """
    _check_pairs(points1, points2, 1)
    rots, trans = decompose_essential(essential)
    n1 = pixels_to_normalized(points1, intrinsics1)[..., None, :, :].expand(*rots.shape[:-2], -1, 2)
    n2 = pixels_to_normalized(points2, intrinsics2)[..., None, :, :].expand(*rots.shape[:-2], -1, 2)
    eye = torch.eye(3, 4, dtype=rots.dtype, device=rots.device).expand(*rots.shape[:-2], 3, 4)
    p2 = torch.cat([rots, trans[..., None]], -1)  # (..., 4, 3, 4)
    proj = torch.stack([eye, p2], -3)  # (..., 4, 2, 3, 4)
    pts = triangulate_dlt(proj, torch.stack([n1, n2], -3))  # (..., 4, N, 3)
    z = depths(proj, pts)  # (..., 4, 2, N)
    good = (z > 0).all(-2) & (z < max_depth).all(-2) & torch.isfinite(pts).all(-1)  # (..., 4, N)
    best = good.sum(-1).argmax(-1)  # (...,)
    r = rots.gather(-3, best[..., None, None, None].expand(*best.shape, 1, 3, 3))[..., 0, :, :]
    t = trans.gather(-2, best[..., None, None].expand(*best.shape, 1, 3))[..., 0, :]
    mask = good.gather(-2, best[..., None, None].expand(*best.shape, 1, good.shape[-1]))[..., 0, :]
    return r, t, mask


def _skew_np(v) -> np.ndarray:
    x, y, z = (float(c) for c in v)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def _tangent_basis(t: np.ndarray) -> np.ndarray:
    """(2, 3) orthonormal basis of the plane orthogonal to the unit 3-vector ``t`` (plain float arithmetic: NumPy
    calls on 3-vectors cost more than the arithmetic)."""
    x, y, z = (float(c) for c in t)
    ax, ay, az = abs(x), abs(y), abs(z)
    if ax <= ay and ax <= az:  # cross t with the axis least aligned with it
        b1 = (0.0, z, -y)
    elif ay <= az:
        b1 = (-z, 0.0, x)
    else:
        b1 = (y, -x, 0.0)
    n = math.sqrt(b1[0] ** 2 + b1[1] ** 2 + b1[2] ** 2)
    b1 = (b1[0] / n, b1[1] / n, b1[2] / n)
    return np.array([b1, (y * b1[2] - z * b1[1], z * b1[0] - x * b1[2], x * b1[1] - y * b1[0])])


def _rotation_of(w) -> np.ndarray:
    """Rodrigues' formula for one rotation vector (three floats) as a (3, 3) float64 array."""
    x, y, z = (float(c) for c in w)
    th2 = x * x + y * y + z * z
    th = math.sqrt(th2)
    if th < 1e-8:
        a, b = 1 - th2 / 6, 0.5 - th2 / 24
    else:
        a, b = math.sin(th) / th, 2 * (math.sin(th / 2) / th) ** 2
    c = 1 - b * th2
    return np.array([[c + b * x * x, b * x * y - a * z, b * x * z + a * y],
                     [b * x * y + a * z, c + b * y * y, b * y * z - a * x],
                     [b * x * z - a * y, b * y * z + a * x, c + b * z * z]])


_AXES = np.stack([_skew_np(e) for e in np.eye(3)])  # [e_k]x, (3, 3, 3)


class _SampsonProblem:
    """Signed Sampson residuals in pixels of F = K2^-T [t]x R K1^-1 and their analytic Jacobian in the 5 local
    coordinates (w, d): R <- R exp([w]x), t <- normalize(t + B d) with B spanning t's tangent plane.

    With n = K^-1 x (homogeneous) the residual is n2^T E n1 / sqrt(|A2 E n1|^2 + |A1 E^T n2|^2), where A = the
    first two rows of K^-T (which turn a normalized line into pixel units), and E = [t]x R; the derivative of E
    along a local coordinate is [t]x R [e_k]x (rotation) or [b_j]x R (translation). Per point, the numerator and
    the four line coordinates are linear in E through the fixed row (kron(n2, n1), n1, n2), so the residuals are
    a product with a (15, 5) matrix and the Jacobian one more with a (15, 25) one (the five derivatives of E); an
    LM trial's residual rows are reused for the Jacobian once it is accepted. Everything is NumPy float64: at a
    few hundred points per call, a tensor op costs several times the arithmetic. (Coefficients of vec(E) built per
    point, one (k, 9) @ (9, 5N) product, made the whole of ransac 1-8 % slower, interleaved A/B: the build and the
    cut of 45 numbers a point for every subset cost more than the smaller product saves.)
    """

    def __init__(self, design: np.ndarray, a1: np.ndarray, a2: np.ndarray, weights: np.ndarray | None = None):
        self.design, self.a1, self.a2 = design, a1, a2  # (N, 15), (2, 3), (2, 3)
        self.sw = None if weights is None else np.sqrt(np.clip(weights, 0, None))
        self._design_t = None  # design^T, contiguous, built on first use

    @classmethod
    def from_normalized(cls, n1: torch.Tensor, n2: torch.Tensor, intrinsics1: torch.Tensor,
                        intrinsics2: torch.Tensor, weights: torch.Tensor | None = None) -> _SampsonProblem:
        """From (N, 2) normalized coordinates K^-1 x of both images and the K's."""
        n1 = np.concatenate([n1.detach().cpu().double().numpy(), np.ones((n1.shape[0], 1))], 1)
        n2 = np.concatenate([n2.detach().cpu().double().numpy(), np.ones((n2.shape[0], 1))], 1)
        design = np.concatenate([(n2[:, :, None] * n1[:, None, :]).reshape(-1, 9), n1, n2], 1)
        a1 = np.linalg.inv(intrinsics1.detach().cpu().double().numpy()).T[:2]
        a2 = np.linalg.inv(intrinsics2.detach().cpu().double().numpy()).T[:2]
        w = None if weights is None else weights.detach().cpu().double().numpy()
        return cls(design, a1, a2, w)

    def subset(self, mask, weights: np.ndarray | None = None) -> _SampsonProblem:
        """The points of ``mask`` (N,) bool, with ``weights`` for them (default: the current weights)."""
        mask = mask.cpu().numpy() if isinstance(mask, torch.Tensor) else mask
        if weights is None and self.sw is not None:
            weights = self.sw[mask] ** 2
        return _SampsonProblem(self.design[mask], self.a1, self.a2, weights)

    def _rows(self, ms: np.ndarray) -> np.ndarray:
        """(k, 3, 3) matrices -> (5, k, N): the numerator n2^T M_j n1 and the four line coordinates (A2 M_j n1,
        A1 M_j^T n2) of every point, as contiguous length-N rows of cols @ design^T."""
        k = ms.shape[0]
        cols = np.zeros((5, k, 15))
        cols[0, :, :9] = ms.reshape(k, 9)
        cols[1:3, :, 9:12] = (self.a2 @ ms).transpose(1, 0, 2)
        cols[3:5, :, 12:15] = (self.a1 @ ms.transpose(0, 2, 1)).transpose(1, 0, 2)
        if self._design_t is None:
            self._design_t = np.ascontiguousarray(self.design.T)
        return (cols.reshape(5 * k, 15) @ self._design_t).reshape(5, k, -1)

    def residuals(self, rot: np.ndarray, t: np.ndarray) -> np.ndarray:
        return self.residuals_with_rows(rot, t)[0]

    def residuals_with_rows(self, rot: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N,) (weighted) residuals of (R, t) and the (5, N) rows of its E (numerator and line coordinates), which
        :meth:`residuals_and_jacobian` reuses for the Jacobian at the same pose."""
        rows = self._rows((_skew_np(t) @ rot)[None])[:, 0]
        r = self._residuals_from_rows(rows)
        return (r if self.sw is None else r * self.sw), rows

    @staticmethod
    def _residuals_from_rows(rows: np.ndarray) -> np.ndarray:
        num, l0, l1, l2, l3 = rows
        return num / np.sqrt(l0 * l0 + l1 * l1 + l2 * l2 + l3 * l3)

    def residuals_of(self, e: np.ndarray) -> np.ndarray:
        """(N,) signed, unweighted Sampson distances in pixels of a (3, 3) E (any scale)."""
        return self._residuals_from_rows(self._rows(e[None])[:, 0])

    def residuals_and_jacobian(self, rot: np.ndarray, t: np.ndarray, rows: np.ndarray | None = None
                               ) -> tuple[np.ndarray, np.ndarray]:
        """(N,) residuals and (N, 5) Jacobian at (R, t); ``rows``: those of :meth:`residuals_with_rows` at the same
        pose, if known (an accepted LM trial), which saves their product."""
        e = _skew_np(t) @ rot
        b = _tangent_basis(t)
        if rows is None:
            rows = self._rows(e[None])[:, 0]
        # The derivatives of E along the local coordinates: [t]x R [e_k]x (rotation), [b_j]x R (translation).
        # E [e_k]x only moves and negates columns of E, so it is filled in by copying (the same values as the
        # product, without small matmuls and a stack).
        ms = np.zeros((5, 3, 3))
        ms[0, :, 1], ms[0, :, 2] = e[:, 2], -e[:, 1]
        ms[1, :, 0], ms[1, :, 2] = -e[:, 2], e[:, 0]
        ms[2, :, 0], ms[2, :, 1] = e[:, 1], -e[:, 0]
        ms[3:] = np.stack([_skew_np(b[0]), _skew_np(b[1])]) @ rot
        d = self._rows(ms)  # (5 fields, 5 coordinates, N)
        num, l0, l1, l2, l3 = rows
        # In place, in the order of l0^2 + l1^2 + l2^2 + l3^2 and sum_c line_c d(line_c).
        tmp = l1 * l1
        den = l0 * l0
        den += tmp
        np.multiply(l2, l2, out=tmp)
        den += tmp
        np.multiply(l3, l3, out=tmp)
        den += tmp
        inv = np.sqrt(den, out=den)
        np.divide(1, inv, out=inv)
        half_dden = d[1] * l0
        tmp5 = d[2] * l1
        half_dden += tmp5
        np.multiply(d[3], l2, out=tmp5)
        half_dden += tmp5
        np.multiply(d[4], l3, out=tmp5)
        half_dden += tmp5
        r = num * inv
        np.multiply(r, inv, out=tmp)
        tmp *= inv
        half_dden *= tmp
        jac = np.multiply(d[0], inv, out=tmp5)
        jac -= half_dden
        jac = jac.T  # (N, 5)
        if self.sw is not None:
            r, jac = r * self.sw, jac * self.sw[:, None]
        return r, jac  # (N,), (N, 5)

    @staticmethod
    def step(rot: np.ndarray, t: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t_new = t + delta[3:] @ _tangent_basis(t)
        return rot @ _rotation_of(delta[:3]), t_new / math.sqrt(t_new @ t_new)  # np.linalg.norm's arithmetic


def _pose_from_essential(e: np.ndarray, n1: np.ndarray, n2: np.ndarray, max_depth: float = 50.0
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The (R, t) of one E (NumPy) that puts the most of the homogeneous normalized points n1, n2 (M, 3) in front
    of both cameras: :func:`recover_pose` for one problem and a few points, without triangulating. For X2 = R X1 + t
    with X1 = z1 n1 and X2 = z2 n2, z1 = (n2 x t).(n2 x R n1) / -|n2 x R n1|^2 and z2 = (z1 R n1 + t).n2 / |n2|^2;
    as in :func:`recover_pose`, points beyond ``max_depth`` (units of |t| = 1) do not vote.
    """
    u, _, vt = np.linalg.svd(e)
    u = u * np.sign(np.linalg.det(u))
    vt = vt * np.sign(np.linalg.det(vt))
    w = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    t = u[:, 2]
    best, votes = None, -1
    n2_sq, n2_t = (n2 * n2).sum(1), n2 @ t
    for rot in (u @ w @ vt, u @ w.T @ vt):
        rn1 = n1 @ rot.T  # (M, 3)
        n2_rn1 = (n2 * rn1).sum(1)
        # Lagrange's identity instead of cross products: |n2 x R n1|^2 and (n2 x t).(n2 x R n1).
        cc = n2_sq * (rn1 * rn1).sum(1) - n2_rn1 * n2_rn1
        ct = n2_sq * (rn1 @ t) - n2_rn1 * n2_t  # flips sign with t
        z1 = -ct / np.where(cc > 0, cc, np.inf)
        z2 = (z1 * n2_rn1 + n2_t) / n2_sq
        for sign in (1.0, -1.0):  # -t: z1 and z2 change sign together
            count = int(np.count_nonzero((sign * z1 > 0) & (sign * z2 > 0) & (sign * z1 < max_depth)
                                         & (sign * z2 < max_depth)))
            if count > votes:
                best, votes = (rot, sign * t), count
    return best


def _huber(res: np.ndarray, k: float | None, weights: bool = True) -> tuple[float, np.ndarray | None]:
    """(sum of rho(r), sqrt of the IRLS weights or None) for Huber's rho with threshold k (None: least squares);
    rho(r) = r^2 for |r| <= k, 2 k |r| - k^2 beyond, whose IRLS weight rho'(r) / 2r is min(1, k / |r|).
    ``weights`` False: the cost alone (an LM trial), weights None."""
    if k is None:
        return float(res @ res), None
    a = np.abs(res)
    big = a[a > k]
    cost = float(res @ res) + float(((2 * k * big - k * k) - big**2).sum())
    if not weights:
        return cost, None
    return cost, np.sqrt(k / np.maximum(a, k))


def _levenberg_marquardt_pose(problem: _SampsonProblem, rot: np.ndarray, t: np.ndarray, iterations: int = 10,
                              huber: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """LM on the Sampson cost of ``problem`` from (R, t) (NumPy float64): least squares, or with ``huber`` = k the
    Huber cost (IRLS weights recomputed every iteration, steps accepted on the Huber cost). Returns (R, t, cost)."""
    lam = 1e-3
    res, jac = problem.residuals_and_jacobian(rot, t)
    cost, sw = _huber(res, huber)
    for _ in range(iterations):
        if sw is not None:
            res, jac = res * sw, jac * sw[:, None]
        jtj, jtr = jac.T @ jac, jac.T @ res
        diag = jtj.diagonal() + 1e-12
        for _ in range(10):  # raise the damping until the step lowers the cost
            damped = jtj.copy()
            damped.flat[::6] += lam * diag
            step = np.linalg.solve(damped, -jtr)
            r_new, t_new = problem.step(rot, t, step)
            res_new, rows = problem.residuals_with_rows(r_new, t_new)
            new_cost, _ = _huber(res_new, huber, weights=False)
            if new_cost < cost:
                rot, t, lam = r_new, t_new, max(lam / 10, 1e-12)
                break
            lam *= 10
        else:
            break
        # Converged: the step moved the pose by < 1e-7 rad (6e-6 deg), or the cost by < 1e-5 relative while the step
        # moved it by < 1e-4 rad (on a few hundred points with 0.5 px noise, ~1e-4 deg from the optimum; IRLS
        # converges only linearly, and each further step costs as much as the first). The step condition matters
        # in narrow valleys (bas-relief ambiguity, long focal lengths): there LM zigzags with 4e-3 rad steps that
        # lower the cost by < 1e-5 relative, and stopping on the cost alone left a pose 9 deg off (bench scene
        # 2127 at 0.25 px noise).
        moved = float(np.abs(step).max())
        done = moved < 1e-7 or (cost - new_cost <= 1e-5 * cost and moved < 1e-4)
        cost = new_cost
        if done:
            break
        res, jac = problem.residuals_and_jacobian(rot, t, rows)
        if huber is not None:
            sw = np.sqrt(huber / np.maximum(np.abs(res), huber))  # the weights of _huber alone
    return rot, t, cost


def refine_pose_sampson(rotation: torch.Tensor, translation: torch.Tensor, points1: torch.Tensor,
                        points2: torch.Tensor, intrinsics1: torch.Tensor, intrinsics2: torch.Tensor,
                        iterations: int = 10, weights: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Levenberg-Marquardt on the 5-DoF relative pose minimizing the (weighted) Sampson error in pixels.

    The linear estimate minimizes an algebraic error on normalized coordinates and then projects onto the
    essential manifold, which is measurably worse than a minimal-solver + refinement pipeline; a few LM steps
    close that gap. The update is R <- R exp(w), t <- normalize(t + a b1 + b b2) with (b1, b2) spanning t's
    tangent plane; the Jacobian is analytic (:class:`_SampsonProblem`).

    Args:
        rotation: (3, 3) initial R; translation: (3,) initial t (any norm), X2 = R X1 + t.
        points1: (N, 2) pixels in image 1; points2: (N, 2) in image 2 (N >= 5).
        intrinsics1: (3, 3) K of image 1; intrinsics2: (3, 3) K of image 2.
        iterations: LM steps.
        weights: optional (N,) non-negative weights.

    Returns:
        (R (3, 3), t (3,) unit) refined; not differentiable (use the linear solvers for gradients).
    """
    _check_pairs(points1, points2, 5)
    require_rotation(rotation, "rotation")
    problem = _SampsonProblem.from_normalized(pixels_to_normalized(points1, intrinsics1),
                                              pixels_to_normalized(points2, intrinsics2), intrinsics1, intrinsics2,
                                              weights)
    r0, t0 = rotation.detach().cpu().double().numpy(), translation.detach().cpu().double().numpy()
    rot, t, _ = _levenberg_marquardt_pose(problem, r0, t0 / np.linalg.norm(t0), iterations)
    like = rotation.detach()
    return torch.from_numpy(rot).to(like), torch.from_numpy(t).to(like)

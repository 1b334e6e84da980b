"""Seeded, batched RANSAC (MSAC scoring, local optimisation) for H, F and E, with degeneracy and support flags.

Hypotheses are vectorised across iterations *and* across problems: a round draws all its minimal samples for all
B problems of a (B, N, 2) batch at once, solves them as one batched problem (4-point solve for H, the 7-point
algorithm for F, the 5-point solver for E) and scores every hypothesis against every point of its problem with
one batched GEMM; rounds with many hypotheses on many points first rank them on a random subset of the points
(preemptive scoring) and fully score only the best sixteenth. The number of rounds is usually one or two. Local
optimisation and the final refinement then run per problem.

E has two searches (``essential_solver``): ``"5point"`` (default) samples essential matrices directly,
``"8point"`` searches F in pixels and upgrades it with K (projection onto the essential manifold). (Projecting
minimal F's onto the essential manifold instead of using a true 5-point solver was clearly worse: temple ring
views 1-2, 20+ deg rotation error.) For E, local optimisation (LO) is the relative pose itself: cheirality on up
to 100 inliers, then a few Levenberg-Marquardt steps on the Huber cost of the Sampson errors (analytic Jacobian,
NumPy) over the correspondences within 3 sigma (MAD estimate, clamped to 1-2x the threshold); the model is kept
when the MSAC score improves. The winner is refined the same way to convergence, again while that set of
correspondences changes. For H and F, LO refits each new best model by iterated least squares on its inliers with
a shrinking threshold.

Degeneracy: when a single homography explains (nearly) all the F/E inliers, the points lie on a plane or the
camera only rotated, and F/E is not determined by the data even though a model is returned (OpenCV and kornia
report success silently). The result then carries ``degenerate=True`` and a ``degeneracy`` reason:
``"planar_or_rotation"`` for F, and for E (where K is known) ``"pure_rotation"`` when a rotation-only
homography K2 R K1^-1 explains the inliers as well, else ``"planar"``. The homography is scored by its Sampson
error at the F/E threshold times sqrt(chi2_2(0.95) / chi2_1(0.95)), so both tests keep the same share of
noise-only correspondences (``benchmarks/geometry/bench_degeneracy.py`` measures the flag on 200 scenes per kind).

References:
    Fischler and Bolles, "Random Sample Consensus", CACM 24(6), 1981.
    Torr and Zisserman, "MLESAC", CVIU 78(1), 2000 (the truncated quadratic MSAC score).
    Chum, Matas and Kittler, "Locally Optimized RANSAC", DAGM 2003.
    Chum, Werner and Matas, "Two-view geometry estimation unaffected by a dominant plane", CVPR 2005.
    Nister, "An efficient solution to the five-point relative pose problem", PAMI 26(6), 2004 (5-point RANSAC).
    Nister, "Preemptive RANSAC for live structure and motion estimation", ICCV 2003 (scoring on a point subset).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from torchworks.geometry._checks import to_homogeneous
from torchworks.geometry.camera import pixels_to_normalized
from torchworks.geometry.epipolar import (
    _check_pairs,
    essential_from_fundamental,
    find_fundamental,
    find_fundamental_7point,
)
from torchworks.geometry.essential import (
    _levenberg_marquardt_pose,
    _pose_from_essential,
    _SampsonProblem,
    _skew_np,
    project_to_essential,
)
from torchworks.geometry.five_point import _solve_raw as _solve_5point
from torchworks.geometry.homography import find_homography, normalize_points
from torchworks.geometry.so3 import project_to_so3

MODELS = ("homography", "fundamental", "essential")
ESSENTIAL_SOLVERS = ("8point", "5point")
_SAMPLE_SIZE = {"homography": 4, "fundamental": 7, "essential": 5, "hsampson": 4}
# The degeneracy test scores H by its Sampson error, ~ sigma^2 chi^2 with 2 degrees of freedom, where the F/E
# inliers were selected on a Sampson error with 1: its threshold is the F/E one times the ratio of the two
# 95 % quantiles, chi2_2(0.95) / chi2_1(0.95) = 5.991 / 3.841, so that both tests keep the same share of
# noise-only correspondences.
_H_THRESHOLD_SCALE = 5.991464547107979 / 3.841458820694124
# Share of the F/E inliers a homography must explain for the data to be called planar / a pure rotation.
_DEGENERATE_SHARE = 0.9
_CHEIRALITY_POINTS = 100  # inliers voting in the cheirality test (evenly spaced); all of them add nothing


@dataclass
class RansacResult:
    """Outcome of :func:`ransac` for one problem.

    Attributes:
        model: (3, 3) H, F or E (E in normalized coordinates, F/H in pixels).
        inliers: (N,) bool mask.
        num_inliers: number of inliers.
        score: MSAC cost (sum of min(e^2, threshold^2), px^2); lower is better.
        iterations: hypotheses drawn (minimal samples).
        degenerate: True when the data cannot determine the model (see module docstring).
        degeneracy: reason ("", "planar_or_rotation", "planar", "pure_rotation", "too_few_inliers").
        rotation: for "essential", the (3, 3) R of X2 = R X1 + t chosen by cheirality and refined by LM on the
            Sampson error of the inliers (then ``model`` = [t]x R); None otherwise.
        translation: for "essential", the (3,) unit t; None otherwise.
        few_inliers: True when the model rests on fewer than ``min_inliers`` inliers or under
            ``min_inlier_fraction`` of the correspondences (see :func:`ransac`): treat it as unreliable.
    """

    model: torch.Tensor
    inliers: torch.Tensor
    num_inliers: int
    score: float
    iterations: int
    degenerate: bool = False
    degeneracy: str = ""
    rotation: torch.Tensor | None = None
    translation: torch.Tensor | None = None
    few_inliers: bool = False


class _Points:
    """B problems of N correspondences laid out for scoring many hypotheses at once (length-N axes innermost)."""

    def __init__(self, x1: torch.Tensor, x2: torch.Tensor, k1=None, k2=None):
        self.x1, self.x2, self.k1, self.k2 = x1, x2, k1, k2  # (B, N, 2), (B, 3, 3)
        self.hartley = None  # normalized points and transforms for the 4-point homography, built on first use
        self._sampson_problems: dict[int, _SampsonProblem] = {}
        ones = torch.ones_like(x1[..., :1])
        self.h1 = torch.cat([x1, ones], -1).transpose(-1, -2)  # (B, 3, N)
        self.h2 = torch.cat([x2, ones], -1).transpose(-1, -2)
        self.u2, self.v2 = x2[..., 0], x2[..., 1]  # (B, N)
        self._sampson_rows = None
        self.k1_inv = None if k1 is None else torch.linalg.inv(k1)
        self.k2_inv_t = None if k2 is None else torch.linalg.inv(k2).transpose(-1, -2)
        if k1 is not None:  # normalized coordinates for the 5-point solver
            self.n1, self.n2 = pixels_to_normalized(x1, k1), pixels_to_normalized(x2, k2)

    @property
    def sampson_rows(self) -> torch.Tensor:
        """(B, 9, 5N): x2^T F x1 and the four line coordinates of the Sampson denominator are all linear in vec(F),
        so one (S, 9) @ (9, 5N) product per problem gives them for S hypotheses (built on first use)."""
        if self._sampson_rows is None:
            (b, _, n), h1, h2 = self.h1.shape, self.h1, self.h2
            lin = h1.new_zeros(b, 9, 5, n)
            lin[:, :, 0] = (h2[:, :, None, :] * h1[:, None, :, :]).reshape(b, 9, n)  # kron(x2, x1)
            lin[:, 0:3, 1], lin[:, 3:6, 2] = h1, h1  # (F x1)_0, (F x1)_1
            lin[:, 0::3, 3], lin[:, 1::3, 4] = h2, h2  # (F^T x2)_0, (F^T x2)_1
            self._sampson_rows = lin.reshape(b, 9, 5 * n)
        return self._sampson_rows

    def columns(self, idx: torch.Tensor) -> _Points:
        """The same problems restricted to the points ``idx`` (N',), for scoring only: the layouts are sliced from
        this object's instead of being rebuilt."""
        sub = object.__new__(_Points)
        sub.x1, sub.x2, sub.k1, sub.k2, sub.hartley = self.x1[:, idx], self.x2[:, idx], self.k1, self.k2, None
        sub.h1, sub.h2, sub.u2, sub.v2 = self.h1[..., idx], self.h2[..., idx], self.u2[:, idx], self.v2[:, idx]
        sub.k1_inv, sub.k2_inv_t, sub._sampson_problems = self.k1_inv, self.k2_inv_t, {}
        b, n = self.h1.shape[0], self.h1.shape[-1]
        sub._sampson_rows = None if self._sampson_rows is None else (
            self._sampson_rows.view(b, 9, 5, n)[..., idx].reshape(b, 9, 5 * idx.numel()))
        return sub

    def one(self, b: int, mask: torch.Tensor | None = None) -> _Points:
        """Problem ``b`` alone (B = 1), optionally only the points of ``mask`` (N,)."""
        x1, x2 = self.x1[b], self.x2[b]
        if mask is not None:
            x1, x2 = x1[mask], x2[mask]
        k1 = None if self.k1 is None else self.k1[b:b + 1]
        k2 = None if self.k2 is None else self.k2[b:b + 1]
        return _Points(x1[None], x2[None], k1, k2)

    def sampson_problem(self) -> _SampsonProblem:
        """The relative-pose LM problem on all points of this (B = 1) problem, built once."""
        if 0 not in self._sampson_problems:
            self._sampson_problems[0] = _SampsonProblem.from_normalized(self.n1[0], self.n2[0], self.k1[0],
                                                                        self.k2[0])
        return self._sampson_problems[0]


def _errors(kind: str, m: torch.Tensor, pts: _Points, chunk: int = 1 << 19) -> torch.Tensor:
    """Squared pixel errors of (B, S, 3, 3) models on the points of their problems: (B, S, N).

    Transfer error x2 - H x1 for "homography", the homography's Sampson error for "hsampson", the Sampson
    distance for F and E (E in normalized coordinates is mapped to pixels with K first). One GEMM per slice
    instead of the generic (..., N, 3) reductions of :func:`sampson_distance` (same values to rounding), in slices
    of about ``chunk`` hypothesis-point pairs to bound memory.
    """
    b, s, n = m.shape[0], m.shape[1], pts.h1.shape[-1]
    step = max(1, chunk // max(n * b, 1))
    if s > step:
        return torch.cat([_errors(kind, m[:, i:i + step], pts, chunk) for i in range(0, s, step)], 1)
    if kind == "homography":
        p = m @ pts.h1[:, None]  # (B, S, 3, N)
        err = (p[:, :, 0] / p[:, :, 2] - pts.u2[:, None]).square() + (p[:, :, 1] / p[:, :, 2] - pts.v2[:, None]
                                                                     ).square()
    elif kind == "hsampson":
        err = _homography_sampson(m, pts)
    else:
        if kind == "essential":
            m = pts.k2_inv_t[:, None] @ m @ pts.k1_inv[:, None]
        sq = (m.reshape(b, s, 9) @ pts.sampson_rows).view(b, s, 5, n).square_()  # (B, S, 5, N)
        err = sq[:, :, 0] / (sq[:, :, 1] + sq[:, :, 2] + sq[:, :, 3] + sq[:, :, 4])
    return err.nan_to_num(nan=math.inf)


def _homography_sampson(h: torch.Tensor, pts: _Points) -> torch.Tensor:
    """(B, S, N) squared Sampson errors of (B, S, 3, 3) homographies: the first-order distance of (x1, x2) in R^4
    to the surface x2 = H(x1), noise in both images (Hartley and Zisserman 4.2.6). Equals half the squared transfer
    error for H = I, and is ~ sigma^2 chi^2_2 under isotropic pixel noise sigma in both images."""
    p = h @ pts.h1[:, None]  # (B, S, 3, N): (a, b, c) = H x1
    a, b, c = p[:, :, 0], p[:, :, 1], p[:, :, 2]
    u2, v2 = pts.u2[:, None], pts.v2[:, None]
    e1, e2 = u2 * c - a, v2 * c - b  # algebraic residuals (rows of x2 x H x1)
    # Jacobians of (e1, e2) w.r.t. (x1, y1, x2, y2): j1 = (p, q, c, 0), j2 = (r, s, 0, c).
    hh = h[..., None]  # (B, S, 3, 3, 1) broadcasting over N
    jp, jq = u2 * hh[:, :, 2, 0] - hh[:, :, 0, 0], u2 * hh[:, :, 2, 1] - hh[:, :, 0, 1]
    jr, js = v2 * hh[:, :, 2, 0] - hh[:, :, 1, 0], v2 * hh[:, :, 2, 1] - hh[:, :, 1, 1]
    c2 = c * c
    aa, bb, cc = jp * jp + jq * jq + c2, jp * jr + jq * js, jr * jr + js * js + c2
    return (cc * e1 * e1 - 2 * bb * e1 * e2 + aa * e2 * e2) / (aa * cc - bb * bb)


def _msac(err: torch.Tensor, th2: float) -> torch.Tensor:
    return err.clamp(max=th2).sum(-1)


def _best(kind: str, hyp: torch.Tensor, valid: torch.Tensor, pts: _Points, th2: float, gen: torch.Generator
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per problem, the hypothesis with the lowest MSAC score: ((B, 3, 3) models, (B,) scores; inf without any).

    Many hypotheses on many points are first ranked on a random subset of the points and only the best
    sixteenth is scored on all of them (preemptive scoring, Nister 2003): the winner is the same or a near-tie
    that local optimisation then refines, at a fraction of the cost.
    """
    n, s = pts.h1.shape[-1], hyp.shape[1]
    if s >= 64 and n >= 512:
        sub = torch.randperm(n, generator=gen, device=hyp.device)[: max(128, n // 8)]
        pre = _msac(_errors(kind, hyp, pts.columns(sub)), th2).masked_fill(~valid, math.inf)
        keep = pre.topk(max(8, s // 16), dim=1, largest=False).indices  # (B, S')
        hyp = hyp.gather(1, keep[..., None, None].expand(-1, -1, 3, 3))
        valid = valid.gather(1, keep)
    scores = _msac(_errors(kind, hyp, pts), th2).masked_fill(~valid, math.inf)
    best = scores.argmin(1)
    pick = torch.arange(hyp.shape[0], device=hyp.device)
    return hyp[pick, best], scores[pick, best]


def _compact(hyp: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S, 3, 3) hypotheses and (B, S) validity -> the same with the valid ones first, truncated to the largest
    count over the problems (at least one slot)."""
    valid = valid & torch.isfinite(hyp).flatten(-2).all(-1)
    keep = max(int(valid.sum(1).max()), 1)
    if keep == hyp.shape[1]:
        return hyp, valid
    order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)[:, :keep]
    return hyp.gather(1, order[..., None, None].expand(-1, -1, 3, 3)), valid.gather(1, order)


def _minimal(kind: str, pts: _Points, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S, m) sample indices -> ((B, S', 3, 3) hypotheses, (B, S') valid): all real roots of the 7- and 5-point
    solvers, valid ones first."""
    b, s, m = idx.shape
    rows = torch.arange(b, device=idx.device)[:, None, None]
    if kind in ("homography", "hsampson"):
        hyp, valid = _homography_4point(pts, idx)
    elif kind == "fundamental":
        fs, valid = find_fundamental_7point(pts.x1[rows, idx], pts.x2[rows, idx])  # (B, S, 3, 3, 3)
        hyp, valid = fs.reshape(b, s * 3, 3, 3), valid.reshape(b, s * 3)
    else:
        es, valid = _solve_5point(pts.n1[rows, idx], pts.n2[rows, idx], None, polish=False)  # (B, S, 10, 3, 3)
        hyp, valid = es.reshape(b, -1, 3, 3), valid.reshape(b, -1)
    return _compact(hyp, valid)


def _homography_4point(pts: _Points, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S, 4) sample indices -> ((B, S, 3, 3) homographies, (B, S) valid) by an 8 x 8 solve with H[2, 2] = 1.

    Points are Hartley-normalized once for each whole problem (not per sample), which keeps the system well
    scaled; exactly determined, so a linear solve replaces the DLT's SVD. Singular samples are invalid.
    """
    if pts.hartley is None:
        (y1, t1), (y2, t2) = normalize_points(pts.x1), normalize_points(pts.x2)
        pts.hartley = (y1, y2, t1, torch.linalg.inv(t2))
    y1, y2, t1, t2_inv = pts.hartley
    rows = torch.arange(idx.shape[0], device=idx.device)[:, None, None]
    a, b = y1[rows, idx], y2[rows, idx]  # (B, S, 4, 2)
    x, y, u, v = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    o, i = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, i, o, o, o, -u * x, -u * y], -1)  # (B, S, 4, 8)
    rows_v = torch.stack([o, o, o, x, y, i, -v * x, -v * y], -1)
    sol, info = torch.linalg.solve_ex(torch.cat([rows_u, rows_v], -2), torch.cat([u, v], -1))  # (B, S, 8)
    hn = torch.cat([sol, torch.ones_like(sol[..., :1])], -1).unflatten(-1, (3, 3))
    h = t2_inv[:, None] @ hn @ t1[:, None]
    h = h / h[..., 2:, 2:]
    return h, info == 0


def _sample(gen: torch.Generator, batch: int, count: int, n: int, m: int, device) -> torch.Tensor:
    """(batch, count, m) indices of m distinct points out of n per row, from the private generator."""
    if n < 8 * m * m:  # few points: exact sampling without replacement (random keys, top m)
        return torch.rand(batch, count, n, generator=gen, device=device).topk(m, dim=-1).indices
    # Many points: integer draws, redrawing the (rare, P ~ m^2 / 2n) rows that repeat an index.
    idx = torch.randint(n, (batch, count, m), generator=gen, device=device)
    while True:
        srt = idx.sort(-1).values
        bad = (srt[..., 1:] == srt[..., :-1]).any(-1)
        if not bool(bad.any()):
            return idx
        idx[bad] = torch.randint(n, (int(bad.sum()), m), generator=gen, device=device)


def _as_batch(points1, points2, intrinsics1, intrinsics2):
    single = points1.dim() == 2
    if points1.dim() not in (2, 3):
        raise ValueError(f"ransac takes points of shape (N, 2) or a batch (B, N, 2); got {tuple(points1.shape)}")
    x1, x2 = (p.detach()[None] if single else p.detach() for p in (points1, points2))
    ks = []
    for k in (intrinsics1, intrinsics2):
        if k is None:
            ks.append(None)
            continue
        k = k.detach().to(x1.dtype)
        if k.shape[-2:] != (3, 3) or k.dim() > 3 or (k.dim() == 3 and k.shape[0] not in (1, x1.shape[0])):
            raise ValueError(f"intrinsics must be (3, 3) or (B, 3, 3) with B = {x1.shape[0]}, got {tuple(k.shape)}")
        ks.append(k.expand(x1.shape[0], 3, 3))
    return single, x1, x2, ks[0], ks[1]


def ransac(points1: torch.Tensor, points2: torch.Tensor, model: str, threshold: float = 1.0,
           confidence: float = 0.999, max_iterations: int = 10000, batch_size: int | None = None, seed: int = 0,
           intrinsics1: torch.Tensor | None = None, intrinsics2: torch.Tensor | None = None,
           local_optimization: bool = True, check_degeneracy: bool = True, essential_solver: str = "5point",
           min_inliers: int = 15, min_inlier_fraction: float = 0.2) -> RansacResult | list[RansacResult]:
    """Robustly estimate H, F or E from correspondences containing outliers, for one problem or a batch.

    All minimal samples of a round are drawn at once, solved as one batched problem and scored at once against
    every point; the first round draws ``batch_size`` samples per problem and later rounds draw what the
    problems' current inlier ratios still require (up to 8 ``batch_size``), so a typical problem needs one or
    two rounds. A (B, N, 2) batch shares these rounds: its B problems are solved and scored together.

    Args:
        points1: (N, 2) pixels in image 1, or (B, N, 2) for B problems of N correspondences each;
            points2: the same shape in image 2.
        model: "homography", "fundamental" or "essential".
        threshold: inlier threshold in pixels (transfer error for H, Sampson distance for F and E).
        confidence: stop when an all-inlier sample has been drawn with this probability.
        max_iterations: cap on the number of minimal samples per problem.
        batch_size: minimal samples drawn per problem in the first round; default 128, or 64 for the 5-point
            solver (each of its samples yields about five hypotheses, and five-point samples are all-inlier more
            often).
        seed: seed of the private generator (results are reproducible and do not touch torch's global RNG; a
            problem solved inside a batch draws other samples than alone, so results may differ slightly).
        intrinsics1, intrinsics2: (3, 3) or (B, 3, 3) K's, required for "essential".
        local_optimization: refine each new best model on its inliers (see the module docstring).
        check_degeneracy: for F/E, test whether a homography explains the inliers (planar scene or rotation).
        essential_solver: for "essential": ``"5point"`` (default) samples E directly with the 5-point solver
            (:mod:`torchworks.geometry.five_point`; 5 points per sample, so fewer samples at high outlier
            ratios, and no F -> E upgrade); ``"8point"`` searches F in pixels (7-point samples, normalized 8-point
            refits) and upgrades it with K. Both end with cheirality (:func:`recover_pose`) and LM on the
            inliers' Sampson error.
        min_inliers, min_inlier_fraction: a model with fewer inliers, or a smaller inlier fraction, is returned
            with ``few_inliers=True``. Defaults 15 and 0.2: on the 16 neighbouring pairs of the temple ring
            (known K), the 6 wrong poses (56-179 degrees off) had 9-13 inliers (16-25 % of 40-63 matches), the 10
            right ones (0.05-1.3 degrees) 106-461 inliers (68-90 %).

    Returns:
        A :class:`RansacResult` for (N, 2) input, a list of B of them for (B, N, 2) input.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if essential_solver not in ESSENTIAL_SOLVERS:
        raise ValueError(f"essential_solver must be one of {ESSENTIAL_SOLVERS}, got {essential_solver!r}")
    five = model == "essential" and essential_solver == "5point"
    _check_pairs(points1, points2, 5 if five else _SAMPLE_SIZE[model])
    if points1.shape != points2.shape:
        raise ValueError(f"points1 and points2 must have the same shape, got {tuple(points1.shape)} and "
                         f"{tuple(points2.shape)}")
    if model == "essential" and (intrinsics1 is None or intrinsics2 is None):
        raise ValueError("model='essential' needs intrinsics1 and intrinsics2")
    if min_inliers < 0 or not 0 <= min_inlier_fraction <= 1:
        raise ValueError(f"need min_inliers >= 0 and 0 <= min_inlier_fraction <= 1, got {min_inliers}, "
                         f"{min_inlier_fraction}")
    if threshold <= 0 or not 0 < confidence < 1:
        raise ValueError(f"need threshold > 0 and 0 < confidence < 1, got {threshold}, {confidence}")
    if batch_size is None:
        batch_size = 64 if five else 128
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    single, x1, x2, k1, k2 = _as_batch(points1, points2, intrinsics1 if model == "essential" else None,
                                       intrinsics2 if model == "essential" else None)
    # With the 8-point solver, E is searched as F in pixels (7-point hypotheses, Sampson scores), then upgraded
    # with K: projecting each minimal F (or an 8-point E) onto the essential manifold scores far worse on narrow
    # fields of view (temple ring: 85 vs 126 inliers, rotation errors of 20 deg). The 5-point solver samples
    # true essential matrices, so it searches E itself.
    search = "essential" if five else ("fundamental" if model == "essential" else model)
    pts = _Points(x1, x2, k1, k2)
    batch, n, m = x1.shape[0], x1.shape[1], (5 if five else _SAMPLE_SIZE[search])
    th2 = threshold**2
    gen = torch.Generator(device=x1.device).manual_seed(seed)
    best_score = [math.inf] * batch
    best_model: list[torch.Tensor | None] = [None] * batch
    best_pose: list[tuple | None] = [None] * batch
    best_err: list[torch.Tensor | None] = [None] * batch
    needed, drawn = [max_iterations] * batch, 0
    views = [pts.one(b) for b in range(batch)] if batch > 1 else [pts]
    while drawn < min(max(needed), max_iterations):
        most = max(needed) - drawn
        count = min(max(most, batch_size // 4) if drawn else batch_size, 8 * batch_size, max_iterations - drawn)
        hyp, valid = _minimal(search, pts, _sample(gen, batch, count, n, m, x1.device))
        drawn += count
        cands, scores = _best(search, hyp, valid, pts, th2, gen)
        for b in range(batch):
            score = float(scores[b])
            if needed[b] <= drawn - count or not score < best_score[b]:
                continue  # problem b was already done, or found nothing better this round
            model_b, pose, err = cands[b], None, None
            if local_optimization:  # LO on every new best: the better inlier ratio also ends the search sooner
                if five:
                    model_b, score, pose, err = _local_optimize_pose(model_b, score, views[b], th2)
                else:
                    model_b, score = _local_optimize(search, model_b, score, views[b], th2)
            if err is None:
                err = _errors(search, model_b[None, None], views[b])[0, 0].cpu().numpy()
            best_score[b], best_model[b], best_pose[b], best_err[b] = score, model_b, pose, err
            needed[b] = _iterations_needed(float((err < th2).mean()), m, confidence)
    results = [_finish(b, views[b], model, search, five, best_model[b], best_score[b], best_pose[b], best_err[b],
                       drawn, th2, threshold, seed, check_degeneracy, min_inliers, min_inlier_fraction)
               for b in range(batch)]
    return results[0] if single else results


def _finish(b, pts, model, search, five, best_model, best_score, pose, err, drawn, th2, threshold, seed,
            check_degeneracy, min_inliers, min_inlier_fraction) -> RansacResult:
    """The result of one problem: cheirality + LM for E, flags for all."""
    x1, x2 = pts.x1[0], pts.x2[0]
    n, m = x1.shape[0], _SAMPLE_SIZE[search]
    if best_model is None:
        return RansacResult(torch.full((3, 3), float("nan"), dtype=x1.dtype), torch.zeros(n, dtype=torch.bool),
                            0, math.inf, drawn, True, "too_few_inliers", few_inliers=True)
    inliers = err < th2  # NumPy (N,) bool until the result
    rot = trans = None
    if model == "essential" and int(inliers.sum()) >= 6:
        if pose is None:  # no pose LO ran (8-point search, or LO off / not better): cheirality + LM now
            e = best_model if five else project_to_essential(essential_from_fundamental(
                best_model, pts.k1[0], pts.k2[0]))
            e_pose, score_pose, pose, err_pose = _local_optimize_pose(e, math.inf, pts, th2, keep_if_worse=True)
            if pose is not None:
                best_model, best_score, err = e_pose, score_pose, err_pose
        if pose is not None:
            # Robust refinement until the set of correspondences of _robust_set settles (3 passes
            # at most; the set of the LO pose, taken from a minimal model's errors, is often off by a few). A change
            # of at most 0.2 % of the set (a tail point or two with small Huber weights) moves nothing visible.
            for _ in range(3):
                near = _robust_set(err, th2)
                pose = _refine_robust(pose, pts, th2, err)
                err = _sq_errors_e(pts, _skew_np(pose[1]) @ pose[0])
                if np.count_nonzero(_robust_set(err, th2) != near) <= 0.002 * np.count_nonzero(near):
                    break
            # The Sampson error cannot tell t from -t: cheirality once more, on the refined E and up to 200
            # inliers (the first vote used a minimal model's E; in 1 of 150 synthetic scenes it chose -t).
            idx = np.flatnonzero(err < th2)
            if idx.size >= 6:
                vote = idx[np.linspace(0, idx.size - 1, min(idx.size, 200)).round().astype(np.int64)]
                design = pts.sampson_problem().design
                pose = _pose_from_essential(_skew_np(pose[1]) @ pose[0], design[vote, 9:12], design[vote, 12:15])
            rot, trans = (torch.from_numpy(v).to(x1) for v in pose)
            best_model = torch.from_numpy(_skew_np(pose[1]) @ pose[0]).to(x1)
            inliers, best_score = err < th2, float(np.minimum(err, th2).sum())
    inliers = torch.from_numpy(inliers).to(x1.device)
    count = int(inliers.sum())
    result = RansacResult(best_model, inliers, count, best_score, drawn, rotation=rot, translation=trans,
                          few_inliers=count < min_inliers or count < min_inlier_fraction * n)
    if count < m + 1:
        result.degenerate, result.degeneracy = True, "too_few_inliers"
    elif check_degeneracy and model != "homography":
        k1 = None if pts.k1 is None else pts.k1[0]
        k2 = None if pts.k2 is None else pts.k2[0]
        result.degeneracy = _degeneracy(model, x1[inliers], x2[inliers], threshold, seed + b, k1, k2)
        result.degenerate = bool(result.degeneracy)
    return result


def _iterations_needed(inlier_ratio: float, sample_size: int, confidence: float) -> int:
    p_good = inlier_ratio**sample_size
    if p_good <= 0:
        return 10**9
    if p_good >= 1:
        return 1
    return math.ceil(math.log(1 - confidence) / math.log(1 - p_good))


def _local_optimize_pose(e: torch.Tensor, score: float, pts: _Points, th2: float, keep_if_worse: bool = False):
    """LO for E (one problem): the pose of E by cheirality on up to 100 inliers, then LM on the inliers' Sampson
    error (the inliers it misses are recruited by :func:`_refine_robust` at the end). Returns (E, MSAC score,
    (R, t) NumPy arrays); the input E and score with pose None when there are too few inliers, or when the refined
    model scores worse (unless ``keep_if_worse``); and the squared errors of the returned model."""
    err = _sq_errors_e(pts, e.cpu().double().numpy())
    idx = np.flatnonzero(err < th2)
    if idx.size < 6:
        return e, score, None, err
    vote = idx[np.linspace(0, idx.size - 1, min(idx.size, _CHEIRALITY_POINTS)).round().astype(np.int64)]
    design = pts.sampson_problem().design  # columns 9:12 and 12:15 hold the homogeneous n1 and n2
    rot, trans = _pose_from_essential(e.cpu().double().numpy(), design[vote, 9:12], design[vote, 12:15])
    # A few steps suffice here: the final refinement (:func:`_finish`) continues from this pose.
    rot, trans = _refine_robust((rot, trans), pts, th2, err=err, iterations=10)
    new_err = _sq_errors_e(pts, _skew_np(trans) @ rot)
    new_score = float(np.minimum(new_err, th2).sum())
    if new_score < score or keep_if_worse:
        return torch.from_numpy(_skew_np(trans) @ rot).to(e), new_score, (rot, trans), new_err
    return e, score, None, err


def _sq_errors_e(pts: _Points, e: np.ndarray) -> np.ndarray:
    """(N,) squared Sampson errors in pixels of one (3, 3) NumPy E on the points of a (B = 1) problem."""
    return pts.sampson_problem().residuals_of(e) ** 2


def _robust_set(err: np.ndarray, th2: float) -> np.ndarray:
    """The correspondences the robust refinement uses: squared errors below (3 sigma)^2, clamped to [th^2, 4 th^2],
    with sigma the MAD estimate of the noise from the inliers (1.4826 sqrt(median e^2 over e^2 < th^2)).

    With Gaussian noise at half the threshold (synthetic, 0.5 px and 1 px) this reaches 1.5x the threshold and
    recovers the tail of the true inliers that hard inliers cut off (median rotation error 1.09x that of LM on the
    true inliers instead of 1.25x; OpenCV MAGSAC 1.14x, 100 scenes). On real matches the residuals of the inliers
    are smaller than the threshold while the mismatches near the epipolar lines are not, so it stays at the
    threshold (temple ring, 10 pairs: median error 0.29 deg, against 0.46 with a fixed 2x threshold and 0.36 for
    OpenCV MAGSAC)."""
    inl = err[err < th2]
    if inl.size == 0:
        return err < th2
    sigma2 = 1.4826**2 * float(np.median(inl))
    return err < min(max(th2, 9 * sigma2), 4 * th2)


def _refine_robust(pose: tuple, pts: _Points, th2: float, err: np.ndarray | None = None, iterations: int = 10
                   ) -> tuple:
    """Pose refinement for E (one problem): LM on the Huber cost of the Sampson errors (quadratic up to the
    threshold, linear beyond) over the correspondences of :func:`_robust_set`. Hard inliers cut the noise at the
    threshold (2 sigma at 0.5 px noise and 1 px), which drops the tail of the true inliers and with it information
    that matters in weakly determined scenes. ``err``: the squared errors of the current pose, if known."""
    rot, trans = pose
    if err is None:
        err = _sq_errors_e(pts, _skew_np(trans) @ rot)
    near = _robust_set(err, th2)
    if int(near.sum()) < 6:
        return rot, trans
    rot, trans, _ = _levenberg_marquardt_pose(pts.sampson_problem().subset(near), rot, trans, iterations,
                                              huber=math.sqrt(th2))
    return rot, trans


def _local_optimize(kind, best, best_score, pts, th2, steps: int = 4):
    """LO for H and F (one problem): iterated least squares on the inliers with a threshold shrinking to the final
    one (LO-RANSAC); the wide first pass lets the refit recruit inliers the minimal model missed."""
    current, previous = best, None
    minimum = _SAMPLE_SIZE[kind] + 1
    for step in range(steps):
        err = _errors(kind, current[None, None], pts)[0, 0]
        scale = 4.0 - 3.0 * step / max(steps - 1, 1)
        inliers = err < scale * th2
        if int(inliers.sum()) < max(minimum, 8 if kind == "fundamental" else 4) or (
                previous is not None and torch.equal(inliers, previous)):
            break
        previous = inliers
        x1, x2 = pts.x1[0][inliers], pts.x2[0][inliers]
        current = find_fundamental(x1, x2) if kind == "fundamental" else find_homography(x1, x2)
        score = float(_msac(_errors(kind, current[None, None], pts)[0, 0], th2))
        if score < best_score:
            best, best_score = current, score
    return best, best_score


def _degeneracy(model, x1, x2, threshold, seed, k1, k2) -> str:
    n = x1.shape[0]
    if n < 8:
        return ""
    pts, th2 = _Points(x1[None], x2[None]), threshold**2 * _H_THRESHOLD_SCALE
    gen = torch.Generator(device=x1.device).manual_seed(seed + 1)
    # If one H fits >= 90 % of the points, 32 four-point samples all miss it with probability < 1e-14. They are
    # scored on at most 128 of the points first: a minimal H from noisy points already explains well over half of
    # a plane's points, while in a general scene (the common case) none comes close, and the test stops there.
    hyp, valid = _minimal("hsampson", pts, _sample(gen, 1, 32, n, 4, x1.device))
    if not bool(valid.any()):
        return ""
    probe = pts if n <= 128 else pts.columns(torch.randperm(n, generator=gen, device=x1.device)[:128])
    h, score = _best("hsampson", hyp, valid, probe, th2, gen)
    h = h[0]
    if int((_errors("hsampson", h[None, None], probe)[0, 0] < th2).sum()) < 0.5 * probe.h1.shape[-1]:
        return ""
    h, _ = _local_optimize("hsampson", h, float(_msac(_errors("hsampson", h[None, None], pts)[0, 0], th2)), pts,
                           th2)
    # A plane or a pure rotation makes a homography fit (nearly) every F inlier; a dominant plane in a
    # general scene leaves a clear fraction of off-plane inliers.
    keep = _errors("hsampson", h[None, None], pts)[0, 0] < th2
    if int(keep.sum()) < _DEGENERATE_SHARE * n:
        return ""
    if model == "fundamental":
        return "planar_or_rotation"
    # Pure rotation: H = K2 R K1^-1 for the rotation R aligning the viewing rays (Kabsch on the unit rays of the H
    # inliers): if it explains the inliers as well as H does, the camera only rotated. (The singular values of
    # K2^-1 H K1, or its nearest rotation, are too noisy with narrow fields of view.)
    r1 = to_homogeneous(pixels_to_normalized(x1[keep], k1))
    r2 = to_homogeneous(pixels_to_normalized(x2[keep], k2))
    r1, r2 = r1 / r1.norm(dim=-1, keepdim=True), r2 / r2.norm(dim=-1, keepdim=True)
    rot = project_to_so3(r2.T @ r1)  # argmax_R sum r2^T R r1
    h_rot = k2 @ rot @ torch.linalg.inv(k1)
    explained = int((_errors("hsampson", h_rot[None, None], pts)[0, 0] < th2).sum())
    return "pure_rotation" if explained >= _DEGENERATE_SHARE * n else "planar"

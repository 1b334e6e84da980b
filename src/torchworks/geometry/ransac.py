"""Seeded, batched RANSAC (MSAC scoring, local optimisation) for H, F and E, with a degeneracy flag.

Hypotheses are vectorised across iterations: a round draws all its minimal samples at once, solves them as one
batched problem (4-point solve for H, the 7-point algorithm for F, the 5-point solver for E) and scores every
hypothesis against every point with one GEMM; rounds with many hypotheses on many points first rank them on a
random subset of the points (preemptive scoring) and fully score only the best sixteenth. The number of rounds is
usually one or two. E has two searches (``essential_solver``): ``"5point"`` (default) samples essential matrices
directly, ``"8point"`` searches F in pixels and upgrades it with K (projection onto the essential manifold). Both
end with cheirality and LM on the Sampson error of the inliers. (Projecting minimal F's onto the essential
manifold instead of using a true 5-point solver was clearly worse: temple ring views 1-2, 20+ deg rotation
error.) Inner local optimisation (LO) refits each new best model by iterated least squares on its inliers (for
E, the 5-point solver on the inliers' least-squares null space) and keeps the result when the MSAC score improves.

Degeneracy: when a single homography explains (nearly) all the F/E inliers, the points lie on a plane or the
camera only rotated, and F/E is not determined by the data even though a model is returned (OpenCV and kornia
report success silently). The result then carries ``degenerate=True`` and a ``degeneracy`` reason:
``"planar_or_rotation"`` for F, and for E (where K is known) ``"pure_rotation"`` when K^-1 H K is a rotation
up to scale, else ``"planar"``.

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

import torch

from torchworks.geometry._checks import skew, to_homogeneous
from torchworks.geometry.camera import pixels_to_normalized
from torchworks.geometry.epipolar import (
    _check_pairs,
    essential_from_fundamental,
    find_fundamental,
    find_fundamental_7point,
)
from torchworks.geometry.essential import project_to_essential, recover_pose, refine_pose_sampson
from torchworks.geometry.five_point import solve_5point_normalized
from torchworks.geometry.homography import find_homography, normalize_points
from torchworks.geometry.so3 import project_to_so3

MODELS = ("homography", "fundamental", "essential")
ESSENTIAL_SOLVERS = ("8point", "5point")
_LO_STEPS_E = 3  # measured on the temple pairs: same poses as 4 steps, one 5-point refit less
_SAMPLE_SIZE = {"homography": 4, "fundamental": 7, "essential": 7, "hsampson": 4}
# The degeneracy test scores H by its Sampson error, ~ sigma^2 chi^2 with 2 degrees of freedom, where the F/E
# inliers were selected on a Sampson error with 1: its threshold is the F/E one times the ratio of the two
# 95 % quantiles, chi2_2(0.95) / chi2_1(0.95) = 5.991 / 3.841, so that both tests keep the same share of
# noise-only correspondences.
_H_THRESHOLD_SCALE = 5.991464547107979 / 3.841458820694124
# Share of the F/E inliers a homography must explain for the data to be called planar / a pure rotation.
_DEGENERATE_SHARE = 0.9


@dataclass
class RansacResult:
    """Outcome of :func:`ransac`.

    Attributes:
        model: (3, 3) H, F or E (E in normalized coordinates, F/H in pixels).
        inliers: (N,) bool mask.
        num_inliers: number of inliers.
        score: MSAC cost (sum of min(e^2, threshold^2), px^2); lower is better.
        iterations: hypotheses drawn.
        degenerate: True when the data cannot determine the model (see module docstring).
        degeneracy: reason ("", "planar_or_rotation", "planar", "pure_rotation", "too_few_inliers").
        few_inliers: True when the model rests on fewer than ``min_inliers`` inliers or under
            ``min_inlier_fraction`` of the correspondences (see :func:`ransac`): treat it as unreliable.
        rotation: for "essential", the (3, 3) R of X2 = R X1 + t chosen by cheirality and refined by LM on the
            Sampson error of the inliers (then ``model`` = [t]x R); None otherwise.
        translation: for "essential", the (3,) unit t; None otherwise.
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
    """Both point sets laid out for scoring many hypotheses at once (length-N axes innermost)."""

    def __init__(self, x1: torch.Tensor, x2: torch.Tensor, k1=None, k2=None):
        self.x1, self.x2 = x1, x2
        self.hartley = None  # normalized points and transforms for the 4-point homography, built on first use
        n = x1.shape[0]
        self.h1 = torch.cat([x1.T, torch.ones_like(x1[:, :1]).T])  # (3, N)
        self.h2 = torch.cat([x2.T, torch.ones_like(x2[:, :1]).T])
        self.u2, self.v2 = x2[:, 0], x2[:, 1]
        # x2^T F x1 and the four line coordinates of the Sampson denominator are all linear in vec(F): one
        # (S, 9) @ (9, 5N) product gives them for S hypotheses.
        lin = x1.new_zeros(9, 5, n)
        lin[:, 0] = (self.h2[:, None, :] * self.h1[None, :, :]).reshape(9, n)  # kron(x2, x1)
        lin[0:3, 1], lin[3:6, 2] = self.h1, self.h1  # (F x1)_0, (F x1)_1
        lin[0::3, 3], lin[1::3, 4] = self.h2, self.h2  # (F^T x2)_0, (F^T x2)_1
        self.sampson_rows = lin.reshape(9, 5 * n)
        self.k1_inv = None if k1 is None else torch.linalg.inv(k1)
        self.k2_inv_t = None if k2 is None else torch.linalg.inv(k2).T
        if k1 is not None:  # normalized coordinates for the 5-point solver
            self.n1, self.n2 = pixels_to_normalized(x1, k1), pixels_to_normalized(x2, k2)

    def subset(self, idx: torch.Tensor) -> _Points:
        return _Points(self.x1[idx], self.x2[idx])


def _errors(kind: str, m: torch.Tensor, pts: _Points, chunk: int = 1 << 19) -> torch.Tensor:
    """Squared pixel errors of (S, 3, 3) (or (3, 3)) models on all N points: (S, N) (or (N,)).

    Transfer error x2 - H x1 for H, Sampson distance for F and E (E in normalized coordinates is mapped to pixels
    with K first). One GEMM per slice instead of the generic (..., N, 3) reductions of
    :func:`sampson_distance` (same values to rounding); evaluated in slices of about ``chunk`` hypothesis-point
    pairs to bound memory.
    """
    if m.dim() == 2:
        return _errors(kind, m[None], pts, chunk)[0]
    n = pts.h1.shape[1]
    step = max(1, chunk // max(n, 1))
    if m.shape[0] > step:
        return torch.cat([_errors(kind, m[i:i + step], pts, chunk) for i in range(0, m.shape[0], step)])
    if kind == "homography":
        p = m @ pts.h1  # (S, 3, N)
        err = (p[:, 0] / p[:, 2] - pts.u2).square() + (p[:, 1] / p[:, 2] - pts.v2).square()
    elif kind == "hsampson":
        err = _homography_sampson(m, pts)
    else:
        if kind == "essential":
            m = pts.k2_inv_t @ m @ pts.k1_inv
        sq = (m.reshape(-1, 9) @ pts.sampson_rows).view(-1, 5, n).square_()  # (S, 5, N)
        err = sq[:, 0] / (sq[:, 1] + sq[:, 2] + sq[:, 3] + sq[:, 4])
    return err.nan_to_num(nan=math.inf)


def _homography_sampson(h: torch.Tensor, pts: _Points) -> torch.Tensor:
    """(S, N) squared Sampson errors of (S, 3, 3) homographies: the first-order distance of (x1, x2) in R^4 to the
    surface x2 = H(x1), noise in both images (Hartley and Zisserman 4.2.6). Equals half the squared transfer error
    for H = I, and is ~ sigma^2 chi^2_2 under isotropic pixel noise sigma in both images."""
    p = h @ pts.h1  # (S, 3, N): (a, b, c) = H x1
    a, b, c = p[:, 0], p[:, 1], p[:, 2]
    u2, v2 = pts.u2, pts.v2
    e1, e2 = u2 * c - a, v2 * c - b  # algebraic residuals (rows of x2 x H x1)
    # Jacobians of (e1, e2) w.r.t. (x1, y1, x2, y2): j1 = (p, q, c, 0), j2 = (r, s, 0, c).
    hh = h[:, :, :, None]  # (S, 3, 3, 1) broadcasting over N
    jp, jq = u2 * hh[:, 2, 0] - hh[:, 0, 0], u2 * hh[:, 2, 1] - hh[:, 0, 1]
    jr, js = v2 * hh[:, 2, 0] - hh[:, 1, 0], v2 * hh[:, 2, 1] - hh[:, 1, 1]
    c2 = c * c
    aa, bb, cc = jp * jp + jq * jq + c2, jp * jr + jq * js, jr * jr + js * js + c2
    return (cc * e1 * e1 - 2 * bb * e1 * e2 + aa * e2 * e2) / (aa * cc - bb * bb)


def _best(kind: str, hyp: torch.Tensor, pts: _Points, th2: float, gen: torch.Generator
          ) -> tuple[torch.Tensor, float]:
    """The hypothesis with the lowest MSAC score, and that score.

    Many hypotheses on many points are first ranked on a random subset of the points and only the best
    sixteenth is scored on all of them (preemptive scoring, Nister 2003): the winner is the same or a near-tie
    that local optimisation then refines, at a fraction of the cost.
    """
    n, s = pts.h1.shape[1], hyp.shape[0]
    if s >= 64 and n >= 512:
        sub = torch.randperm(n, generator=gen, device=hyp.device)[: max(128, n // 8)]
        pre = _errors(kind, hyp, pts.subset(sub) if kind != "essential" else _subset_essential(pts, sub))
        keep = pre.clamp(max=th2).sum(-1).topk(max(8, s // 16), largest=False).indices
        hyp = hyp[keep]
    scores = _errors(kind, hyp, pts).clamp(max=th2).sum(-1)
    i = int(scores.argmin())
    return hyp[i], float(scores[i])


def _subset_essential(pts: _Points, idx: torch.Tensor) -> _Points:
    sub = _Points(pts.x1[idx], pts.x2[idx])
    sub.k1_inv, sub.k2_inv_t = pts.k1_inv, pts.k2_inv_t
    return sub


def _fit(kind: str, pts: _Points, inliers: torch.Tensor) -> torch.Tensor:
    """Least-squares refit on the inliers: (3, 3), or (S, 3, 3) candidates for the 5-point solver."""
    if kind in ("homography", "hsampson"):
        return find_homography(pts.x1[inliers], pts.x2[inliers])
    if kind == "fundamental":
        return find_fundamental(pts.x1[inliers], pts.x2[inliers])
    # The least-squares 4-dim null space of the inliers, then all real essential matrices in it.
    e, valid = solve_5point_normalized(pts.n1[inliers], pts.n2[inliers])
    return e[valid]


def _minimal(kind: str, pts: _Points, idx: torch.Tensor) -> torch.Tensor:
    """(S, m) sample indices -> (S', 3, 3) finite hypotheses (all real roots of the 7- and 5-point solvers)."""
    if kind in ("homography", "hsampson"):
        hyp = _homography_4point(pts, idx)
    elif kind == "fundamental":
        fs, valid = find_fundamental_7point(pts.x1[idx], pts.x2[idx])
        hyp = fs[valid]
    else:
        es, valid = solve_5point_normalized(pts.n1[idx], pts.n2[idx])
        hyp = es[valid]
    return hyp[torch.isfinite(hyp).flatten(-2).all(-1)]


def _homography_4point(pts: _Points, idx: torch.Tensor) -> torch.Tensor:
    """(S, 4) sample indices -> (S', 3, 3) homographies by an 8 x 8 solve with H[2, 2] = 1.

    Points are Hartley-normalized once for the whole set (not per sample), which keeps the system well scaled;
    exactly determined, so a linear solve replaces the DLT's SVD. Singular samples are dropped.
    """
    if pts.hartley is None:
        (y1, t1), (y2, t2) = normalize_points(pts.x1), normalize_points(pts.x2)
        pts.hartley = (y1, y2, t1, torch.linalg.inv(t2))
    y1, y2, t1, t2_inv = pts.hartley
    a, b = y1[idx], y2[idx]  # (S, 4, 2)
    x, y, u, v = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    o, i = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, i, o, o, o, -u * x, -u * y], -1)  # (S, 4, 8)
    rows_v = torch.stack([o, o, o, x, y, i, -v * x, -v * y], -1)
    sol, info = torch.linalg.solve_ex(torch.cat([rows_u, rows_v], -2), torch.cat([u, v], -1))  # (S, 8)
    hn = torch.cat([sol, torch.ones_like(sol[:, :1])], -1).unflatten(-1, (3, 3))
    h = t2_inv @ hn @ t1
    h = h / h[:, 2:, 2:]
    return h[(info == 0) & torch.isfinite(h).flatten(-2).all(-1)]


def _sample(gen: torch.Generator, count: int, n: int, m: int, device) -> torch.Tensor:
    """(count, m) indices of m distinct points out of n per row, from the private generator."""
    if n < 8 * m * m:  # few points: exact sampling without replacement (random keys, top m)
        return torch.rand(count, n, generator=gen, device=device).topk(m, dim=-1).indices
    # Many points: integer draws, redrawing the (rare, P ~ m^2 / 2n) rows that repeat an index.
    idx = torch.randint(n, (count, m), generator=gen, device=device)
    while True:
        srt = idx.sort(-1).values
        bad = (srt[:, 1:] == srt[:, :-1]).any(-1)
        if not bool(bad.any()):
            return idx
        idx[bad] = torch.randint(n, (int(bad.sum()), m), generator=gen, device=device)


def ransac(points1: torch.Tensor, points2: torch.Tensor, model: str, threshold: float = 1.0,
           confidence: float = 0.999, max_iterations: int = 10000, batch_size: int | None = None, seed: int = 0,
           intrinsics1: torch.Tensor | None = None, intrinsics2: torch.Tensor | None = None,
           local_optimization: bool = True, check_degeneracy: bool = True, essential_solver: str = "5point",
           min_inliers: int = 15, min_inlier_fraction: float = 0.2) -> RansacResult:
    """Robustly estimate H, F or E from correspondences containing outliers.

    All minimal samples of a round are drawn at once, solved as one batched problem and scored at once against
    every point; the first round draws ``batch_size`` samples and later rounds draw what the current inlier
    ratio still requires (up to 8 ``batch_size``), so a typical problem needs one or two rounds.

    Args:
        points1: (N, 2) pixels in image 1; points2: (N, 2) in image 2.
        model: "homography", "fundamental" or "essential".
        threshold: inlier threshold in pixels (transfer error for H, Sampson distance for F and E).
        confidence: stop when an all-inlier sample has been drawn with this probability.
        max_iterations: cap on the number of minimal samples.
        batch_size: minimal samples drawn in the first round; default 128, or 64 for the 5-point solver (each of
            its samples yields about five hypotheses, and five-point samples are all-inlier more often).
        seed: seed of the private generator (results are reproducible and do not touch torch's global RNG).
        intrinsics1, intrinsics2: (3, 3) K's, required for "essential".
        local_optimization: refit the best model on its inliers (IRLS) when that lowers the score.
        check_degeneracy: for F/E, test whether a homography explains the inliers (planar scene or rotation).
        essential_solver: for "essential": ``"5point"`` (default) samples E directly with the 5-point solver
            (:mod:`torchworks.geometry.five_point`; 5 points per sample, so fewer samples at high outlier
            ratios, and no F -> E upgrade); ``"8point"`` searches F in pixels (7-point samples, normalized 8-point
            refits) and upgrades it with K (the only search before the 5-point solver existed). Both end with
            cheirality (:func:`recover_pose`) and LM on the inliers' Sampson error.
        min_inliers, min_inlier_fraction: a model with fewer inliers, or a smaller inlier fraction, is returned
            with ``few_inliers=True``. Defaults 15 and 0.2: on the 16 neighbouring pairs of the temple ring
            (known K), the 6 wrong poses (56-179 degrees off) had 9-13 inliers (16-25 % of 40-63 matches), the 10
            right ones (0.06-1.3 degrees) 108-463 inliers (69-90 %).

    Returns:
        A :class:`RansacResult`.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if essential_solver not in ESSENTIAL_SOLVERS:
        raise ValueError(f"essential_solver must be one of {ESSENTIAL_SOLVERS}, got {essential_solver!r}")
    five = model == "essential" and essential_solver == "5point"
    _check_pairs(points1, points2, 5 if five else _SAMPLE_SIZE[model])
    if points1.dim() != 2:
        raise ValueError(f"ransac takes one problem, points of shape (N, 2); got {tuple(points1.shape)}")
    if model == "essential" and (intrinsics1 is None or intrinsics2 is None):
        raise ValueError("model='essential' needs intrinsics1 and intrinsics2")
    if min_inliers < 0 or not 0 <= min_inlier_fraction <= 1:
        raise ValueError(f"need min_inliers >= 0 and 0 <= min_inlier_fraction <= 1, got {min_inliers}, "
                         f"{min_inlier_fraction}")
    if threshold <= 0 or not 0 < confidence < 1:
        raise ValueError(f"need threshold > 0 and 0 < confidence < 1, got {threshold}, {confidence}")
    x1, x2 = points1.detach(), points2.detach()
    # With the 8-point solver, E is searched as F in pixels (7-point hypotheses, Sampson scores), then upgraded
    # with K: projecting each minimal F (or an 8-point E) onto the essential manifold scores far worse on narrow
    # fields of view (temple ring: 85 vs 126 inliers, rotation errors of 20 deg). The 5-point solver samples
    # true essential matrices, so it searches E itself.
    search = "essential" if five else ("fundamental" if model == "essential" else model)
    pts = _Points(x1, x2, intrinsics1, intrinsics2) if model == "essential" else _Points(x1, x2)
    n, m = x1.shape[0], (5 if five else _SAMPLE_SIZE[search])
    th2 = threshold**2
    if batch_size is None:
        batch_size = 64 if five else 128
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    gen = torch.Generator(device=x1.device).manual_seed(seed)
    best_score, best_model, needed, drawn = math.inf, None, max_iterations, 0
    while drawn < min(needed, max_iterations):
        count = min(max(needed - drawn, batch_size // 4) if drawn else batch_size, 8 * batch_size,
                    max_iterations - drawn)
        hyp = _minimal(search, pts, _sample(gen, count, n, m, x1.device))
        drawn += count
        if hyp.shape[0] == 0:
            continue
        cand, score = _best(search, hyp, pts, th2, gen)
        if score < best_score:
            best_score, best_model = score, cand
            if local_optimization:  # LO on every new best: the better inlier ratio also ends the search sooner
                best_model, best_score = _local_optimize(search, best_model, best_score, pts, th2)
            ratio = float((_errors(search, best_model, pts) < th2).double().mean())
            needed = _iterations_needed(ratio, m, confidence)
    if best_model is None:
        return RansacResult(torch.full((3, 3), float("nan"), dtype=x1.dtype), torch.zeros(n, dtype=torch.bool),
                            0, math.inf, drawn, True, "too_few_inliers", few_inliers=True)
    inliers = _errors(search, best_model, pts) < th2
    rot = trans = None
    if model == "essential" and int(inliers.sum()) >= 6:
        e = best_model if five else project_to_essential(essential_from_fundamental(best_model, intrinsics1,
                                                                                    intrinsics2))
        rot, trans, _ = recover_pose(e, x1[inliers], x2[inliers], intrinsics1, intrinsics2)
        # LM on the inliers, then again while the refined pose changes the inlier set (at most 3 passes): the
        # minimal model's inliers can miss a few that move the optimum (temple 1-2 with the 8-point search: 1.19
        # deg after one pass, 0.41 after the second).
        for _ in range(3):
            rot, trans = refine_pose_sampson(rot, trans, x1[inliers], x2[inliers], intrinsics1, intrinsics2)
            err = _errors("essential", skew(trans) @ rot, pts)
            if torch.equal(err < th2, inliers) or int((err < th2).sum()) < 6:
                break
            inliers = err < th2
        best_model = skew(trans) @ rot
        best_score, inliers = float(err.clamp(max=th2).sum()), err < th2
    count = int(inliers.sum())
    result = RansacResult(best_model, inliers, count, best_score, drawn, rotation=rot, translation=trans,
                          few_inliers=count < min_inliers or count < min_inlier_fraction * n)
    if int(inliers.sum()) < m + 1:
        result.degenerate, result.degeneracy = True, "too_few_inliers"
    elif check_degeneracy and model != "homography":
        result.degeneracy = _degeneracy(model, x1[inliers], x2[inliers], threshold, seed, intrinsics1, intrinsics2)
        result.degenerate = bool(result.degeneracy)
    return result


def _iterations_needed(inlier_ratio: float, sample_size: int, confidence: float) -> int:
    p_good = inlier_ratio**sample_size
    if p_good <= 0:
        return 10**9
    if p_good >= 1:
        return 1
    return math.ceil(math.log(1 - confidence) / math.log(1 - p_good))


def _local_optimize(kind, best, best_score, pts, th2, steps: int | None = None):
    # Iterated least squares on the inliers with a threshold shrinking to the final one (LO-RANSAC): the wide
    # first pass lets the refit recruit inliers the minimal model missed.
    if steps is None:  # a 5-point refit costs several 8-point ones: fewer, coarser steps for E
        steps = _LO_STEPS_E if kind == "essential" else 4
    current, previous = best, None
    minimum = 6 if kind == "essential" else _SAMPLE_SIZE[kind] + 1
    for step in range(steps):
        err = _errors(kind, current, pts)
        scale = 4.0 - 3.0 * step / max(steps - 1, 1)
        inliers = err < scale * th2
        if int(inliers.sum()) < minimum or (previous is not None and torch.equal(inliers, previous)):
            break
        previous = inliers
        cand = _fit(kind, pts, inliers)
        if cand.dim() == 3:  # several real solutions: keep the best scoring one
            if cand.shape[0] == 0:
                break
            scores = _errors(kind, cand, pts).clamp(max=th2).sum(-1)
            current, score = cand[int(scores.argmin())], float(scores.min())
        else:
            current = cand
            score = float(_errors(kind, current, pts).clamp(max=th2).sum())
        if score < best_score:
            best, best_score = current, score
    return best, best_score


def _degeneracy(model, x1, x2, threshold, seed, k1, k2) -> str:
    n = x1.shape[0]
    if n < 8:
        return ""
    pts, th2 = _Points(x1, x2), threshold**2 * _H_THRESHOLD_SCALE
    gen = torch.Generator(device=x1.device).manual_seed(seed + 1)
    # If one H fits >= 90 % of the points, 128 four-point samples all miss it with probability < 1e-50.
    hyp = _minimal("hsampson", pts, _sample(gen, 128, n, 4, x1.device))
    if hyp.shape[0] == 0:
        return ""
    h, score = _best("hsampson", hyp, pts, th2, gen)
    # Local optimisation only when the plane hypothesis is plausible: a minimal H from noisy points already
    # explains well over half of a plane's points, and general scenes (the common case) stop here.
    if int((_errors("hsampson", h, pts) < th2).sum()) < 0.5 * n:
        return ""
    h, _ = _local_optimize("hsampson", h, score, pts, th2)
    # A plane or a pure rotation makes a homography fit (nearly) every F inlier; a dominant plane in a
    # general scene leaves a clear fraction of off-plane inliers.
    if int((_errors("hsampson", h, pts) < th2).sum()) < _DEGENERATE_SHARE * n:
        return ""
    if model == "fundamental":
        return "planar_or_rotation"
    # Pure rotation: H = K2 R K1^-1 for the rotation R aligning the viewing rays (Kabsch on the unit rays of the H
    # inliers): if it explains the inliers as well as H does, the camera only rotated. (The singular values of
    # K2^-1 H K1, or its nearest rotation, are too noisy with narrow fields of view.)
    keep = _errors("hsampson", h, pts) < th2
    r1 = to_homogeneous(pixels_to_normalized(x1[keep], k1))
    r2 = to_homogeneous(pixels_to_normalized(x2[keep], k2))
    r1, r2 = r1 / r1.norm(dim=-1, keepdim=True), r2 / r2.norm(dim=-1, keepdim=True)
    rot = project_to_so3(r2.T @ r1)  # argmax_R sum r2^T R r1
    h_rot = k2 @ rot @ torch.linalg.inv(k1)
    explained = int((_errors("hsampson", h_rot, pts) < th2).sum())
    return "pure_rotation" if explained >= _DEGENERATE_SHARE * n else "planar"

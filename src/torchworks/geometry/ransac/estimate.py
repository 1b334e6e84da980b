"""The :func:`ransac` entry point and its result: rounds of batched hypotheses, local optimisation of each new
best, then per problem the final refinement and the flags.

Part of :mod:`torchworks.geometry.ransac`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from torchworks.geometry.epipolar import _check_pairs, essential_from_fundamental
from torchworks.geometry.essential import _skew_np, project_to_essential
from torchworks.geometry.ransac.degeneracy import _degeneracy
from torchworks.geometry.ransac.hypotheses import (
    _SAMPLE_SIZE,
    _best,
    _iterations_needed,
    _local_optimize,
    _minimal,
    _sample,
)
from torchworks.geometry.ransac.points import _errors, _Points
from torchworks.geometry.ransac.pose import _local_optimize_pose, _refine_final, _robust_set

MODELS = ("homography", "fundamental", "essential")
ESSENTIAL_SOLVERS = ("8point", "5point")


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
    problems' current inlier ratios still require (up to 3 ``batch_size``, so that a poor first best does not
    commit to hundreds of samples the next best would not need), so a typical problem needs one to three rounds.
    A (B, N, 2) batch shares these rounds: its B problems are solved and scored together.

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
        count = min(max(most, batch_size // 4) if drawn else batch_size, 3 * batch_size, max_iterations - drawn)
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
            # The 5-point search stops on the share of the robust set (errors within 3 sigma, clamped to 1-2x
            # the threshold; see :func:`_stopping_ratio`), not of the hard inliers.
            needed[b] = _iterations_needed(_stopping_ratio(err, th2) if five else float((err < th2).mean()),
                                           m, confidence)
    results = [_finish(b, views[b], model, search, five, best_model[b], best_score[b], best_pose[b], best_err[b],
                       drawn, th2, threshold, seed, check_degeneracy, min_inliers, min_inlier_fraction)
               for b in range(batch)]
    return results[0] if single else results


def _stopping_ratio(err: np.ndarray, th2: float) -> float:
    """The inlier ratio the 5-point search stops on: the share of the correspondences in the robust set of the best
    model (squared Sampson errors below (3 sigma)^2, sigma the MAD estimate, clamped to [th^2, 4 th^2]).

    Why: with noise near the threshold the hard count misses the tail of the true inliers (at 1 px noise and a
    1 px threshold, about a third of them), and the bound (1 - w^5) then asks for several times the samples the
    data need: a sample of five points from that tail is still an all-inlier sample, which LO pulls onto the
    true pose. MAGSAC++ (Barath et al., CVPR 2020; OpenCV's USAC_MAGSAC) likewise stops on the inliers at its
    maximum threshold, 2.5x the given one for E; ours stops at most at 2x. With noise well under the threshold
    the robust set is the hard set and nothing changes.
    """
    return float(_robust_set(err, th2).mean())


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
            pose, err = _refine_final(pose, pts, th2, err)
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

"""Hypotheses: seeded minimal samples, the batched minimal solvers (4-point H, 7-point F, 5-point E), ranking by
MSAC score (preemptive on a subset of the points when there are many), the adaptive number of samples, and the
local optimisation of H and F by iterated least squares.

Part of :mod:`torchworks.geometry.ransac`.
"""

from __future__ import annotations

import math

import torch

from torchworks.geometry.epipolar import find_fundamental, find_fundamental_7point
from torchworks.geometry.five_point import _solve_raw as _solve_5point
from torchworks.geometry.homography import find_homography, normalize_points
from torchworks.geometry.ransac.points import _errors, _msac, _Points

_SAMPLE_SIZE = {"homography": 4, "fundamental": 7, "essential": 5, "hsampson": 4}


def _best(kind: str, hyp: torch.Tensor, valid: torch.Tensor, pts: _Points, th2: float, gen: torch.Generator
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per problem, the hypothesis with the lowest MSAC score: ((B, 3, 3) models, (B,) scores; inf without any).

    Many hypotheses on many points are first ranked on a random subset of the points and only the best
    thirty-second is scored on all of them (preemptive scoring, Nister 2003): the winner is the same or a near-tie
    that local optimisation then refines, at a fraction of the cost.
    """
    n, s = pts.h1.shape[-1], hyp.shape[1]
    if s >= 64 and n >= 512:
        sub = torch.randperm(n, generator=gen, device=hyp.device)[: max(128, n // 8)]
        if kind == "essential":  # rank in float32: 3x faster, Sampson errors within 0.004 px^2, the same order
            pre = _errors(kind, hyp.float(), pts.columns(sub, torch.float32))
        else:
            pre = _errors(kind, hyp, pts.columns(sub))
        pre = pre.clamp_(max=th2).sum(-1).masked_fill_(~valid, math.inf)  # _msac, in place on a temporary
        keep = pre.topk(max(8, s // 32), dim=1, largest=False).indices  # (B, S')
        hyp = hyp.gather(1, keep[..., None, None].expand(-1, -1, 3, 3))
        valid = valid.gather(1, keep)
    scores = _errors(kind, hyp, pts).clamp_(max=th2).sum(-1).masked_fill_(~valid, math.inf)  # _msac, in place
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


def _iterations_needed(inlier_ratio: float, sample_size: int, confidence: float) -> int:
    p_good = inlier_ratio**sample_size
    if p_good <= 0:
        return 10**9
    if p_good >= 1:
        return 1
    return math.ceil(math.log(1 - confidence) / math.log(1 - p_good))


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

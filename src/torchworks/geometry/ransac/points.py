"""Correspondences laid out for scoring many hypotheses at once, and the batched error functions (MSAC scores).

Part of :mod:`torchworks.geometry.ransac`.
"""

from __future__ import annotations

import math

import torch

from torchworks.geometry.camera import pixels_to_normalized
from torchworks.geometry.essential import _SampsonProblem


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

    def columns(self, idx: torch.Tensor, dtype: torch.dtype | None = None) -> _Points:
        """The same problems restricted to the points ``idx`` (N',), for scoring only: the layouts are sliced from
        this object's instead of being rebuilt; ``dtype``, if given, converts them (float32 for ranking)."""
        def cut(v: torch.Tensor | None) -> torch.Tensor | None:
            return v if v is None or dtype is None else v.to(dtype)

        sub = object.__new__(_Points)
        sub.x1, sub.x2, sub.k1, sub.k2, sub.hartley = cut(self.x1[:, idx]), cut(self.x2[:, idx]), cut(self.k1), cut(
            self.k2), None
        sub.h1, sub.h2 = cut(self.h1[..., idx]), cut(self.h2[..., idx])
        sub.u2, sub.v2 = cut(self.u2[:, idx]), cut(self.v2[:, idx])
        sub.k1_inv, sub.k2_inv_t, sub._sampson_problems = cut(self.k1_inv), cut(self.k2_inv_t), {}
        b, n = self.h1.shape[0], self.h1.shape[-1]
        sub._sampson_rows = None if self._sampson_rows is None else cut(
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
        # In place: the (B, S, N) temporaries are the bulk of the cost of ranking hundreds of hypotheses.
        err = sq[:, :, 1] + sq[:, :, 2]
        err += sq[:, :, 3]
        err += sq[:, :, 4]
        return torch.div(sq[:, :, 0], err, out=err).nan_to_num_(nan=math.inf)
    return err.nan_to_num(nan=math.inf)


def _homography_sampson(h: torch.Tensor, pts: _Points) -> torch.Tensor:
    """(B, S, N) squared Sampson errors of (B, S, 3, 3) homographies: the first-order distance of (x1, x2) in R^4
    to the surface x2 = H(x1), noise in both images (Hartley and Zisserman 4.2.6). Equals half the squared transfer
    error for H = I, and is ~ sigma^2 chi^2_2 under isotropic pixel noise sigma in both images."""
    return _homography_sampson_of(h, pts.h1, pts.u2, pts.v2)


def _homography_sampson_of(h, h1, u2, v2):
    """:func:`_homography_sampson` on arrays, tensors or NumPy alike: (B, S, 3, 3) H, (B, 3, N) homogeneous x1,
    (B, N) u2 and v2 -> (B, S, N)."""
    p = h @ h1[:, None]  # (B, S, 3, N): (a, b, c) = H x1
    a, b, c = p[:, :, 0], p[:, :, 1], p[:, :, 2]
    u2, v2 = u2[:, None], v2[:, None]
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

"""RKD: relational knowledge distillation (distance-wise and angle-wise)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.registry import DISTILL_LOSSES
from torchworks.distill.losses._common import check_batch_vectors


def normalized_distances(e: Tensor, eps: float = 1e-12) -> Tensor:
    """Pairwise Euclidean distances (B, B) divided by their mean over the off-diagonal pairs."""
    sq = e.pow(2).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * e @ e.t()).clamp_min(eps)
    # clamping keeps sqrt's derivative finite where two rows coincide (and on the diagonal, zeroed below)
    off = ~torch.eye(len(e), dtype=torch.bool, device=e.device)
    d = torch.where(off, d2.sqrt(), torch.zeros_like(d2))
    return d / d[off].mean()


def angles(e: Tensor) -> Tensor:
    """Cosines <u_ji, u_ki> with u_ji = (e_j - e_i)/||e_j - e_i||, for every vertex i: (B, B, B), flattened.

    Pairs with j == i give a zero vector (F.normalize maps 0 to 0), so those entries are 0 on both sides.
    """
    diff = F.normalize(e[None, :, :] - e[:, None, :], dim=2)  # (B, B, D): [i, j] = e_j - e_i, normalised
    return torch.einsum("ijd,ikd->ijk", diff, diff).reshape(-1)


@DISTILL_LOSSES.register("rkd")
class RKDLoss(nn.Module):
    """Relational KD: transfer mutual distances and angles of the embedded batch.

    .. math::
        \\psi_D(t_i, t_j) = \\frac{\\|t_i - t_j\\|_2}{\\mu},\\ \\mu = \\frac{1}{|\\chi^2|}\\sum \\|t_i - t_j\\|_2
        \\qquad \\psi_A(t_i, t_j, t_k) = \\langle e^{ij}, e^{kj} \\rangle

        L_{RKD} = w_D \\sum_{(i,j)} \\ell_\\delta(\\psi_D^t, \\psi_D^s)
                  + w_A \\sum_{(i,j,k)} \\ell_\\delta(\\psi_A^t, \\psi_A^s)

    with the Huber (smooth-L1, delta = 1) loss averaged over all B^2 pairs / B^3 triplets. Paper and the
    authors' code agree (w_D = 25, w_A = 50); the teacher side is computed without gradient.

    Args:
        w_dist: weight of the distance term (25).
        w_angle: weight of the angle term (50).

    Inputs:
        f_s: student embedding (B, D_s) (any (B, ...) is flattened), B >= 2.
        f_t: teacher embedding (B, D_t); dimensions may differ; detached inside.

    References:
        Park, Kim, Lu, Cho, "Relational Knowledge Distillation", CVPR 2019, arXiv:1904.05068.
        Reference implementations: lenscloth/RKD; HobbitLong/RepDistiller ``distiller_zoo/RKD.py``.
    """

    inputs = "feature"
    init_only = False

    def __init__(self, w_dist: float = 25.0, w_angle: float = 50.0) -> None:
        super().__init__()
        self.w_dist, self.w_angle = float(w_dist), float(w_angle)

    def forward(self, f_s: Tensor, f_t: Tensor) -> Tensor:
        s, t = check_batch_vectors("rkd", f_s, f_t)
        if s.shape[0] < 2:
            raise ValueError(f"rkd: needs a batch of at least 2 samples, got {tuple(f_s.shape)}")
        loss = s.new_zeros(())
        if self.w_dist:
            loss = loss + self.w_dist * F.smooth_l1_loss(normalized_distances(s), normalized_distances(t))
        if self.w_angle:
            loss = loss + self.w_angle * F.smooth_l1_loss(angles(s), angles(t))
        return loss

    def extra_repr(self) -> str:
        return f"w_dist={self.w_dist}, w_angle={self.w_angle}"

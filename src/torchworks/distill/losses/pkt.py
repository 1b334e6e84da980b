"""PKT: probabilistic knowledge transfer via cosine-similarity distributions."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from torchworks.core.registry import DISTILL_LOSSES
from torchworks.distill.losses._common import check_batch_vectors


def conditional_probabilities(f: Tensor, eps: float) -> Tensor:
    """Rows of the cosine-similarity kernel mapped to [0, 1] and normalised to sum 1: (B, D) -> (B, B)."""
    f = f / (f.norm(dim=1, keepdim=True) + eps)
    k = (f @ f.t() + 1.0) / 2.0
    return k / k.sum(1, keepdim=True)


@DISTILL_LOSSES.register("pkt")
class PKTLoss(nn.Module):
    """Probabilistic knowledge transfer: match the conditional distributions of the samples in feature space.

    .. math::
        K(a, b) = \\tfrac{1}{2}(\\cos(a, b) + 1), \\quad p_{j|i} = \\frac{K(t_i, t_j)}{\\sum_k K(t_i, t_k)}, \\quad
        L_{PKT} = \\frac{1}{B^2} \\sum_{i, j} p_{j|i} \\log \\frac{p_{j|i} + \\epsilon}{q_{j|i} + \\epsilon}

    q from the student features likewise. The paper sums the KL over i, j; the author's code (and
    RepDistiller, whose weight 30000 is calibrated for it) averages over the B^2 entries, which is what is
    computed here. Feature sizes of teacher and student may differ.

    Args:
        eps: stabiliser in the normalisation and the log (1e-7, as in the author's code).

    Inputs:
        f_s: student features (B, D_s) (flattened if more dims).
        f_t: teacher features (B, D_t); detached inside.

    References:
        Passalis, Tefas, "Learning Deep Representations with Probabilistic Knowledge Transfer", ECCV 2018,
        arXiv:1803.10837. Reference implementations: passalis/probabilistic_kt;
        HobbitLong/RepDistiller ``distiller_zoo/PKT.py``.
    """

    inputs = "feature"
    init_only = False

    def __init__(self, eps: float = 1e-7) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, f_s: Tensor, f_t: Tensor) -> Tensor:
        s, t = check_batch_vectors("pkt", f_s, f_t)
        q = conditional_probabilities(s, self.eps)
        p = conditional_probabilities(t, self.eps)
        return torch.mean(p * torch.log((p + self.eps) / (q + self.eps)))

"""AT: attention transfer on spatial attention maps."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.registry import DISTILL_LOSSES
from torchworks.distill.losses._common import TensorOrList, check_pairs, pool_to_smaller


def attention_map(f: Tensor, p: float = 2.0) -> Tensor:
    """Channel-pooled, L2-normalised activation-based attention: (B, C, H, W) -> (B, H*W).

    Uses mean_c |A_c|^p; the mean instead of the paper's sum only rescales before normalisation.
    ``abs`` matters for pre-ReLU maps and odd p; for post-ReLU maps it is a no-op.
    """
    return F.normalize(f.abs().pow(p).mean(1).flatten(1), dim=1)


@DISTILL_LOSSES.register("at")
class ATLoss(nn.Module):
    """Activation-based attention transfer.

    With Q = vec(mean_c |A_c|^p) for each layer j:

    .. math::
        L_{AT} = \\sum_j w_j \\, \\frac{1}{B \\, HW} \\sum_b \\Big\\| \\frac{Q^s_{j,b}}{\\|Q^s_{j,b}\\|_2}
                 - \\frac{Q^t_{j,b}}{\\|Q^t_{j,b}\\|_2} \\Big\\|_2^2

    The paper writes beta/2 times the (unsquared) p-norm of the difference; its own code, and RepDistiller's,
    use the squared difference averaged over batch and positions, which is what is computed here (no mode
    switch: paper code and reference agree). Maps of different spatial size are adaptive-average-pooled to
    the smaller one, as in RepDistiller. RepDistiller weights the sum by beta = 1000.

    Args:
        p: exponent of the attention map (2 in the paper and RepDistiller).
        weights: optional per-layer weights w_j (default all 1).

    Inputs:
        g_s: student maps, a tensor (B, C, H, W) or a list of them (channel counts may differ from the teacher).
        g_t: teacher maps, same length; detached inside.

    References:
        Zagoruyko, Komodakis, "Paying More Attention to Attention", ICLR 2017, arXiv:1612.03928.
        Reference implementations: szagoruyko/attention-transfer; HobbitLong/RepDistiller ``distiller_zoo/AT.py``.
    """

    inputs = "features"
    init_only = False

    def __init__(self, p: float = 2.0, weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.p = float(p)
        self.weights = None if weights is None else [float(w) for w in weights]

    def forward(self, g_s: TensorOrList, g_t: TensorOrList) -> Tensor:
        g_s, g_t = check_pairs("at", g_s, g_t, ndim=4, expected=None if self.weights is None else len(self.weights))
        total = g_s[0].new_zeros(())
        for j, (f_s, f_t) in enumerate(zip(g_s, g_t, strict=True)):
            f_s, f_t = pool_to_smaller(f_s, f_t)
            term = (attention_map(f_s, self.p) - attention_map(f_t, self.p)).pow(2).mean()
            total = total + (1.0 if self.weights is None else self.weights[j]) * term
        return total

    def extra_repr(self) -> str:
        return f"p={self.p}"

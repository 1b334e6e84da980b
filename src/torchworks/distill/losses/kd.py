"""KD: Hinton's temperature-softened logit matching."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.registry import DISTILL_LOSSES
from torchworks.distill.losses._common import check_logits


def kd_div(z_s: Tensor, z_t: Tensor, temperature: float) -> Tensor:
    """Batch-mean KL(p_t || p_s) of temperature-softened distributions, times T^2.

    Kept as a function because DKD and the tests reuse it. ``z_t`` must already be detached.
    """
    log_p_s = F.log_softmax(z_s / temperature, dim=1)
    log_p_t = F.log_softmax(z_t / temperature, dim=1)
    # log_target avoids log(softmax) underflow to -inf for confident teachers
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * temperature**2


@DISTILL_LOSSES.register("kd")
class KDLoss(nn.Module):
    """Knowledge distillation with soft targets.

    .. math::
        L_{KD} = T^2 \\, \\frac{1}{B} \\sum_b \\mathrm{KL}\\big(\\sigma(z^t_b / T) \\,\\|\\, \\sigma(z^s_b / T)\\big)

    The T^2 factor keeps the gradient magnitude comparable to the cross-entropy term when T changes
    (Hinton et al., Sec. 2). KL differs from the paper's soft cross-entropy only by the teacher entropy,
    a constant, so gradients are identical. RepDistiller's ``DistillKL`` computes the same value with the
    deprecated ``size_average=False`` and a division by B; this module uses ``reduction="batchmean"``.

    Args:
        T: temperature; RepDistiller uses 4 on CIFAR-100 with weights CE 0.1, KD 0.9.

    Inputs:
        z_s: student logits (B, K), any float dtype.
        z_t: teacher logits (B, K); detached inside, so no gradient ever reaches the teacher.

    Returns:
        Scalar loss.

    References:
        Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", NIPS-W 2014, arXiv:1503.02531.
        Reference implementation: HobbitLong/RepDistiller ``distiller_zoo/KD.py``.
    """

    inputs = "logits"
    init_only = False

    def __init__(self, T: float = 4.0) -> None:
        super().__init__()
        if T <= 0:
            raise ValueError(f"kd: temperature T must be > 0, got {T}")
        self.T = float(T)

    def forward(self, z_s: Tensor, z_t: Tensor) -> Tensor:
        z_s, z_t = check_logits("kd", z_s, z_t)
        return kd_div(z_s, z_t, self.T)

    def extra_repr(self) -> str:
        return f"T={self.T}"

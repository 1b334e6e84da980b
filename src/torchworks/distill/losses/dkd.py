"""DKD: decoupled knowledge distillation (target-class and non-target-class terms)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.registry import DISTILL_LOSSES
from torchworks.distill.losses._common import check_logits, check_targets


def _binary_log_probs(z: Tensor, gt: Tensor) -> Tensor:
    """log [p_target, 1 - p_target] per row, (B, 2), computed without forming 1 - p (which cancels badly)."""
    lse_all = torch.logsumexp(z, dim=1)
    lse_other = torch.logsumexp(z.masked_fill(gt, float("-inf")), dim=1)
    z_target = z[gt]
    return torch.stack([z_target - lse_all, lse_other - lse_all], dim=1)


@DISTILL_LOSSES.register("dkd")
class DKDLoss(nn.Module):
    """Decoupled KD: classical KD split into target-class (TCKD) and non-target-class (NCKD) parts, re-weighted.

    With p = softmax(z / T), b = [p_gt, 1 - p_gt] and p̂ the softmax over the non-target classes only:

    .. math::
        L_{DKD} = T^2 \\big(\\alpha \\, \\mathrm{KL}(b^t \\| b^s)
                  + \\beta \\, \\mathrm{KL}(\\hat p^t \\| \\hat p^s)\\big)

    averaged over the batch. KD equals TCKD + (1 - p^t_gt) NCKD; DKD removes the (1 - p^t_gt) coupling.
    mdistiller masks the target logit with -1000 and takes ``log(softmax)``; here the non-target logits are
    gathered into a (B, K-1) tensor and the binary terms use log-sum-exp, which gives the same value without
    a magic constant or log(0). The linear warm-up of the DKD recipe (``min(epoch / 20, 1)``) belongs to the
    training schedule, not to this module.

    Args:
        alpha: TCKD weight (1.0 in the paper).
        beta: NCKD weight (8.0 default; the mdistiller CIFAR-100 configs use 2 for resnet56->resnet20 and
            resnet110->resnet32, 6 for vgg13->vgg8 and the wrn pairs).
        T: temperature (4 on CIFAR-100).

    Inputs:
        z_s: student logits (B, K), K >= 2.
        z_t: teacher logits (B, K); detached inside.
        target: ground-truth class ids (B,) int64.

    References:
        Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022, arXiv:2203.08679.
        Reference implementation: megvii-research/mdistiller ``mdistiller/distillers/DKD.py``.
    """

    inputs = "logits"
    init_only = False
    needs_target = True

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, T: float = 4.0) -> None:
        super().__init__()
        if T <= 0:
            raise ValueError(f"dkd: temperature T must be > 0, got {T}")
        self.alpha, self.beta, self.T = float(alpha), float(beta), float(T)

    def forward(self, z_s: Tensor, z_t: Tensor, target: Tensor | None = None) -> Tensor:
        z_s, z_t = check_logits("dkd", z_s, z_t)
        target = check_targets("dkd", target, z_s)
        B, K = z_s.shape
        if K < 2:
            raise ValueError(f"dkd: needs at least 2 classes, got logits of shape ({B}, {K})")
        zs, zt = z_s / self.T, z_t / self.T
        gt = F.one_hot(target, K).bool()

        lb_s, lb_t = _binary_log_probs(zs, gt), _binary_log_probs(zt, gt)
        tckd = (lb_t.exp() * (lb_t - lb_s)).sum(1).mean()

        other = ~gt
        ls_hat = F.log_softmax(zs[other].view(B, K - 1), dim=1)  # (B, K-1): target column removed
        lt_hat = F.log_softmax(zt[other].view(B, K - 1), dim=1)
        nckd = (lt_hat.exp() * (lt_hat - ls_hat)).sum(1).mean()
        return self.T**2 * (self.alpha * tckd + self.beta * nckd)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, T={self.T}"

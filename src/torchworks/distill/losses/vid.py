"""VID: variational information distillation with a learned heteroscedastic Gaussian."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.core.registry import DISTILL_LOSSES
from torchworks.distill.losses._common import TensorOrList, check_pairs, pool_to_smaller, shape_str


class VIDHead(nn.Module):
    """Predicts the teacher map's mean from the student map (three 1x1 convs) and holds a per-channel variance.

    The variance is softplus(log_scale) + eps; ``log_scale`` is an ``nn.Parameter`` so that it is actually
    learned (mdistiller keeps it in a plain list and never trains it).
    """

    def __init__(self, s_channels: int, t_channels: int, mid_channels: int | None = None, init_var: float = 5.0,
                 eps: float = 1e-5) -> None:
        super().__init__()
        mid = t_channels if mid_channels is None else mid_channels
        self.mean = nn.Sequential(
            nn.Conv2d(s_channels, mid, 1, bias=False),
            nn.ReLU(),
            nn.Conv2d(mid, mid, 1, bias=False),
            nn.ReLU(),
            nn.Conv2d(mid, t_channels, 1, bias=False),
        )
        # inverse softplus so that softplus(log_scale) + eps == init_var at the start
        self.log_scale = nn.Parameter(torch.full((t_channels,), math.log(math.expm1(init_var - eps))))
        self.eps = eps
        self.s_channels, self.t_channels = s_channels, t_channels

    def variance(self) -> Tensor:
        return F.softplus(self.log_scale) + self.eps


@DISTILL_LOSSES.register("vid")
class VIDLoss(nn.Module):
    """Variational information distillation: maximise a variational lower bound of I(t; s).

    Each teacher layer t (B, C, H, W) is modelled as a Gaussian whose mean mu(s) is regressed from the student
    layer and whose per-channel variance sigma_c^2 is a free parameter. The loss is the negative
    log-likelihood without the constant:

    .. math::
        L_{VID} = \\sum_j \\frac{1}{B C H W} \\sum_{b,c,h,w}
                  \\Big( \\frac{(t_{bchw} - \\mu_{bchw}(s))^2}{2 \\sigma_c^2} + \\frac{1}{2} \\log \\sigma_c^2 \\Big)

    Paper and reference code agree. Maps of different spatial size are pooled to the smaller one.
    RepDistiller uses the three stage outputs with weight 1; the regressors and variances live in ``heads``.

    Args:
        s_channels: student channel count per layer.
        t_channels: teacher channel count per layer (same length).
        init_var: initial variance (5.0 in the author's code).

    Inputs:
        g_s: student maps (B, Cs_j, H, W), a tensor or list.
        g_t: teacher maps (B, Ct_j, H', W'); detached inside.

    References:
        Ahn et al., "Variational Information Distillation for Knowledge Transfer", CVPR 2019, arXiv:1904.05835.
        Reference implementations: ssahn0215/variational-information-distillation;
        HobbitLong/RepDistiller ``distiller_zoo/VID.py``.
    """

    inputs = "features"
    init_only = False

    def __init__(self, s_channels: int | Sequence[int], t_channels: int | Sequence[int], init_var: float = 5.0) -> None:
        super().__init__()
        s_channels = [s_channels] if isinstance(s_channels, int) else list(s_channels)
        t_channels = [t_channels] if isinstance(t_channels, int) else list(t_channels)
        if len(s_channels) != len(t_channels):
            raise ShapeError(f"vid: student layers {s_channels} and teacher layers {t_channels} differ in number")
        pairs = zip(s_channels, t_channels, strict=True)
        self.heads = nn.ModuleList(VIDHead(s, t, init_var=init_var) for s, t in pairs)

    def forward(self, g_s: TensorOrList, g_t: TensorOrList) -> Tensor:
        g_s, g_t = check_pairs("vid", g_s, g_t, ndim=4, expected=len(self.heads))
        total = g_s[0].new_zeros(())
        for head, f_s, f_t in zip(self.heads, g_s, g_t, strict=True):
            if f_s.shape[1] != head.s_channels or f_t.shape[1] != head.t_channels:
                raise ShapeError(
                    f"vid: head built for {head.s_channels}->{head.t_channels} channels, "
                    f"got student {shape_str(f_s)} and teacher {shape_str(f_t)}"
                )
            f_s, f_t = pool_to_smaller(f_s, f_t)
            var = head.variance().view(1, -1, 1, 1)
            nll = 0.5 * ((head.mean(f_s) - f_t).pow(2) / var + var.log())
            total = total + nll.mean()
        return total

"""OFD: "A Comprehensive Overhaul of Feature Distillation" (margin ReLU teacher, pre-ReLU partial L2)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.core.registry import DISTILL_LOSSES
from torchworks.distill.losses._common import TensorOrList, check_pairs, shape_str


def margin_from_bn(bn: nn.BatchNorm2d, min_prob: float = 1e-3) -> Tensor:
    """Per-channel margin m = E[x | x < 0] for x ~ N(beta, gamma^2), from the BN layer before the ReLU.

    .. math:: m = \\beta - |\\gamma| \\frac{\\varphi(\\beta/|\\gamma|)}{\\Phi(-\\beta/|\\gamma|)}

    When Phi(-beta/|gamma|) <= ``min_prob`` (almost no negative responses) the ratio is unstable and the
    reference uses -3|gamma| instead. Returns (C,) float32.
    """
    if bn.weight is None or bn.bias is None:
        raise ValueError(f"ofd: the BN layer {bn} has no affine parameters to derive margins from")
    s = bn.weight.detach().abs().double().clamp_min(1e-12)
    m = bn.bias.detach().double()
    cdf = torch.special.ndtr(-m / s)
    pdf = torch.exp(-((m / s) ** 2) / 2) / math.sqrt(2 * math.pi)
    margin = torch.where(cdf > min_prob, m - s * pdf / cdf.clamp_min(min_prob), -3 * s)
    return margin.float()


@DISTILL_LOSSES.register("ofd")
class OFDLoss(nn.Module):
    """Overhaul feature distillation on pre-ReLU stage outputs.

    The teacher map is transformed by a margin ReLU, t' = max(t, m) with the per-channel margin m of
    :func:`margin_from_bn`; the student map goes through a connector r (1x1 conv + BN, He init; trainable,
    ``self.connectors``). The partial L2 distance skips positions where both are "negative enough":

    .. math::
        d_p(t', s) = \\sum_i \\begin{cases} 0 & s_i \\le t'_i \\le 0 \\\\ (t'_i - s_i)^2 & \\text{otherwise}
        \\end{cases}, \\qquad L = \\sum_j \\frac{1}{2^{n-j-1}} \\frac{1}{B} d_p(t'_j, r_j(s_j))

    (deeper stages weigh more). The reference divides the sum by B and multiplies by 1/1000 as the loss
    weight alpha on CIFAR (1e-4 on ImageNet; OFD issue #12); that weight is left to the caller. If the spatial
    sizes differ the teacher map is pooled to the student's (as mdistiller does). The reference trains with the
    teacher in *train* mode (BN batch statistics, paper Table 8); that is the distiller's business, not this
    module's. The paper and the authors' code agree, so there is no mode switch.

    Args:
        s_channels: student channel count per stage.
        t_channels: teacher channel count per stage.
        margins: per-stage teacher margins, each a (C_t,) tensor, or the teacher's BN layers before the ReLU
            (a model from the zoo provides them via ``bn_before_relu()``); None gives 0 margins.

    Inputs:
        g_s: student **pre-ReLU** maps, list of (B, Cs_j, H, W).
        g_t: teacher pre-ReLU maps, list of (B, Ct_j, H', W'); detached inside.

    References:
        Heo, Kim, Yun, Park, Kwak, Choi, "A Comprehensive Overhaul of Feature Distillation", ICCV 2019,
        arXiv:1904.01866. Reference implementation: clovaai/overhaul-distillation ``CIFAR-100/distiller.py``;
        megvii-research/mdistiller ``mdistiller/distillers/OFD.py``.
    """

    inputs = "preact_features"
    init_only = False

    def __init__(
        self,
        s_channels: Sequence[int],
        t_channels: Sequence[int],
        margins: Sequence[Tensor | nn.BatchNorm2d] | None = None,
    ) -> None:
        super().__init__()
        if len(s_channels) != len(t_channels) or not s_channels:
            raise ShapeError(f"ofd: need equal, non-zero stage counts, got {list(s_channels)} vs {list(t_channels)}")
        if margins is not None and len(margins) != len(t_channels):
            raise ShapeError(f"ofd: {len(margins)} margins for {len(t_channels)} teacher stages")
        self.connectors = nn.ModuleList(self._connector(s, t) for s, t in zip(s_channels, t_channels, strict=True))
        self.t_channels = [int(t) for t in t_channels]
        self.s_channels = [int(s) for s in s_channels]
        for j, c in enumerate(self.t_channels):
            m = torch.zeros(c) if margins is None else margins[j]
            m = margin_from_bn(m) if isinstance(m, nn.BatchNorm2d) else torch.as_tensor(m, dtype=torch.float32)
            if m.shape != (c,):
                raise ShapeError(f"ofd: margin {j} must have shape ({c},), got {tuple(m.shape)}")
            self.register_buffer(f"margin{j}", m.view(1, c, 1, 1).clone())

    @staticmethod
    def _connector(s: int, t: int) -> nn.Sequential:
        conv = nn.Conv2d(s, t, kernel_size=1, bias=False)
        nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / t))  # He init over fan-out, as the reference
        bn = nn.BatchNorm2d(t)
        return nn.Sequential(conv, bn)

    def margins(self) -> list[Tensor]:
        return [getattr(self, f"margin{j}") for j in range(len(self.t_channels))]

    def forward(self, g_s: TensorOrList, g_t: TensorOrList) -> Tensor:
        g_s, g_t = check_pairs("ofd", g_s, g_t, ndim=4, expected=len(self.connectors))
        n = len(g_s)
        total = g_s[0].new_zeros(())
        for j, (conn, f_s, f_t, m) in enumerate(zip(self.connectors, g_s, g_t, self.margins(), strict=True)):
            if f_s.shape[1] != self.s_channels[j] or f_t.shape[1] != self.t_channels[j]:
                raise ShapeError(
                    f"ofd: stage {j} built for {self.s_channels[j]}->{self.t_channels[j]} channels, "
                    f"got student {shape_str(f_s)} and teacher {shape_str(f_t)}"
                )
            s = conn(f_s)
            if f_t.shape[-2:] != s.shape[-2:]:
                f_t = F.adaptive_avg_pool2d(f_t, s.shape[-2:])
            t = torch.maximum(f_t, m.to(f_t.dtype))
            keep = (s > t) | (t > 0)
            total = total + ((s - t).pow(2) * keep).sum() / f_s.shape[0] / 2 ** (n - j - 1)
        return total

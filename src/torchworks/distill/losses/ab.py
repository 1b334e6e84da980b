"""AB: transfer of activation boundaries formed by hidden neurons (pre-ReLU features)."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.core.registry import DISTILL_LOSSES
from torchworks.distill.losses._common import TensorOrList, check_mode, check_pairs, shape_str
from torchworks.distill.losses.fitnet import ConvRegressor, _chw


def boundary_loss(s: Tensor, t: Tensor, margin: float) -> Tensor:
    """Squared hinge per element, summed: where the teacher neuron is active (t > 0) the student pre-activation
    must exceed +margin, otherwise it must stay below -margin.

    Both cases are one hinge, relu(margin + sign * s) with sign = -1 where t > 0 and +1 elsewhere, so each
    element is computed once instead of once per case and then masked (RepDistiller's form): forward + backward
    take less than half the CPU time of either two-case form (``benchmarks/distill/bench_losses.py``, numbers in
    ``docs/results/distill.md``).
    """
    sign = (t <= 0).to(s.dtype).mul_(2).sub_(1)  # +1 inactive, -1 active; no gradient flows to the teacher
    d = F.relu(s * sign + margin)
    return (d * d).sum()


@DISTILL_LOSSES.register("ab")
class ABLoss(nn.Module):
    """Activation-boundary distillation on pre-ReLU maps; an *initialisation* loss (``init_only = True``).

    With rho(t) = 1[t > 0], the connector r and margin mu:

    .. math::
        L_{AB}^{(j)} = \\frac{1}{B} \\sum_b \\big\\| \\rho(t) \\odot \\sigma(\\mu - r(s))
                       + (1 - \\rho(t)) \\odot \\sigma(\\mu + r(s)) \\big\\|_2^2

    (sigma = ReLU). The student layers (and connectors) are first trained with this loss alone, then the whole
    student with CE; RepDistiller runs 30 init epochs and then sets the AB term to 0, so its ``-b`` is inert.

    Modes (layer scaling is where RepDistiller departs from the paper):
        ``"paper"``: L = sum_j L^(j), equal layer weights.
        ``"reference"`` (default): L = (3 / 1000) sum_j 2^(j - n + 1) L^(j), i.e. the deepest layer weighs 1,
        each shallower one half the next, and a hard-coded 3/1000 factor, as in RepDistiller's ``ABLoss``
        (author code bhheo/AB_distillation). Default because the published RepDistiller numbers and its
        init-stage learning rates were tuned with this scale.

    Connectors (``self.connectors``, trainable): identity when student and teacher maps have the same shape,
    else a conv (see :class:`~torchworks.distill.losses.fitnet.ConvRegressor`) + BN without ReLU.

    Args:
        s_shapes: student pre-ReLU map shapes, (C, H, W) each, e.g. from a dry run.
        t_shapes: teacher pre-ReLU map shapes, same length.
        margin: mu (1.0).
        mode: ``"reference"`` or ``"paper"``.

    Inputs:
        g_s: student **pre-ReLU** maps, list of (B, Cs, Hs, Ws).
        g_t: teacher pre-ReLU maps, list of (B, Ct, Ht, Wt); detached inside.

    References:
        Heo, Lee, Yun, Choi, "Knowledge Transfer via Distillation of Activation Boundaries Formed by Hidden
        Neurons", AAAI 2019, arXiv:1811.03233. Reference implementations: bhheo/AB_distillation;
        HobbitLong/RepDistiller ``distiller_zoo/AB.py``, ``models/util.py:Connector``.
    """

    inputs = "preact_features"
    init_only = True

    def __init__(
        self,
        s_shapes: Sequence[Sequence[int]],
        t_shapes: Sequence[Sequence[int]],
        margin: float = 1.0,
        mode: str = "reference",
    ) -> None:
        super().__init__()
        self.mode = check_mode("ab", mode)
        if len(s_shapes) != len(t_shapes) or not s_shapes:
            raise ShapeError(f"ab: need equal, non-zero numbers of layers, got {len(s_shapes)} vs {len(t_shapes)}")
        self.s_shapes = [_chw(s, "student") for s in s_shapes]
        self.t_shapes = [_chw(t, "teacher") for t in t_shapes]
        self.connectors = nn.ModuleList(
            nn.Identity() if s == t else ConvRegressor(s, t, relu=False)
            for s, t in zip(self.s_shapes, self.t_shapes, strict=True)
        )
        self.margin = float(margin)
        n = len(s_shapes)
        self.layer_weights = [1.0] * n if mode == "paper" else [3e-3 * 2.0 ** (j - n + 1) for j in range(n)]

    def forward(self, g_s: TensorOrList, g_t: TensorOrList) -> Tensor:
        g_s, g_t = check_pairs("ab", g_s, g_t, ndim=4, expected=len(self.connectors))
        total = g_s[0].new_zeros(())
        for j, (conn, f_s, f_t) in enumerate(zip(self.connectors, g_s, g_t, strict=True)):
            if tuple(f_s.shape[1:]) != self.s_shapes[j] or tuple(f_t.shape[1:]) != self.t_shapes[j]:
                raise ShapeError(
                    f"ab: layer {j} built for student {self.s_shapes[j]} and teacher {self.t_shapes[j]}, "
                    f"got student {shape_str(f_s)} and teacher {shape_str(f_t)}"
                )
            total = total + self.layer_weights[j] * boundary_loss(conn(f_s), f_t, self.margin) / f_s.shape[0]
        return total

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, margin={self.margin}, layers={len(self.connectors)}"

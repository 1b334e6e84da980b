"""FitNet: hint-based training through a convolutional regressor."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.core.registry import DISTILL_LOSSES
from torchworks.distill.losses._common import check_mode, check_pairs, shape_str


def _chw(shape: Sequence[int], what: str) -> tuple[int, int, int]:
    """Accepts (C, H, W) or (B, C, H, W) and returns (C, H, W)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 4:
        shape = shape[1:]
    if len(shape) != 3:
        raise ShapeError(f"fitnet: {what} shape must be (C, H, W) or (B, C, H, W), got {shape}")
    return shape  # type: ignore[return-value]


class ConvRegressor(nn.Module):
    """Maps a student map (B, Cs, Hs, Ws) to the teacher's (B, Ct, Ht, Wt).

    The spatial adapter is chosen from the size ratio: a 3x3 stride-2 conv when the student is twice as large,
    a 4x4 stride-2 transposed conv when it is half as large, otherwise a "valid" conv of kernel
    (1 + Hs - Ht, 1 + Ws - Wt) (a 1x1 conv for equal sizes). Followed by BN and, optionally, ReLU, so that the
    regressed hint has the same non-negativity as a post-ReLU teacher hint.
    """

    def __init__(self, s_shape: Sequence[int], t_shape: Sequence[int], relu: bool = True) -> None:
        super().__init__()
        (cs, hs, ws), (ct, ht, wt) = _chw(s_shape, "student"), _chw(t_shape, "teacher")
        if (hs, ws) == (2 * ht, 2 * wt):
            self.conv: nn.Module = nn.Conv2d(cs, ct, kernel_size=3, stride=2, padding=1)
        elif (2 * hs, 2 * ws) == (ht, wt):
            self.conv = nn.ConvTranspose2d(cs, ct, kernel_size=4, stride=2, padding=1)
        elif hs >= ht and ws >= wt:
            self.conv = nn.Conv2d(cs, ct, kernel_size=(1 + hs - ht, 1 + ws - wt))
        else:
            raise ShapeError(
                f"fitnet: no regressor maps student (C, H, W)={(cs, hs, ws)} to teacher {(ct, ht, wt)}; "
                "the teacher map may be at most 2x larger, and only by exactly 2x"
            )
        self.bn = nn.BatchNorm2d(ct)
        self.relu = nn.ReLU() if relu else nn.Identity()
        self.out_shape = (ct, ht, wt)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


@DISTILL_LOSSES.register("fitnet")
class FitNetLoss(nn.Module):
    """FitNet hint loss: the regressed student "guided" layer imitates the teacher "hint" layer.

    .. math::
        L_{HT} = \\frac{1}{2} \\| u_h(x) - r(v_g(x)) \\|_2^2

    where u_h is the teacher hint, v_g the student guided layer and r the trainable :class:`ConvRegressor`
    (exposed as ``self.regressor``, so the optimiser must include ``loss.parameters()``).

    Modes (the stage scheme is where RepDistiller departs from the paper):
        ``"paper"``: two-stage training. Stage 1 trains the student up to the guided layer (plus r) with this
        loss alone (``init_only = True`` tells the distiller to do so); stage 2 trains the whole student with KD.
        The loss is the paper's 1/2 squared L2 norm per sample, averaged over the batch.
        ``"reference"`` (default): RepDistiller's single stage: ``CE + 100 * MSE`` jointly from step 0, with
        the element-mean MSE (mdistiller copies this, mdistiller issue #29). It is the default because the
        published RepDistiller/CRD tables (resnet56->resnet20: 69.21) were produced this way and the weight
        100 is calibrated for the element mean.

    Args:
        s_shape: student guided-layer shape (C, H, W) or (B, C, H, W), e.g. from a dry run
            (:func:`torchworks.distill.taps.feature_shapes`).
        t_shape: teacher hint shape.
        mode: ``"paper"`` or ``"reference"``.
        relu: end the regressor with ReLU (RepDistiller: yes; use False for a pre-ReLU hint).

    Inputs:
        f_s: student guided-layer map (B, Cs, Hs, Ws).
        f_t: teacher hint map (B, Ct, Ht, Wt); detached inside.

    References:
        Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015, arXiv:1412.6550.
        Reference implementation: HobbitLong/RepDistiller ``distiller_zoo/FitNet.py``, ``models/util.py:ConvReg``.
    """

    inputs = "feature"

    def __init__(
        self, s_shape: Sequence[int], t_shape: Sequence[int], mode: str = "reference", relu: bool = True
    ) -> None:
        super().__init__()
        self.mode = check_mode("fitnet", mode)
        self.init_only = mode == "paper"
        self.regressor = ConvRegressor(s_shape, t_shape, relu=relu)
        self.s_shape, self.t_shape = _chw(s_shape, "student"), self.regressor.out_shape

    def forward(self, f_s: Tensor, f_t: Tensor) -> Tensor:
        (f_s,), (f_t,) = check_pairs("fitnet", f_s, f_t, ndim=4)
        if tuple(f_s.shape[1:]) != self.s_shape or tuple(f_t.shape[1:]) != self.t_shape:
            raise ShapeError(
                f"fitnet: built for student (C, H, W)={self.s_shape} and teacher {self.t_shape}, "
                f"got student {shape_str(f_s)} and teacher {shape_str(f_t)}"
            )
        diff = self.regressor(f_s) - f_t
        if self.mode == "paper":
            return 0.5 * diff.pow(2).sum() / f_s.shape[0]
        return diff.pow(2).mean()

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, s_shape={self.s_shape}, t_shape={self.t_shape}"

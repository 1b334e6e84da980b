"""FT: factor transfer through a teacher-side paraphraser and a student-side translator."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.core.registry import DISTILL_LOSSES
from torchworks.distill.losses._common import check_mode, check_pairs, pool_to_smaller, shape_str


def _conv_stack(channels: list[int], transpose: bool, bn: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    conv = nn.ConvTranspose2d if transpose else nn.Conv2d
    for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
        layers += [conv(c_in, c_out, 3, 1, 1), nn.BatchNorm2d(c_out) if bn else nn.Identity(), nn.LeakyReLU(0.1)]
    return nn.Sequential(*layers)


class Paraphraser(nn.Module):
    """Teacher-side autoencoder: 3 convs C -> C -> kC -> kC (the factor), 3 transposed convs back to C.

    LeakyReLU(0.1), no BN (RepDistiller's setting for the paraphraser). Trained only in the init stage by
    :meth:`FTLoss.reconstruction_loss`, then frozen.
    """

    def __init__(self, channels: int, k: float = 0.5) -> None:
        super().__init__()
        f = max(1, int(channels * k))
        self.encoder = _conv_stack([channels, channels, f, f], transpose=False, bn=False)
        self.decoder = _conv_stack([f, f, channels, channels], transpose=True, bn=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Returns (factor (B, kC, H, W), reconstruction (B, C, H, W))."""
        factor = self.encoder(x)
        return factor, self.decoder(factor)


class Translator(nn.Module):
    """Student-side encoder to the teacher's factor space: 3 convs Cs -> Cs -> kCt -> kCt with BN + LeakyReLU."""

    def __init__(self, s_channels: int, t_channels: int, k: float = 0.5) -> None:
        super().__init__()
        f = max(1, int(t_channels * k))
        self.encoder = _conv_stack([s_channels, s_channels, f, f], transpose=False, bn=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)


@DISTILL_LOSSES.register("ft")
class FTLoss(nn.Module):
    """Factor transfer: the student's translated factor imitates the teacher's paraphrased factor.

    Stage 1 (init): train ``paraphraser`` on teacher maps x with :meth:`reconstruction_loss`
    ``||x - P(x)||^2`` (element mean). Stage 2: train the student and ``translator`` with

    .. math::
        L_{FT} = \\Big\\| \\frac{F_T}{\\|F_T\\|_2} - \\frac{F_S}{\\|F_S\\|_2} \\Big\\|_p, \\quad p = 1

    where F_T = encoder_P(teacher map), F_S = translator(student map), **flattened per sample**; averaged over
    the batch. The paraphraser is always run without gradient here (it is frozen in stage 2).

    Modes (what is compared is where RepDistiller departs from the paper):
        ``"paper"``: the equation above on the flattened factors (as torchdistill's ``FTLoss``).
        ``"reference"`` (default): RepDistiller's ``FactorTransfer`` compares *attention maps of the factors*,
        normalize(mean_c F^2) (B, HW), with the element-mean L1 distance. Default because RepDistiller's
        numbers (resnet56->resnet20: 69.84) and weight 200 come from it.

    Args:
        s_channels: student map channels (the last stage in RepDistiller).
        t_channels: teacher map channels.
        k: factor rate, factor channels = int(k * t_channels) (0.5).
        mode: ``"reference"`` or ``"paper"``.

    Inputs:
        f_s: student map (B, Cs, H, W).
        f_t: teacher map (B, Ct, H', W'); detached inside. Factors of different spatial size are pooled to the
            smaller one.

    References:
        Kim, Park, Kwak, "Paraphrasing Complex Network: Network Compression via Factor Transfer", NeurIPS 2018,
        arXiv:1802.04977. Reference implementations: Jangho-Kim/Factor-Transfer-pytorch;
        HobbitLong/RepDistiller ``distiller_zoo/FT.py``, ``models/util.py:Paraphraser/Translator``.
    """

    inputs = "feature"
    init_only = False
    has_init_stage = True

    def __init__(self, s_channels: int, t_channels: int, k: float = 0.5, mode: str = "reference") -> None:
        super().__init__()
        self.mode = check_mode("ft", mode)
        self.s_channels, self.t_channels = int(s_channels), int(t_channels)
        self.paraphraser = Paraphraser(t_channels, k)
        self.translator = Translator(s_channels, t_channels, k)

    def _check_teacher(self, f_t: Tensor) -> None:
        if f_t.dim() != 4 or f_t.shape[1] != self.t_channels:
            raise ShapeError(f"ft: built for teacher maps with {self.t_channels} channels, got {shape_str(f_t)}")

    def reconstruction_loss(self, f_t: Tensor) -> Tensor:
        """Init-stage objective of the paraphraser: element-mean squared reconstruction error of f_t (B, Ct, H, W)."""
        self._check_teacher(f_t)
        f_t = f_t.detach()
        return (self.paraphraser(f_t)[1] - f_t).pow(2).mean()

    def forward(self, f_s: Tensor, f_t: Tensor) -> Tensor:
        (f_s,), (f_t,) = check_pairs("ft", f_s, f_t, ndim=4)
        self._check_teacher(f_t)
        if f_s.shape[1] != self.s_channels:
            raise ShapeError(f"ft: built for student maps with {self.s_channels} channels, got {shape_str(f_s)}")
        with torch.no_grad():
            factor_t = self.paraphraser.encoder(f_t)
        factor_s = self.translator(f_s)
        factor_s, factor_t = pool_to_smaller(factor_s, factor_t)
        if self.mode == "reference":
            a_s = F.normalize(factor_s.pow(2).mean(1).flatten(1), dim=1)
            a_t = F.normalize(factor_t.pow(2).mean(1).flatten(1), dim=1)
            return (a_s - a_t).abs().mean()
        v_s = F.normalize(factor_s.flatten(1), dim=1)
        v_t = F.normalize(factor_t.flatten(1), dim=1)
        return (v_s - v_t).abs().sum(1).mean()

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, s_channels={self.s_channels}, t_channels={self.t_channels}"

"""Training losses for learned inpainting: LaMa's generator/discriminator objective and Context Encoder's.

LaMa's generator loss (``configs/training/lama-fourier.yaml``) is::

    10 * L1(known pixels) + 10 * NS-adversarial + 100 * feature matching + 30 * HRF perceptual

and its discriminator loss is the non-saturating loss with an R1 penalty (gamma = 0.001) in which only the
patches inside the hole count as fake (``mask_as_fake_target=True``). The HRF perceptual loss runs an ADE20k
ResNet50-dilated segmentation encoder whose weights cannot be downloaded here; :func:`build_perceptual` substitutes
the ImageNet EfficientNet-Lite0 of :mod:`torchworks.inpainting.fid` when its weights are installed, and returns
``None`` (the term is skipped, with a logged note) when they are not.

All images are (B, 3, H, W) float in [0, 1]; masks are (B, 1, H, W) in {0, 1} with 1 = hole.

References:
    Suvorov et al., "Resolution-robust Large Mask Inpainting with Fourier Convolutions", WACV 2022
    (arXiv 2109.07161); reference code ``advimman/lama``: ``saicinpainting/training/losses/adversarial.py``
    (``NonSaturatingWithR1``, ``make_r1_gp``), ``feature_matching.py`` (``masked_l1_loss``,
    ``feature_matching_loss``), ``perceptual.py`` (``ResNetPL``).
    Pathak et al., "Context Encoders: Feature Learning by Inpainting", CVPR 2016 (lambda_rec 0.999,
    lambda_adv 0.001).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)

LAMA_WEIGHTS = {"l1_known": 10.0, "l1_missing": 0.0, "adversarial": 10.0, "r1": 0.001,
                "feature_matching": 100.0, "perceptual": 30.0}
"""LaMa's loss weights (``lama-fourier.yaml``: l1 known/missing, adversarial weight, gp_coef, FM, ResNetPL)."""


def masked_l1(pred: Tensor, target: Tensor, mask: Tensor, weight_known: float = 10.0,
              weight_missing: float = 0.0) -> Tensor:
    """LaMa's ``masked_l1_loss``: per-pixel L1 weighted by region, averaged over all elements.

    Args:
        pred, target: (B, C, H, W) images.
        mask: (B, 1, H, W) in {0, 1}, 1 = hole.
        weight_known: weight of pixels outside the hole (LaMa: 10).
        weight_missing: weight of hole pixels (LaMa: 0, the hole gets no pixel loss).

    Returns:
        Scalar tensor.
    """
    weights = mask * weight_missing + (1.0 - mask) * weight_known
    return (weights * (pred - target).abs()).mean()


def masked_l2(pred: Tensor, target: Tensor, mask: Tensor, weight_hole: float = 1.0,
              weight_known: float = 0.0) -> Tensor:
    """Squared error weighted by region (Context Encoder's reconstruction loss), averaged over all elements.

    Args:
        pred, target: (B, C, H, W) images.
        mask: (B, 1, H, W) in {0, 1}, 1 = hole.
        weight_hole, weight_known: per-region weights (Context Encoder: the hole, plus x10 on the overlap
            band it predicts around it, which with a full-image output we approximate by ``weight_known``).
    """
    weights = mask * weight_hole + (1.0 - mask) * weight_known
    return (weights * (pred - target) ** 2).mean()


def resize_mask(mask: Tensor, size: Sequence[int]) -> Tensor:
    """Mask resized to a logit map with nearest neighbour (LaMa's ``interpolate_mask``, ``allow_scale_mask``)."""
    size = tuple(int(s) for s in size)
    return mask if tuple(mask.shape[-2:]) == size else F.interpolate(mask, size=size, mode="nearest")


def r1_penalty(real_logits: Tensor, real: Tensor) -> Tensor:
    """R1 gradient penalty ``mean_b ||d sum(D(x_b)) / d x_b||^2`` (LaMa's ``make_r1_gp``).

    Args:
        real_logits: D's output for ``real``; ``real`` must have had ``requires_grad`` set before D ran.
        real: (B, C, H, W) real images.

    Returns:
        Scalar tensor, differentiable w.r.t. D's parameters (double backpropagation); 0 under ``no_grad``.
    """
    if not torch.is_grad_enabled():
        return real_logits.new_zeros(())
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


def ns_generator_loss(fake_logits: Tensor, weight: float = 10.0) -> Tensor:
    """Non-saturating generator loss ``weight * mean softplus(-D(G(z)))`` over every patch (LaMa's defaults
    ``use_unmasked_for_gen=True``, ``extra_mask_weight_for_gen=0``)."""
    return F.softplus(-fake_logits).mean() * weight


def ns_discriminator_loss(real_logits: Tensor, fake_logits: Tensor, mask: Tensor | None = None,
                          real: Tensor | None = None, gp_coef: float = 0.001) -> tuple[Tensor, dict[str, Tensor]]:
    """LaMa's ``NonSaturatingWithR1.discriminator_loss`` with ``mask_as_fake_target=True``.

    ``softplus(-D(real)) + gp_coef * R1 + m * softplus(D(fake)) + (1 - m) * softplus(-D(fake))``, averaged over
    patches, where ``m`` is the hole mask resized to the logit map: patches of the prediction outside the hole
    show real pixels, so they are labelled real. Without ``mask`` every fake patch is fake (plain NS loss). As
    in the reference, the adversarial weight multiplies the generator loss only.

    Args:
        real_logits, fake_logits: (B, 1, h, w) patch logits (or (B, 1) for a global discriminator).
        mask: (B, 1, H, W) hole mask, or None.
        real: the real batch D saw (with ``requires_grad``) for R1; None or ``gp_coef == 0`` skips R1.
        gp_coef: R1 weight gamma (LaMa: 0.001).

    Returns:
        ``(loss, {"d_real": ..., "d_fake": ..., "r1": ...})``, the extra scalars detached.
    """
    real_loss = F.softplus(-real_logits)
    fake_loss = F.softplus(fake_logits)
    if mask is not None:
        m = resize_mask(mask, fake_logits.shape[-2:])
        fake_loss = m * fake_loss + (1.0 - m) * F.softplus(-fake_logits)
    gp = r1_penalty(real_logits, real) if real is not None and gp_coef > 0 else real_logits.new_zeros(())
    loss = real_loss.mean() + fake_loss.mean() + gp_coef * gp
    return loss, {"d_real": real_loss.mean().detach(), "d_fake": fake_loss.mean().detach(), "r1": gp.detach()}


def feature_matching(fake_features: Sequence[Tensor], real_features: Sequence[Tensor]) -> Tensor:
    """LaMa's ``feature_matching_loss`` without a mask: mean over layers of the MSE between D's activations.

    The real activations are treated as constants (detached), as they are in the reference generator step where
    the discriminator's parameters do not require gradients.
    """
    if len(fake_features) != len(real_features) or not fake_features:
        raise ValueError(f"need equally many (>0) feature maps, got {len(fake_features)} and {len(real_features)}")
    return torch.stack([F.mse_loss(f, r.detach()) for f, r in zip(fake_features, real_features, strict=True)]).mean()


class EfficientNetPerceptual(nn.Module):
    """Perceptual loss on frozen EfficientNet-Lite0 feature maps: the substitute for LaMa's HRF ``ResNetPL``.

    Like ``ResNetPL``, it sums over tapped feature maps the MSE between prediction and target features, on the
    whole image. Differences: an ImageNet classifier (EfficientNet-Lite0, inputs scaled to [-1, 1]) instead of
    the ADE20k segmentation ResNet50-dilated, and taps at the last block of each of the five resolutions
    (1/2 .. 1/32).

    Args:
        backbone: an :class:`~torchworks.inpainting.fid.EfficientNetLite0` (frozen and put in eval mode here).
        taps: indices of the MBConv blocks whose outputs are compared.
    """

    def __init__(self, backbone: nn.Module, taps: Sequence[int] = (0, 2, 4, 10, 15)) -> None:
        super().__init__()
        self.backbone = backbone.eval().requires_grad_(False)
        self.taps = set(taps)

    def train(self, mode: bool = True) -> EfficientNetPerceptual:
        super().train(mode)
        self.backbone.eval()  # BatchNorm statistics stay frozen
        return self

    def _features(self, x: Tensor) -> list[Tensor]:
        b = self.backbone
        x = F.relu6(b._bn0(b._conv_stem((x - 0.5) / 0.5)))
        out = []
        for i, block in enumerate(b._blocks):
            x = block(x)
            if i in self.taps:
                out.append(x)
        return out

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """(B, 3, H, W) prediction and target in [0, 1] -> scalar loss (sum over taps of the feature MSE)."""
        with torch.no_grad():
            tgt = self._features(target)
        return sum(F.mse_loss(p, t) for p, t in zip(self._features(pred), tgt, strict=True))


def build_perceptual(weight: float) -> EfficientNetPerceptual | None:
    """The perceptual term, or None if ``weight == 0`` or the EfficientNet-Lite0 weights are not installed.

    A missing weights file is not an error: the run continues without the term and the reason is logged.
    """
    if weight <= 0:
        return None
    from torchworks.inpainting.base import MissingExtraError
    from torchworks.inpainting.fid import efficientnet_lite0

    try:
        return EfficientNetPerceptual(efficientnet_lite0())
    except (MissingExtraError, FileNotFoundError) as exc:
        log.warning("perceptual loss skipped (LaMa's HRF ResNet50 weights are not obtainable and the "
                    "EfficientNet-Lite0 substitute is not installed): %s", exc)
        return None


__all__ = [
    "LAMA_WEIGHTS",
    "EfficientNetPerceptual",
    "build_perceptual",
    "feature_matching",
    "masked_l1",
    "masked_l2",
    "ns_discriminator_loss",
    "ns_generator_loss",
    "r1_penalty",
    "resize_mask",
]

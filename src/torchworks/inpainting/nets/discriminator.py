"""Discriminators for inpainting GANs: LaMa's PatchGAN (NLayerDiscriminator) and the Context Encoder's DCGAN critic.

Both return ``(logits, features)``: raw scores (no sigmoid; use a logistic loss such as softplus or
BCE-with-logits) and the list of intermediate activations for LaMa's feature-matching loss. Both see only the
RGB image (B, 3, H, W) in [0, 1], not the mask, as in the references.

``NLayerDiscriminator`` (pix2pixHD PatchGAN): a 4x4 stride-2 conv + LeakyReLU(0.2), ``n_layers - 1`` further
stride-2 4x4 conv-BN-LeakyReLU stages (width doubling to at most 512), one stride-1 stage, then a stride-1 4x4
conv to one logit per patch; padding 2. LaMa uses ndf 64 and 4 layers (6,962,369 parameters).

``DCGANDiscriminator`` (Context Encoder): 4x4 stride-2 convs down to 4x4 (BatchNorm after all but the first,
LeakyReLU 0.2), then a 4x4 valid conv to one logit per image (B, 1, 1, 1).

References:
    Wang et al., "High-Resolution Image Synthesis and Semantic Manipulation with Conditional GANs"
    (pix2pixHD), CVPR 2018; advimman/lama ``saicinpainting/training/modules/pix2pixhd.py``
    (``NLayerDiscriminator``) and ``configs/training/discriminator/pix2pixhd_nlayer.yaml`` (ndf 64, 4 layers).
    Pathak et al., "Context Encoders: Feature Learning by Inpainting", CVPR 2016; pathak22/context-encoder
    ``train.lua`` (netD).
"""

from __future__ import annotations

from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.core.registry import MODELS
from torchworks.inpainting.nets.context_encoder import dcgan_widths

__all__ = ["DCGANDiscriminator", "NLayerDiscriminator"]


def _check_rgb(x: Tensor, channels: int) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        raise ShapeError(f"expected a (B, {channels}, H, W) image, got {tuple(x.shape)}")


class NLayerDiscriminator(nn.Module):
    """PatchGAN: one logit per (overlapping) patch.

    Args:
        in_channels: 3 (RGB).
        ndf: width of the first stage.
        n_layers: stride-2 stages (LaMa: 4; each halves H and W, roughly).
        max_features: width cap (512 in the reference).
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 4, max_features: int = 512) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.in_channels = in_channels
        stages = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, stride=2, padding=2), nn.LeakyReLU(0.2, True))]
        nf = ndf
        for n in range(1, n_layers + 1):  # the last stage of this loop keeps the resolution (stride 1)
            prev, nf = nf, min(nf * 2, max_features)
            stages.append(nn.Sequential(nn.Conv2d(prev, nf, 4, stride=2 if n < n_layers else 1, padding=2),
                                        nn.BatchNorm2d(nf), nn.LeakyReLU(0.2, True)))
        stages.append(nn.Sequential(nn.Conv2d(nf, 1, 4, stride=1, padding=2)))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(B, C, H, W) image -> ``(logits (B, 1, h, w), [activations of every stage but the last])``."""
        _check_rgb(x, self.in_channels)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats[-1], feats[:-1]


class DCGANDiscriminator(nn.Module):
    """One real/fake logit per image of a fixed square size.

    Args:
        image_size: S of the (B, C, S, S) input; a power of two >= 16.
        in_channels: 3 (RGB).
        ndf: width of the first stage.
    """

    def __init__(self, image_size: int = 64, in_channels: int = 3, ndf: int = 64) -> None:
        super().__init__()
        self.image_size, self.in_channels = image_size, in_channels
        widths = dcgan_widths(image_size, ndf)
        stages = []
        for i, (cin, cout) in enumerate(zip([in_channels, *widths[:-1]], widths, strict=True)):
            norm = nn.BatchNorm2d(cout) if i else nn.Identity()  # DCGAN leaves the first layer un-normalised
            stages.append(nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=i == 0), norm,
                                        nn.LeakyReLU(0.2, True)))
        stages.append(nn.Sequential(nn.Conv2d(widths[-1], 1, 4)))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(B, C, S, S) image -> ``(logits (B, 1, 1, 1), [activations of every stage but the last])``."""
        _check_rgb(x, self.in_channels)
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ShapeError(f"expected {self.image_size}x{self.image_size} images, got {tuple(x.shape[-2:])}")
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats[-1], feats[:-1]


@MODELS.register("lama_discriminator", family="discriminator", kind="inpainting_discriminator")
def lama_discriminator(**overrides) -> NLayerDiscriminator:
    """LaMa's PatchGAN: ndf 64, 4 layers (the ``pix2pixhd_nlayer`` config)."""
    return NLayerDiscriminator(**{"ndf": 64, "n_layers": 4, **overrides})


@MODELS.register("lama_discriminator_small", family="discriminator", kind="inpainting_discriminator")
def lama_discriminator_small(**overrides) -> NLayerDiscriminator:
    """PatchGAN for 128 px CPU training: ndf 32, 4 layers."""
    return NLayerDiscriminator(**{"ndf": 32, "n_layers": 4, **overrides})


@MODELS.register("lama_discriminator_tiny", family="discriminator", kind="inpainting_discriminator")
def lama_discriminator_tiny(**overrides) -> NLayerDiscriminator:
    """PatchGAN for 64 px CPU training: ndf 32, 3 layers."""
    return NLayerDiscriminator(**{"ndf": 32, "n_layers": 3, **overrides})


@MODELS.register("ce_discriminator_64", family="discriminator", kind="inpainting_discriminator")
def ce_discriminator_64(**overrides) -> DCGANDiscriminator:
    """Context Encoder critic for 64 px images (the centre patch of a 128 px input, or a 64 px image)."""
    return DCGANDiscriminator(**{"image_size": 64, **overrides})


@MODELS.register("ce_discriminator_128", family="discriminator", kind="inpainting_discriminator")
def ce_discriminator_128(**overrides) -> DCGANDiscriminator:
    """Context Encoder critic for whole 128 px images (random-mask training)."""
    return DCGANDiscriminator(**{"image_size": 128, **overrides})

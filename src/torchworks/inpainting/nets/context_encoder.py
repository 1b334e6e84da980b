"""Context Encoder (Pathak et al. 2016): conv encoder, channel-wise fully connected bottleneck, up-conv decoder.

The encoder halves the resolution with 4x4 stride-2 convs (LeakyReLU 0.2; BatchNorm after all but the first)
until the map is 4x4 with ``8 * nef`` channels. The bottleneck is the paper's channel-wise fully connected layer:
each channel's 4x4 map is fully connected to itself (16 x 16 weights per channel, no mixing across channels,
``C * 16**2`` parameters instead of ``(C * 16)**2``), so every output unit sees the whole context; a stride-1
(1x1) conv then mixes channels, as the paper prescribes. The decoder mirrors the encoder with 4x4 stride-2
transposed convs (BatchNorm + ReLU) back to the input size.

Interface as LaMa's generator: input (B, 4, S, S) = RGB * (1 - mask) and the mask (1 = hole), output the full
RGB image (B, 3, S, S) in [0, 1] (sigmoid; ``out_act="tanh"`` gives the paper's [-1, 1]). Predicting the whole
image rather than only the centre patch lets one network serve centre-hole and random-mask training alike; the
caller composites and weights the loss (the paper: L2 on the hole, weight 0.999, adversarial 0.001).

The released Torch code replaces the channel-wise layer by a 4x4 conv to a 4000-d vector; at 128 px that costs
about 71 M parameters against about 6 M here.

References:
    Pathak, Krahenbuhl, Donahue, Darrell, Efros, "Context Encoders: Feature Learning by Inpainting", CVPR 2016,
    section 3.1 (arXiv 1604.07379).
    pathak22/context-encoder ``train.lua`` (layer sizes of the encoder, decoder and discriminator).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.core.registry import MODELS

__all__ = ["ChannelWiseFC", "ContextEncoder", "dcgan_widths"]


def dcgan_widths(image_size: int, base: int) -> list[int]:
    """Channel widths of the stride-2 stages from ``image_size`` down to 4x4 (the last four are 1, 2, 4, 8 x base).

    Raises:
        ValueError: ``image_size`` is not a power of two >= 16.
    """
    if image_size < 16 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two >= 16, got {image_size}")
    n = int(math.log2(image_size)) - 2
    return [base * 2 ** max(0, k - (n - 4)) for k in range(n)]


class ChannelWiseFC(nn.Module):
    """A fully connected layer per channel over the spatial positions, with no mixing across channels.

    Args:
        channels: C of the (B, C, H, W) input.
        size: H * W (the layer is tied to one spatial size).
    """

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.size = size
        bound = 1.0 / math.sqrt(size)  # nn.Linear's default initialisation, per channel
        self.weight = nn.Parameter(torch.empty(channels, size, size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(channels, size).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W) with H * W == size."""
        b, c, h, w = x.shape
        if h * w != self.size:
            raise ShapeError(f"channel-wise FC was built for {self.size} positions, got {h}x{w}")
        y = torch.einsum("cij,bcj->bci", self.weight, x.reshape(b, c, h * w)) + self.bias  # (B, C, HW)
        return y.view(b, c, h, w)


class ContextEncoder(nn.Module):
    """Encoder - channel-wise FC - decoder inpainting network for square ``image_size`` inputs.

    Args:
        image_size: S of the (B, in_channels, S, S) input; a power of two >= 16 (64 and 128 registered).
        in_channels: 4 (masked RGB + mask).
        out_channels: 3 (RGB).
        nef: encoder width of the first stage.
        ngf: decoder width of the last stage.
        dropout: dropout after the channel-wise layer (0 disables).
        out_act: ``"sigmoid"`` ([0, 1]), ``"tanh"`` ([-1, 1]) or ``"none"``.
    """

    def __init__(self, image_size: int = 128, in_channels: int = 4, out_channels: int = 3, nef: int = 64,
                 ngf: int = 64, dropout: float = 0.0, out_act: str = "sigmoid") -> None:
        super().__init__()
        acts = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "none": nn.Identity}
        if out_act not in acts:
            raise ValueError(f"unknown out_act {out_act!r}; use one of {sorted(acts)}")
        self.image_size, self.in_channels = image_size, in_channels
        enc = dcgan_widths(image_size, nef)
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip([in_channels, *enc[:-1]], enc, strict=True)):
            layers.append(nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=i == 0))
            if i:  # DCGAN leaves the first layer un-normalised
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        self.encoder = nn.Sequential(*layers)
        dec = dcgan_widths(image_size, ngf)
        self.bottleneck = nn.Sequential(ChannelWiseFC(enc[-1], 16), nn.Dropout(dropout),
                                        nn.Conv2d(enc[-1], dec[-1], 1, bias=False), nn.BatchNorm2d(dec[-1]),
                                        nn.ReLU(inplace=True))
        layers = []
        for cin, cout in zip(dec[:0:-1], dec[-2::-1], strict=True):
            layers += [nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(dec[0], out_channels, 4, stride=2, padding=1), acts[out_act]()]
        self.decoder = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, S, S) -> (B, out_channels, S, S)."""
        s = self.image_size
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[-2:] != (s, s):
            raise ShapeError(f"expected (B, {self.in_channels}, {s}, {s}) input, got {tuple(x.shape)}; "
                             "resize or crop to the size the model was built for")
        return self.decoder(self.bottleneck(self.encoder(x)))


@MODELS.register("context_encoder_64", family="context_encoder", kind="inpainting_generator")
def context_encoder_64(**overrides) -> ContextEncoder:
    """Context Encoder for 64 px inputs (nef = ngf = 64)."""
    return ContextEncoder(**{"image_size": 64, **overrides})


@MODELS.register("context_encoder_128", family="context_encoder", kind="inpainting_generator")
def context_encoder_128(**overrides) -> ContextEncoder:
    """Context Encoder for 128 px inputs (nef = ngf = 64), the paper's setting."""
    return ContextEncoder(**{"image_size": 128, **overrides})

"""Plain-convolution control for the LaMa experiment: LaMa's generator with ordinary 3x3 ResNet blocks, at LaMa's
parameter budget.

``PlainConvResNetGenerator`` keeps LaMa's stem, downsampling, upsampling and head (all local convs, as in
:class:`~torchworks.inpainting.nets.lama.FFCResNetGenerator` with ``ratio=0``) and replaces each FFC res-block by
a :class:`PlainResnetBlock`: reflect-padded 3x3 conv C -> m, BN, ReLU, 3x3 conv m -> C, BN, ReLU, plus the identity.
An FFC block of width C costs about 10 C^2 parameters against 18 C^2 for a full-width 3x3 block, so at equal depth
the inner width m is what is sized: it is chosen so the whole generator has the parameter count of its LaMa
counterpart (within 0.6 % for the registered sizes; tested). The paper's "regular" LaMa (45 M parameters) keeps
full-width blocks and so has 1.7x LaMa-Fourier's parameters; this control instead isolates the Fourier convolution
at an equal budget. Its receptive field grows by 4 px per block at the bottleneck resolution, not image-wide.

=========================  ======================
plain-conv control         parameters match
=========================  ======================
``plainconv_fourier``      ``lama_fourier``
``plainconv_big``          ``big_lama``
``plainconv_small``        ``lama_small``
``plainconv_tiny``         ``lama_tiny``
=========================  ======================

References:
    Suvorov et al., "Resolution-robust Large Mask Inpainting with Fourier Convolutions", WACV 2022, section 4.2
    (Fourier vs regular/dilated convolutions at comparable size).
    He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from torchworks.core.registry import MODELS
from torchworks.inpainting.nets.lama import LAMA_VARIANTS, FFCResNetGenerator
from torchworks.nn.ffc import Branches, as_branches

__all__ = ["PLAINCONV_PAIRS", "PlainConvResNetGenerator", "PlainResnetBlock", "matched_hidden"]

PLAINCONV_PAIRS: dict[str, str] = {
    "plainconv_fourier": "lama_fourier",
    "plainconv_big": "big_lama",
    "plainconv_small": "lama_small",
    "plainconv_tiny": "lama_tiny",
}
"""Plain-conv name -> the LaMa variant whose parameter count (and layout outside the blocks) it matches."""


class PlainResnetBlock(nn.Module):
    """``x + relu(bn(conv(relu(bn(conv(x))))))`` with 3x3 reflect-padded convs C -> hidden -> C (no bias).

    Takes and returns LaMa's branch tuple ``(x, None)`` (or a plain (B, C, H, W) tensor), so it drops into the
    generator in place of an FFC block.

    Args:
        channels: C, kept by the block.
        hidden: inner width m.
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        if channels < 1 or hidden < 1:
            raise ValueError(f"channels and hidden must be >= 1, got {channels} and {hidden}")
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1, padding_mode="reflect", bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 3, padding=1, padding_mode="reflect", bias=False), nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True))

    @staticmethod
    def parameter_count(channels: int, hidden: int) -> int:
        """Trainable parameters of a block: two 3x3 convs and two BatchNorm affine pairs."""
        return 18 * channels * hidden + 2 * hidden + 2 * channels

    def forward(self, x: Tensor | Branches) -> Branches:
        """``(x, None)`` with x (B, C, H, W) -> ``(x + f(x), None)``."""
        x_l, x_g = as_branches(x)
        if x_g is not None:
            raise ValueError("a plain block takes an all-local input (the generator uses ratio 0)")
        return x_l + self.body(x_l), None


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def matched_hidden(lama_kwargs: dict[str, Any]) -> int:
    """Inner width m that gives the plain-conv generator the parameter count of ``FFCResNetGenerator(**lama_kwargs)``.

    Counts are taken on the meta device (no memory, no initialisation). With no blocks it returns 1 (unused).
    """
    with torch.device("meta"):
        target = _count(FFCResNetGenerator(**lama_kwargs))
        shell = _count(FFCResNetGenerator(**{**lama_kwargs, "ratio": 0.0, "n_blocks": 0}))
    n_blocks = lama_kwargs.get("n_blocks", 9)
    if n_blocks == 0:
        return 1
    ngf, n_down = lama_kwargs.get("ngf", 64), lama_kwargs.get("n_downsampling", 3)
    c = min(lama_kwargs.get("max_features", 1024), ngf * 2**n_down)
    per_block = (target - shell) / n_blocks
    return max(1, round((per_block - 2 * c) / (18 * c + 2)))


class PlainConvResNetGenerator(FFCResNetGenerator):
    """LaMa's generator with :class:`PlainResnetBlock` res-blocks (see the module docstring).

    Args:
        hidden: inner width of the blocks; None sizes it to match ``FFCResNetGenerator`` of the same other
            arguments with ``ratio`` (default 0.75) in its blocks.
        ratio: the global share of the LaMa model being matched (only used to size ``hidden``).
        in_channels, out_channels, ngf, n_downsampling, n_blocks, max_features, out_act: as in
            :class:`~torchworks.inpainting.nets.lama.FFCResNetGenerator`.
    """

    def __init__(self, in_channels: int = 4, out_channels: int = 3, ngf: int = 64, n_downsampling: int = 3,
                 n_blocks: int = 9, hidden: int | None = None, ratio: float = 0.75, max_features: int = 1024,
                 out_act: str = "sigmoid") -> None:
        shape = dict(in_channels=in_channels, out_channels=out_channels, ngf=ngf, n_downsampling=n_downsampling,
                     max_features=max_features, out_act=out_act)
        super().__init__(**shape, n_blocks=0, ratio=0.0)
        if hidden is None:
            hidden = matched_hidden({**shape, "n_blocks": n_blocks, "ratio": ratio})
        self.hidden = hidden
        dim = min(max_features, ngf * 2**n_downsampling)
        self.blocks = nn.Sequential(*[PlainResnetBlock(dim, hidden) for _ in range(n_blocks)])


def _factory(lama_name: str):
    defaults = LAMA_VARIANTS[lama_name]

    def factory(**overrides: Any) -> PlainConvResNetGenerator:
        return PlainConvResNetGenerator(**{**defaults, **overrides})

    factory.__doc__ = (f"Plain 3x3-conv ResNet generator with the layout and parameter count of ``{lama_name}`` "
                       "(inner block width sized to match); keywords override the generator.")
    return factory


for _name, _lama in PLAINCONV_PAIRS.items():
    MODELS.add(_name, _factory(_lama), family="plainconv", kind="inpainting_generator")

"""LaMa's generator (FFC ResNet) and its registered sizes.

``FFCResNetGenerator`` maps the masked image and the mask, concatenated as (B, 4, H, W) (RGB * (1 - mask), then
the mask with 1 = hole), to an RGB image (B, 3, H, W) in [0, 1] (sigmoid head) or [-1, 1] (tanh head). The caller
composites the prediction into the known pixels; the network itself predicts every pixel.

Layout (reference ``FFCResNetGenerator`` with the ``ffc_resnet_075`` generator config):
reflect-pad 3 + 7x7 conv-BN-ReLU stem (all local) -> ``n_downsampling`` stride-2 3x3 conv-BN-ReLU layers (channels
doubling up to ``max_features``; the last one splits its output into local/global by ``ratio``) -> ``n_blocks``
:class:`~torchworks.nn.ffc.FFCResnetBlock` -> concatenate the branches -> ``n_downsampling`` transposed convs
(3x3, stride 2, output_padding 1) with BN-ReLU -> reflect-pad 3 + 7x7 conv -> sigmoid/tanh.

Registered sizes (parameter counts are tested):

========================  =====  ======  ======  ==========  =============================
name                      ngf    downs   blocks  params      note
========================  =====  ======  ======  ==========  =============================
``lama_fourier``          64     3       9       27,048,835  the paper's LaMa-Fourier
``big_lama``              64     3       18      50,975,875  Big LaMa
``lama_small``            32     3       6       4,781,123   CPU training, shippable
``lama_tiny``             16     2       3       177,987     tests and smoke runs
========================  =====  ======  ======  ==========  =============================

References:
    Suvorov et al., "Resolution-robust Large Mask Inpainting with Fourier Convolutions", WACV 2022.
    advimman/lama ``saicinpainting/training/modules/ffc.py`` (``FFCResNetGenerator``) and configs
    ``configs/training/generator/ffc_resnet_075.yaml`` (9 blocks) and ``configs/training/big-lama.yaml``
    (18 blocks), commit 786f593: input_nc 4, output_nc 3, ngf 64, 3 downsamplings, ratio 0.75 in the res-blocks
    (0 in stem and downsampling), enable_lfu false everywhere, sigmoid output.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.core.registry import MODELS
from torchworks.nn.cbam import BranchCBAM
from torchworks.nn.ffc import FFC_BN_ACT, FFCResnetBlock, merge_branches, split_channels

__all__ = ["LAMA_VARIANTS", "FFCResNetGenerator", "convert_reference_state_dict", "to_reference_state_dict"]

OUT_ACTS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "none": nn.Identity}
ATTENTIONS = (None, "cbam")


class FFCResNetGenerator(nn.Module):
    """LaMa's inpainting generator.

    Args:
        in_channels: input channels (4: masked RGB + mask).
        out_channels: output channels (3, RGB).
        ngf: width of the stem; doubles at each downsampling.
        n_downsampling: stride-2 stages; H and W must be multiples of ``2 ** n_downsampling``.
        n_blocks: FFC res-blocks at the bottleneck.
        ratio: global share of the res-block channels (0.75 in LaMa; 0 gives plain 3x3 ResNet blocks).
        enable_lfu: local Fourier unit in the res-blocks (off in LaMa).
        spectral_pos_encoding: frequency-coordinate channels in the res-blocks' Fourier units (off in LaMa).
        max_features: cap on the channel count.
        out_act: ``"sigmoid"`` (LaMa, outputs in [0, 1]), ``"tanh"`` ([-1, 1]) or ``"none"``.
        attention: ``None`` (LaMa) or ``"cbam"`` (ReLaMa: :class:`~torchworks.nn.cbam.BranchCBAM` on each
            res-block's residual branches).
        attention_kwargs: passed to the attention module (``variant``, ``reduction``, ``kernel_size``).
    """

    def __init__(self, in_channels: int = 4, out_channels: int = 3, ngf: int = 64, n_downsampling: int = 3,
                 n_blocks: int = 9, ratio: float = 0.75, enable_lfu: bool = False,
                 spectral_pos_encoding: bool = False, max_features: int = 1024, out_act: str = "sigmoid",
                 attention: str | None = None, attention_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if out_act not in OUT_ACTS:
            raise ValueError(f"unknown out_act {out_act!r}; use one of {sorted(OUT_ACTS)}")
        if attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {attention!r}; use None or 'cbam'")
        if n_blocks < 0 or n_downsampling < 0:
            raise ValueError(f"n_blocks and n_downsampling must be >= 0, got {n_blocks} and {n_downsampling}")
        self.in_channels, self.n_downsampling = in_channels, n_downsampling
        # the layer before the first res-block splits its output into (local, global); with no downsampling
        # that is the stem
        self.stem = nn.Sequential(nn.ReflectionPad2d(3), FFC_BN_ACT(in_channels, ngf, kernel_size=7,
                                                                     ratio_gout=0.0 if n_downsampling else ratio))

        def width(mult: float) -> int:
            return min(max_features, int(ngf * mult))

        self.down = nn.Sequential(*[
            FFC_BN_ACT(width(2**i), width(2 ** (i + 1)), kernel_size=3, stride=2, padding=1,
                       ratio_gout=ratio if i == n_downsampling - 1 else 0.0)
            for i in range(n_downsampling)
        ])
        dim = width(2**n_downsampling)
        local_c, global_c = split_channels(dim, ratio)
        blocks = []
        for _ in range(n_blocks):
            att = BranchCBAM(local_c, global_c, **(attention_kwargs or {})) if attention == "cbam" else None
            blocks.append(FFCResnetBlock(dim, ratio, enable_lfu=enable_lfu, attention=att,
                                         spectral_pos_encoding=spectral_pos_encoding))
        self.blocks = nn.Sequential(*blocks)
        up: list[nn.Module] = []
        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            up += [nn.ConvTranspose2d(width(mult), width(mult / 2), kernel_size=3, stride=2, padding=1,
                                      output_padding=1),
                   nn.BatchNorm2d(width(mult / 2)), nn.ReLU(inplace=True)]
        self.up = nn.Sequential(*up)
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, kernel_size=7),
                                  OUT_ACTS[out_act]())

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) masked image + mask -> (B, C_out, H, W); H, W multiples of ``2 ** n_downsampling``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ShapeError(f"expected (B, {self.in_channels}, H, W) input (masked RGB + mask), got "
                             f"{tuple(x.shape)}")
        m = 2**self.n_downsampling
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ShapeError(f"H and W must be multiples of {m} for this generator, got {tuple(x.shape[-2:])}; "
                             "pad the image (torchworks.inpainting pads to a multiple of 8)")
        branches = self.blocks(self.down(self.stem(x)))
        return self.head(self.up(merge_branches(branches)))


def convert_reference_state_dict(state_dict: Mapping[str, Tensor], n_downsampling: int = 3,
                                 n_blocks: int = 9) -> dict[str, Tensor]:
    """Renames a reference LaMa generator's weights (``model.<i>.`` keys) to this module's keys.

    Works on the state dict of advimman/lama's ``FFCResNetGenerator`` or on a training checkpoint's
    ``state_dict`` (``generator.`` keys; the discriminator's and loss networks' entries are dropped), so weights
    you have obtained yourself (for example Big LaMa's ``best.ckpt``) load with ``model.load_state_dict``.
    Nothing is downloaded.

    Args:
        state_dict: reference tensors by key.
        n_downsampling: the reference config's ``n_downsampling``.
        n_blocks: the reference config's ``n_blocks`` (9 for LaMa-Fourier, 18 for Big LaMa).

    Raises:
        ValueError: a key that does not belong to the described generator.
    """
    first_block, first_up = 2 + n_downsampling, 3 + n_downsampling + n_blocks
    head = first_up + 3 * n_downsampling + 1
    out = {}
    for key, value in state_dict.items():
        key = key.removeprefix("generator.")
        m = re.fullmatch(r"model\.(\d+)\.(.+)", key)
        if m is None:
            if "." in key and not key.startswith("model."):
                continue  # other networks of a training checkpoint (discriminator, perceptual loss)
            raise ValueError(f"not a reference LaMa generator key: {key!r}")
        idx, rest = int(m.group(1)), m.group(2).replace("fu.conv_layer.", "fu.conv.")
        if idx == 1:
            new = f"stem.1.{rest}"
        elif 2 <= idx < first_block:
            new = f"down.{idx - 2}.{rest}"
        elif first_block <= idx < first_block + n_blocks:
            new = f"blocks.{idx - first_block}.{rest}"
        elif first_up <= idx < head - 1:
            new = f"up.{idx - first_up}.{rest}"
        elif idx == head:
            new = f"head.1.{rest}"
        else:
            raise ValueError(f"key {key!r} does not fit n_downsampling={n_downsampling}, n_blocks={n_blocks}")
        out[new] = value
    return out


def to_reference_state_dict(state_dict: Mapping[str, Tensor], n_downsampling: int = 3,
                            n_blocks: int = 9, prefix: str = "generator.") -> dict[str, Tensor]:
    """The inverse of :func:`convert_reference_state_dict`: this module's keys to the reference's
    ``<prefix>model.<i>.`` keys (to hand weights trained here to LaMa's tools, and to build test stand-ins)."""
    first_block, first_up = 2 + n_downsampling, 3 + n_downsampling + n_blocks
    head = first_up + 3 * n_downsampling + 1
    offsets = {"stem": lambda i: 1, "down": lambda i: 2 + i, "blocks": lambda i: first_block + i,
               "up": lambda i: first_up + i, "head": lambda i: head}
    out = {}
    for key, value in state_dict.items():
        part, idx, rest = key.split(".", 2)
        if part not in offsets:
            raise ValueError(f"not a torchworks LaMa generator key: {key!r}")
        out[f"{prefix}model.{offsets[part](int(idx))}.{rest.replace('fu.conv.', 'fu.conv_layer.')}"] = value
    return out


def _variant(defaults: dict[str, Any]):
    def factory(**overrides: Any) -> FFCResNetGenerator:
        return FFCResNetGenerator(**{**defaults, **overrides})

    return factory


LAMA_VARIANTS: dict[str, dict[str, Any]] = {
    "lama_fourier": dict(ngf=64, n_downsampling=3, n_blocks=9, ratio=0.75),
    "big_lama": dict(ngf=64, n_downsampling=3, n_blocks=18, ratio=0.75),
    "lama_small": dict(ngf=32, n_downsampling=3, n_blocks=6, ratio=0.75),
    "lama_tiny": dict(ngf=16, n_downsampling=2, n_blocks=3, ratio=0.75),
}
"""Hyper-parameters of each registered LaMa size (ReLaMa mirrors these; keyword overrides win)."""

for _name, _defaults in LAMA_VARIANTS.items():
    MODELS.add(_name, _variant(_defaults), family="lama", kind="inpainting_generator")

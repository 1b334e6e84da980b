"""Fast Fourier Convolution (FFC): the image-wide receptive field behind LaMa.

An FFC splits its channels into a local branch (ordinary k x k convolutions) and a global branch whose ``g2g``
path is a :class:`SpectralTransform`, a 1x1 convolution applied to the real FFT of the feature map. A 1x1 conv
over frequencies mixes every spatial position with every other one, so a single FFC block already sees the whole
image; this is what lets LaMa fill large holes from far-away context.

Branches travel as a tuple ``(x_l, x_g)`` of (B, C_l, H, W) and (B, C_g, H, W) tensors. A branch that a channel
ratio makes empty is ``None`` (the reference uses the integer 0). Channel split: ``C_g = int(C * ratio)``,
``C_l = C - C_g``, as in the reference, so parameter counts match it exactly.

The spectrum is laid out as in the reference (real and imaginary part interleaved per channel, positional
channels first), so reference weights map onto these modules by renaming keys only.

References:
    Chi, Jiang, Mu, "Fast Fourier Convolution", NeurIPS 2020.
    Suvorov et al., "Resolution-robust Large Mask Inpainting with Fourier Convolutions" (LaMa), WACV 2022,
    section 3.1.
    advimman/lama ``saicinpainting/training/modules/ffc.py`` (reference implementation, commit 786f593).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from torchworks.core.errors import ShapeError

__all__ = ["FFC", "FFC_BN_ACT", "Branches", "FFCResnetBlock", "FourierUnit", "SpectralTransform",
           "as_branches", "merge_branches", "split_channels"]

Branches = tuple[Tensor | None, Tensor | None]


def split_channels(channels: int, ratio_g: float) -> tuple[int, int]:
    """``(local, global)`` channel counts for ``ratio_g`` in [0, 1] (global = ``int(channels * ratio_g)``)."""
    if not 0.0 <= ratio_g <= 1.0:
        raise ValueError(f"global channel ratio must be in [0, 1], got {ratio_g}")
    n_global = int(channels * ratio_g)
    return channels - n_global, n_global


def as_branches(x: Tensor | Branches) -> Branches:
    """A plain (B, C, H, W) tensor is an all-local input ``(x, None)``; a tuple passes through."""
    return x if isinstance(x, tuple) else (x, None)


def merge_branches(x: Tensor | Branches) -> Tensor:
    """Concatenates ``(x_l, x_g)`` along channels into (B, C_l + C_g, H, W), skipping an empty branch."""
    parts = [t for t in as_branches(x) if t is not None]
    if not parts:
        raise ValueError("both branches are empty")
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    return b if a is None else a if b is None else a + b


def _run(module: nn.Module | None, x: Tensor | None) -> Tensor | None:
    return None if module is None or x is None else module(x)


def _activation(name: str | None) -> nn.Module:
    if name in (None, "none", "identity"):
        return nn.Identity()
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "lrelu":
        return nn.LeakyReLU(0.2, inplace=True)
    raise ValueError(f"unknown activation {name!r}; use 'relu', 'lrelu' or 'none'")


def _norm(name: str | None, channels: int) -> nn.Module:
    if name in (None, "none"):
        return nn.Identity()
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    raise ValueError(f"unknown norm {name!r}; use 'batch', 'instance' or 'none'")


class FourierUnit(nn.Module):
    """Conv + BN + ReLU in the frequency domain: rFFT -> 1x1 conv over (real, imag) channels -> inverse rFFT.

    Args:
        in_channels: C_in of the (B, C_in, H, W) input.
        out_channels: C_out of the (B, C_out, H, W) output.
        fft_norm: ``torch.fft`` normalisation; ``"ortho"`` (LaMa's default) keeps the spectrum's scale independent
            of the image size, which is what lets a model trained at 256 px run at 512 px.
        spectral_pos_encoding: append two channels of normalised frequency coordinates (vertical, horizontal) in
            [0, 1] before the conv; off in every released LaMa config.
    """

    def __init__(self, in_channels: int, out_channels: int, *, fft_norm: str = "ortho",
                 spectral_pos_encoding: bool = False) -> None:
        super().__init__()
        self.fft_norm = fft_norm
        self.spectral_pos_encoding = spectral_pos_encoding
        extra = 2 if spectral_pos_encoding else 0
        self.conv = nn.Conv2d(2 * in_channels + extra, 2 * out_channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(2 * out_channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) real -> (B, C_out, H, W) real, same dtype."""
        b, _, h, w = x.shape
        # pocketfft has no half/bfloat16 kernels on CPU: the transform runs in float32 and casts back at the end
        xf = x if x.dtype in (torch.float32, torch.float64) else x.float()
        spec = torch.fft.rfft2(xf, norm=self.fft_norm)  # (B, C, H, W//2+1) complex
        wf = spec.shape[-1]
        z = torch.view_as_real(spec).permute(0, 1, 4, 2, 3).reshape(b, -1, h, wf)  # (B, 2C, H, Wf): re0, im0, re1...
        if self.spectral_pos_encoding:
            fy = torch.linspace(0, 1, h, dtype=z.dtype, device=z.device).view(1, 1, h, 1).expand(b, 1, h, wf)
            fx = torch.linspace(0, 1, wf, dtype=z.dtype, device=z.device).view(1, 1, 1, wf).expand(b, 1, h, wf)
            z = torch.cat([fy, fx, z], dim=1)
        # a half-precision model gets its weights' dtype; autocast may lower the output: back to the FFT's dtype
        z = self.act(self.bn(self.conv(z.to(self.conv.weight.dtype)))).to(xf.dtype)
        z = z.reshape(b, -1, 2, h, wf).permute(0, 1, 3, 4, 2).contiguous()  # (B, C_out, H, Wf, 2)
        out = torch.fft.irfft2(torch.view_as_complex(z), s=(h, w), norm=self.fft_norm)
        return out.to(x.dtype)


class SpectralTransform(nn.Module):
    """The global-to-global path: 1x1 reduce -> FourierUnit (+ local Fourier unit) with a skip -> 1x1 expand.

    Args:
        in_channels: C_in of the (B, C_in, H, W) input.
        out_channels: C_out of the (B, C_out, H/stride, W/stride) output; the spectrum works at C_out // 2.
        stride: 1, or 2 to average-pool by 2 first.
        enable_lfu: add the local Fourier unit: a quarter of the channels, cut into 2x2 spatial tiles that are
            stacked as channels, transformed, and tiled back; needs even H and W (after the stride) and C_out // 2
            divisible by 4. Off in every released LaMa config. Unlike the reference, non-square inputs are split
            by W // 2 along the width (the reference splits both axes by H // 2).
        **fourier_kwargs: passed to the main :class:`FourierUnit` (``fft_norm``, ``spectral_pos_encoding``).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, enable_lfu: bool = False,
                 **fourier_kwargs) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        half = out_channels // 2
        if enable_lfu and half % 4:
            raise ValueError(f"the local Fourier unit needs out_channels // 2 divisible by 4, got {half}")
        self.downsample = nn.AvgPool2d(kernel_size=2, stride=2) if stride == 2 else nn.Identity()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, half, kernel_size=1, bias=False), nn.BatchNorm2d(half),
                                   nn.ReLU(inplace=True))
        self.fu = FourierUnit(half, half, **fourier_kwargs)
        self.lfu = FourierUnit(half, half) if enable_lfu else None
        self.conv2 = nn.Conv2d(half, out_channels, kernel_size=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H/stride, W/stride)."""
        x = self.conv1(self.downsample(x))
        y = x + self.fu(x)
        if self.lfu is not None:
            y = y + self._local_fourier(x)
        return self.conv2(y)

    def _local_fourier(self, x: Tensor) -> Tensor:
        _, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ShapeError(f"the local Fourier unit needs even feature sizes, got {h}x{w}")
        q = x[:, : c // 4]
        # tiles go to channels in the reference order: top-left, bottom-left, top-right, bottom-right
        tiles = torch.cat(torch.split(q, h // 2, dim=-2), dim=1)  # (B, c/2, H/2, W)
        tiles = torch.cat(torch.split(tiles, w // 2, dim=-1), dim=1)  # (B, c, H/2, W/2)
        return self.lfu(tiles).repeat(1, 1, 2, 2)


class FFC(nn.Module):
    """Fast Fourier convolution: four paths between the local and global branches.

    ``out_l = l2l(x_l) + g2l(x_g)`` and ``out_g = l2g(x_l) + g2g(x_g)``; l2l, l2g and g2l are k x k convs (no
    bias, reflect padding by default), g2g is a :class:`SpectralTransform`. A path whose input or output branch is
    empty is absent. The reference's ``gated`` option (off in every LaMa config) is not implemented.

    Args:
        in_channels: C_in = C_l + C_g of the input.
        out_channels: C_out of the output.
        kernel_size: k of the spatial convs.
        ratio_gin: share of input channels in the global branch.
        ratio_gout: share of output channels in the global branch.
        stride: 1 or 2.
        padding: spatial padding of the k x k convs.
        dilation: dilation of the k x k convs.
        bias: bias in the k x k convs.
        enable_lfu: local Fourier unit in g2g (see :class:`SpectralTransform`).
        padding_mode: padding mode of the k x k convs (``"reflect"`` as in LaMa).
        **fourier_kwargs: passed to the g2g :class:`FourierUnit`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, ratio_gin: float = 0.0,
                 ratio_gout: float = 0.0, stride: int = 1, padding: int = 0, dilation: int = 1, bias: bool = False,
                 enable_lfu: bool = False, padding_mode: str = "reflect", **fourier_kwargs) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        in_l, in_g = split_channels(in_channels, ratio_gin)
        out_l, out_g = split_channels(out_channels, ratio_gout)
        self.in_split, self.out_split = (in_l, in_g), (out_l, out_g)

        def conv(cin: int, cout: int) -> nn.Conv2d | None:
            if not (cin and cout):
                return None
            return nn.Conv2d(cin, cout, kernel_size, stride, padding, dilation, bias=bias, padding_mode=padding_mode)

        self.convl2l = conv(in_l, out_l)
        self.convl2g = conv(in_l, out_g)
        self.convg2l = conv(in_g, out_l)
        self.convg2g = SpectralTransform(in_g, out_g, stride, enable_lfu, **fourier_kwargs) if in_g and out_g else None

    def forward(self, x: Tensor | Branches) -> Branches:
        """``(x_l, x_g)`` of (B, C_l, H, W), (B, C_g, H, W) (or one all-local tensor) -> ``(out_l, out_g)``."""
        x_l, x_g = as_branches(x)
        out_l = _add(_run(self.convl2l, x_l), _run(self.convg2l, x_g)) if self.out_split[0] else None
        out_g = _add(_run(self.convl2g, x_l), _run(self.convg2g, x_g)) if self.out_split[1] else None
        return out_l, out_g


class FFC_BN_ACT(nn.Module):  # the reference's name, kept so readers can map one onto the other
    """:class:`FFC` followed by a separate norm and activation on each branch.

    Args:
        in_channels, out_channels, kernel_size, ratio_gin, ratio_gout, stride, padding, dilation, bias,
            enable_lfu, padding_mode, **fourier_kwargs: as in :class:`FFC`.
        norm: ``"batch"`` (LaMa), ``"instance"`` or ``"none"``.
        activation: ``"relu"`` (LaMa's generator), ``"lrelu"`` (slope 0.2) or ``"none"``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, ratio_gin: float = 0.0,
                 ratio_gout: float = 0.0, stride: int = 1, padding: int = 0, dilation: int = 1, bias: bool = False,
                 norm: str = "batch", activation: str = "relu", padding_mode: str = "reflect",
                 enable_lfu: bool = False, **fourier_kwargs) -> None:
        super().__init__()
        self.ffc = FFC(in_channels, out_channels, kernel_size, ratio_gin, ratio_gout, stride, padding, dilation,
                       bias, enable_lfu, padding_mode, **fourier_kwargs)
        out_l, out_g = self.ffc.out_split
        self.bn_l = _norm(norm, out_l) if out_l else None
        self.bn_g = _norm(norm, out_g) if out_g else None
        self.act_l = _activation(activation) if out_l else None
        self.act_g = _activation(activation) if out_g else None

    def forward(self, x: Tensor | Branches) -> Branches:
        """Branches in, branches out (shapes as in :class:`FFC`)."""
        x_l, x_g = self.ffc(x)
        if x_l is not None:
            x_l = self.act_l(self.bn_l(x_l))
        if x_g is not None:
            x_g = self.act_g(self.bn_g(x_g))
        return x_l, x_g


class FFCResnetBlock(nn.Module):
    """Two 3x3 :class:`FFC_BN_ACT` layers with a per-branch residual: ``x_l + f_l(x)``, ``x_g + f_g(x)``.

    With ``ratio=0`` it is a plain 3x3 conv ResNet block (conv-BN-ReLU twice, reflect padding), the "regular"
    control of the LaMa ablation.

    Args:
        channels: C = C_l + C_g, kept by the block.
        ratio: global share of the channels, in and out (0.75 in LaMa).
        dilation: dilation (and padding) of the 3x3 convs.
        norm, activation, enable_lfu, **fourier_kwargs: as in :class:`FFC_BN_ACT`.
        attention: optional module mapping the residual branches ``(f_l, f_g)`` to re-weighted branches before the
            addition (ReLaMa's per-branch CBAM, :class:`torchworks.nn.cbam.BranchCBAM`).
    """

    def __init__(self, channels: int, ratio: float = 0.75, dilation: int = 1, norm: str = "batch",
                 activation: str = "relu", enable_lfu: bool = False, attention: nn.Module | None = None,
                 **fourier_kwargs) -> None:
        super().__init__()
        kw = dict(kernel_size=3, ratio_gin=ratio, ratio_gout=ratio, padding=dilation, dilation=dilation, norm=norm,
                  activation=activation, enable_lfu=enable_lfu, **fourier_kwargs)
        self.conv1 = FFC_BN_ACT(channels, channels, **kw)
        self.conv2 = FFC_BN_ACT(channels, channels, **kw)
        self.attention = attention

    def forward(self, x: Tensor | Branches) -> Branches:
        """``(x_l, x_g)`` -> same shapes."""
        x_l, x_g = as_branches(x)
        y = self.conv2(self.conv1((x_l, x_g)))
        if self.attention is not None:
            y = self.attention(y)
        return _add(x_l, y[0]), _add(x_g, y[1])

"""CBAM (channel then spatial attention) and its branch-aware form for FFC blocks (ReLaMa).

CBAM re-weights a feature map F (B, C, H, W) in two steps (paper, eq. 1-3)::

    Mc(F) = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F)))       # (B, C, 1, 1), MLP shared, C -> C/r -> C, ReLU
    F'    = Mc(F) * F
    Ms(F')= sigmoid(conv7x7([mean_c(F'); max_c(F')]))         # (B, 1, H, W)
    F''   = Ms(F') * F'

and sits on the residual branch of a block, before the identity addition. The MLP and the 7x7 conv have no bias,
as in the paper's equations; the authors' code adds MLP biases and a BatchNorm after the 7x7 conv, and stacks
the pooled maps as [max; mean]; none of that changes what the module can express.

:class:`BranchCBAM` applies CBAM to an FFC block's two branches with separate modules ("paper" variant). The
``variant="seed"`` option reproduces the ReLaMa seed listing so the difference can be measured:

* its channel attention squashes each pooled path before summing and squashes again,
  ``sigmoid(sigmoid(MLP(avg)) + sigmoid(MLP(max)))``, so the gate can only take values in
  (sigmoid(0), sigmoid(2)) = (0.5, 0.881) instead of (0, 1);
* one 7x7 spatial conv is shared by both branches (each branch still pools its own channels).

References:
    Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018, section 3 (arXiv 1807.06521).
    Jongchan/attention-module ``MODELS/cbam.py`` (the authors' code).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["CBAM", "VARIANTS", "BranchCBAM", "ChannelAttention", "SpatialAttention"]

VARIANTS = ("paper", "seed")


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown CBAM variant {variant!r}; use one of {VARIANTS}")


class ChannelAttention(nn.Module):
    """The channel map Mc: a shared bottleneck MLP on the average- and max-pooled descriptors.

    Args:
        channels: C of the (B, C, H, W) input.
        reduction: r, the MLP's hidden width is ``max(1, C // r)`` (16 in the paper).
        variant: ``"paper"`` (one sigmoid over the sum) or ``"seed"`` (sigmoid over the sum of sigmoids).
    """

    def __init__(self, channels: int, reduction: int = 16, variant: str = "paper") -> None:
        super().__init__()
        _check_variant(variant)
        if channels < 1 or reduction < 1:
            raise ValueError(f"channels and reduction must be >= 1, got {channels} and {reduction}")
        hidden = max(1, channels // reduction)
        self.variant = variant
        self.mlp = nn.Sequential(nn.Linear(channels, hidden, bias=False), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, channels, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> attention map (B, C, 1, 1) in (0, 1)."""
        b, c = x.shape[:2]
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=0)  # (2B, C): one MLP call for both
        avg, mx = self.mlp(pooled).split(b, dim=0)
        if self.variant == "seed":
            avg, mx = torch.sigmoid(avg), torch.sigmoid(mx)
        return torch.sigmoid(avg + mx).view(b, c, 1, 1)


class SpatialAttention(nn.Module):
    """The spatial map Ms: a k x k conv over the channel-wise mean and max, then a sigmoid.

    Args:
        kernel_size: odd k (7 in the paper, which found it better than 3).
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> attention map (B, 1, H, W) in (0, 1)."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)  # (B, 2, H, W)
        return torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Channel attention then spatial attention on one (B, C, H, W) tensor; output has the input's shape.

    Args:
        channels: C.
        reduction: MLP reduction r.
        kernel_size: spatial conv size.
        variant: channel-attention variant (see :class:`ChannelAttention`).
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7, variant: str = "paper") -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction, variant)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        x = x * self.channel(x)
        return x * self.spatial(x)


class BranchCBAM(nn.Module):
    """CBAM on each branch ``(x_l, x_g)`` of an FFC block's residual output, before the identity addition.

    ``"paper"``: an independent :class:`CBAM` per branch. ``"seed"``: per-branch channel attention with the
    double sigmoid and one :class:`SpatialAttention` used by both branches (see the module docstring). An empty
    branch (0 channels, ``None`` at run time) gets no module.

    Args:
        local_channels: C_l of the local branch (B, C_l, H, W).
        global_channels: C_g of the global branch (B, C_g, H, W).
        reduction: MLP reduction r.
        kernel_size: spatial conv size.
        variant: ``"paper"`` or ``"seed"``.
    """

    def __init__(self, local_channels: int, global_channels: int, reduction: int = 16, kernel_size: int = 7,
                 variant: str = "paper") -> None:
        super().__init__()
        _check_variant(variant)
        self.variant = variant
        if variant == "paper":
            self.cbam_l = CBAM(local_channels, reduction, kernel_size) if local_channels else None
            self.cbam_g = CBAM(global_channels, reduction, kernel_size) if global_channels else None
        else:
            self.channel_l = ChannelAttention(local_channels, reduction, "seed") if local_channels else None
            self.channel_g = ChannelAttention(global_channels, reduction, "seed") if global_channels else None
            self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: tuple[Tensor | None, Tensor | None]) -> tuple[Tensor | None, Tensor | None]:
        """``(x_l, x_g)`` -> re-weighted ``(x_l, x_g)``, same shapes; ``None`` stays ``None``."""
        x_l, x_g = x
        if self.variant == "paper":
            return self._one(self.cbam_l, x_l), self._one(self.cbam_g, x_g)
        return self._seed(self.channel_l, x_l), self._seed(self.channel_g, x_g)

    @staticmethod
    def _one(module: nn.Module | None, x: Tensor | None) -> Tensor | None:
        return x if module is None or x is None else module(x)

    def _seed(self, channel: nn.Module | None, x: Tensor | None) -> Tensor | None:
        if channel is None or x is None:
            return x
        x = x * channel(x)
        return x * self.spatial(x)

"""Wide residual networks for CIFAR: wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2 (depth d, widen factor k)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.registry import MODELS
from torchworks.distill.models._base import ZooModel


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 with identity (or 1x1-conv shortcut on the *activated* input).

    ``forward(x, return_preact=True)`` also returns bn1(x), the pre-ReLU version of the incoming stream; the
    network uses it as the pre-ReLU feature of the previous stage, so that BN runs once per step (RepDistiller
    re-applies ``bn1`` to the features, which updates its running statistics twice in train mode).
    """

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None if c_in == c_out else nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)

    def forward(self, x: Tensor, return_preact: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        pre = self.bn1(x)
        a = F.relu(pre)
        out = self.conv2(F.relu(self.bn2(self.conv1(a))))
        # as in the original WRN code, a changing block projects the activated input, an identity block adds x
        out = out + (x if self.shortcut is None else self.shortcut(a))
        return (out, pre) if return_preact else out


class WRNStage(nn.Sequential):
    """Blocks of one WRN stage; returns (output, bn1 of the stage input), the latter being the previous stage's
    pre-ReLU feature. Called through ``__call__`` so hooks on ``"block2"`` fire (taps keep element 0)."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        pre_in = None
        for i, block in enumerate(self):
            if i == 0:
                x, pre_in = block(x, return_preact=True)
            else:
                x = block(x)
        return x, pre_in


class WideResNet(ZooModel):
    """WRN-d-k for 32x32 inputs (pre-activation blocks, depth = 6n + 4, widths 16, 16k, 32k, 64k).

    Features: f0 the stem conv output (no BN/ReLU precedes it; RepDistiller's f0), f1..f3 the stage outputs
    (the residual stream, which in a pre-activation net is never itself passed through a ReLU; this is
    RepDistiller's post-ReLU list), pooled (B, 64k). With ``preact=True`` f1..f3 are the BN outputs that
    the *next* ReLU consumes (block2.0.bn1, block3.0.bn1, the final bn), as OFD needs.

    References:
        Zagoruyko, Komodakis, "Wide Residual Networks", BMVC 2016, arXiv:1605.07146.
        Reference implementation (layout and parameter counts): HobbitLong/RepDistiller ``models/wrn.py``.
    """

    def __init__(self, depth: int, widen: int, num_classes: int = 100) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet: depth must be 6n+4 (16, 40, ...), got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        stages, c_in = [], 16
        for i, c in enumerate(widths[1:]):
            stride = 1 if i == 0 else 2
            blocks = [PreActBlock(c_in if j == 0 else c, c, stride if j == 0 else 1) for j in range(n)]
            stages.append(WRNStage(*blocks))
            c_in = c
        self.block1, self.block2, self.block3 = stages
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        self.stage_channels = [*widths, widths[3]]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def _forward(self, x: Tensor, want_features: bool) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        f0 = self.conv1(x)
        f1, _ = self.block1(f0)
        f2, p1 = self.block2(f1)
        f3, p2 = self.block3(f2)
        p3 = self.bn1(f3)
        pooled = F.adaptive_avg_pool2d(F.relu(p3), 1).flatten(1)
        return self.fc(pooled), [f0, f1, f2, f3, pooled], [f0, p1, p2, p3, pooled]

    def bn_before_relu(self) -> list[nn.BatchNorm2d]:
        return [self.block2[0].bn1, self.block3[0].bn1, self.bn1]

    def feature_modules(self) -> nn.ModuleList:
        return nn.ModuleList([self.conv1, self.block1, self.block2, self.block3])


def _register(depth: int, widen: int) -> None:
    name = f"wrn_{depth}_{widen}"

    def build(num_classes: int = 100) -> WideResNet:
        return WideResNet(depth, widen, num_classes)

    build.__name__ = name
    build.__doc__ = f"WRN-{depth}-{widen} for CIFAR (RepDistiller ``{name}``)."
    MODELS.add(name, build, family="distill_zoo")


for _d, _k in ((16, 1), (16, 2), (40, 1), (40, 2)):
    _register(_d, _k)

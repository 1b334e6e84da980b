"""CIFAR ResNets (He et al. 2016, Sec. 4.2): resnet8 ... resnet110, and the 4x-wide resnet8x4 / resnet32x4."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.registry import MODELS
from torchworks.distill.models._base import ZooModel


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus shortcut (1x1 conv + BN when the shape changes), then ReLU.

    ``forward(x, return_preact=True)`` returns (out, pre-ReLU sum); stages call their last block that way so
    pre- and post-ReLU features come from one pass (forward hooks on that block see the tuple).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor, return_preact: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        pre = out + (x if self.downsample is None else self.downsample(x))
        out = F.relu(pre)
        return (out, pre) if return_preact else out


class Stage(nn.Sequential):
    """A sequence of blocks accepting ``return_preact``; returns (post-ReLU, pre-ReLU) of the last block.

    Called through ``__call__`` so forward hooks on the stage path (``"layer2"``) fire; a
    :class:`~torchworks.distill.taps.FeatureTaps` on it receives the tuple and keeps the post-ReLU output.
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        n = len(self)
        for i, block in enumerate(self):
            if i == n - 1:
                return block(x, return_preact=True)
            x = block(x)
        raise ValueError("Stage: needs at least one block")


class CifarResNet(ZooModel):
    """3-stage ResNet for 32x32 inputs, depth = 6n + 2, widths ``widths = [stem, s1, s2, s3]``.

    Features: f0 stem (16x32x32 for the thin nets), f1..f3 stage outputs at 32, 16, 8 px, pooled (B, widths[3]).
    Pre-ReLU features are the residual sums of the last block of each stage.

    References:
        He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016 (CIFAR variant).
        Reference implementation (layout and parameter counts): HobbitLong/RepDistiller ``models/resnet.py``.
    """

    def __init__(self, depth: int, widths: list[int], num_classes: int = 100) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CifarResNet: depth must be 6n+2 (8, 14, 20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages, c_in = [], widths[0]
        for i, c in enumerate(widths[1:]):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(c_in if j == 0 else c, c, stride if j == 0 else 1) for j in range(n)]
            stages.append(Stage(*blocks))
            c_in = c
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(widths[3], num_classes)
        self.stage_channels = [*widths, widths[3]]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _forward(self, x: Tensor, want_features: bool) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        f0 = F.relu(self.bn1(self.conv1(x)))
        f1, p1 = self.layer1(f0)
        f2, p2 = self.layer2(f1)
        f3, p3 = self.layer3(f2)
        pooled = F.adaptive_avg_pool2d(f3, 1).flatten(1)
        return self.fc(pooled), [f0, f1, f2, f3, pooled], [f0, p1, p2, p3, pooled]

    def bn_before_relu(self) -> list[nn.BatchNorm2d]:
        return [stage[-1].bn2 for stage in (self.layer1, self.layer2, self.layer3)]

    def feature_modules(self) -> nn.ModuleList:
        return nn.ModuleList([self.conv1, self.bn1, self.layer1, self.layer2, self.layer3])


def _register(name: str, depth: int, widths: list[int]) -> None:
    def build(num_classes: int = 100) -> CifarResNet:
        return CifarResNet(depth, widths, num_classes)

    build.__name__ = name
    build.__doc__ = f"CIFAR ResNet-{depth}, widths {widths} (RepDistiller ``{name}``)."
    MODELS.add(name, build, family="distill_zoo")


for _d in (8, 14, 20, 32, 44, 56, 110):
    _register(f"resnet{_d}", _d, [16, 16, 32, 64])
_register("resnet8x4", 8, [32, 64, 128, 256])
_register("resnet32x4", 32, [32, 64, 128, 256])

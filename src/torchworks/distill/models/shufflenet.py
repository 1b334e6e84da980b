"""ShuffleNetV1 (groups 3) and ShuffleNetV2 (1x) for CIFAR, in RepDistiller's layout."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.registry import MODELS
from torchworks.distill.models._base import ZooModel
from torchworks.distill.models.resnet import Stage


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleV1Block(nn.Module):
    """Grouped 1x1 - shuffle - depthwise 3x3 - grouped 1x1; stride-2 blocks concatenate an avg-pooled shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, groups: int) -> None:
        super().__init__()
        mid = c_out // 4
        self.g1 = 1 if c_in == 24 else groups  # the stem has 24 channels, not divisible into the groups' layout
        self.stride = stride
        self.conv1 = nn.Conv2d(c_in, mid, 1, groups=self.g1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, c_out, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor, return_preact: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        out = channel_shuffle(F.relu(self.bn1(self.conv1(x))), self.g1)
        out = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(out)))))
        if self.stride == 2:
            pre = torch.cat([out, F.avg_pool2d(x, 3, 2, 1)], 1)
        else:
            pre = out + x
        return (F.relu(pre), pre) if return_preact else F.relu(pre)


class ShuffleNetV1(ZooModel):
    """ShuffleNetV1 (g=3, widths 240/480/960, 4/8/4 blocks) with a 1x1 stem and no max-pool (32x32 inputs).

    Features: f0 stem (24x32x32), f1..f3 (240x16, 480x8, 960x4 px), pooled (B, 960); pre-ReLU = the sum (or
    concatenation) before the last block's ReLU.

    References:
        Zhang, Zhou, Lin, Sun, "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile
        Devices", CVPR 2018. Reference implementation: HobbitLong/RepDistiller ``models/ShuffleNetv1.py``.
    """

    def __init__(self, num_classes: int = 100, widths: tuple[int, ...] = (240, 480, 960),
                 blocks: tuple[int, ...] = (4, 8, 4), groups: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        stages, c_in = [], 24
        for c, n in zip(widths, blocks, strict=True):
            # the first block of a stage concatenates its input, so its own branch produces c - c_in channels
            layers = [ShuffleV1Block(c_in, c - c_in, 2, groups)]
            layers += [ShuffleV1Block(c, c, 1, groups) for _ in range(n - 1)]
            stages.append(Stage(*layers))
            c_in = c
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(widths[-1], num_classes)
        self.stage_channels = [24, *widths, widths[-1]]

    def _forward(self, x: Tensor, want_features: bool) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        f0 = F.relu(self.bn1(self.conv1(x)))
        f1, p1 = self.layer1(f0)
        f2, p2 = self.layer2(f1)
        f3, p3 = self.layer3(f2)
        pooled = F.adaptive_avg_pool2d(f3, 1).flatten(1)
        return self.linear(pooled), [f0, f1, f2, f3, pooled], [f0, p1, p2, p3, pooled]

    def feature_modules(self) -> nn.ModuleList:
        return nn.ModuleList([self.conv1, self.bn1, self.layer1, self.layer2, self.layer3])


class ShuffleV2Block(nn.Module):
    """Channel split; the right half goes 1x1-BN-ReLU, dw3x3-BN, 1x1-BN-ReLU; concat; shuffle (groups 2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels // 2
        self.conv1 = nn.Conv2d(c, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)

    def forward(self, x: Tensor, return_preact: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        x1, x2 = x.chunk(2, dim=1)
        p = self.bn3(self.conv3(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x2)))))))
        out = channel_shuffle(torch.cat([x1, F.relu(p)], 1), 2)
        if not return_preact:
            return out
        # shuffled like the output, so channel i of the pre-ReLU map feeds channel i of the post-ReLU map
        # (RepDistiller returns the unshuffled concatenation, whose channels do not line up with the output)
        return out, channel_shuffle(torch.cat([x1, p], 1), 2)


class ShuffleV2Down(nn.Module):
    """Stride-2 unit: both branches downsample (dw3x3 s2) and are concatenated, then shuffled."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        mid = c_out // 2
        self.left = nn.Sequential(
            nn.Conv2d(c_in, c_in, 3, 2, 1, groups=c_in, bias=False), nn.BatchNorm2d(c_in),
            nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
        )
        self.right = nn.Sequential(
            nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, mid, 3, 2, 1, groups=mid, bias=False), nn.BatchNorm2d(mid),
            nn.Conv2d(mid, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return channel_shuffle(torch.cat([self.left(x), self.right(x)], 1), 2)


class ShuffleNetV2(ZooModel):
    """ShuffleNetV2 1x (116/232/464 channels, 3/7/3 units, 1024-d last conv) with a 1x1 stem, no max-pool.

    Features: f0 stem (24x32x32), f1..f3 (116x16, 232x8, 464x4 px), pooled (B, 1024) after the last 1x1 conv.

    References:
        Ma, Zhang, Zheng, Sun, "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
        ECCV 2018. Reference implementation: HobbitLong/RepDistiller ``models/ShuffleNetv2.py``.
    """

    def __init__(self, num_classes: int = 100, widths: tuple[int, ...] = (116, 232, 464, 1024),
                 blocks: tuple[int, ...] = (3, 7, 3)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        stages, c_in = [], 24
        for c, n in zip(widths[:3], blocks, strict=True):
            stages.append(Stage(ShuffleV2Down(c_in, c), *[ShuffleV2Block(c) for _ in range(n)]))
            c_in = c
        self.layer1, self.layer2, self.layer3 = stages
        self.conv2 = nn.Conv2d(widths[2], widths[3], 1, bias=False)
        self.bn2 = nn.BatchNorm2d(widths[3])
        self.linear = nn.Linear(widths[3], num_classes)
        self.stage_channels = [24, *widths]

    def _forward(self, x: Tensor, want_features: bool) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        f0 = F.relu(self.bn1(self.conv1(x)))
        f1, p1 = self.layer1(f0)
        f2, p2 = self.layer2(f1)
        f3, p3 = self.layer3(f2)
        pooled = F.adaptive_avg_pool2d(F.relu(self.bn2(self.conv2(f3))), 1).flatten(1)
        return self.linear(pooled), [f0, f1, f2, f3, pooled], [f0, p1, p2, p3, pooled]

    def feature_modules(self) -> nn.ModuleList:
        return nn.ModuleList([self.conv1, self.bn1, self.layer1, self.layer2, self.layer3])


@MODELS.register("shufflenetv1", family="distill_zoo")
def shufflenetv1(num_classes: int = 100) -> ShuffleNetV1:
    """ShuffleNetV1, groups 3 (RepDistiller ``ShuffleV1``)."""
    return ShuffleNetV1(num_classes)


@MODELS.register("shufflenetv2", family="distill_zoo")
def shufflenetv2(num_classes: int = 100) -> ShuffleNetV2:
    """ShuffleNetV2 1x (RepDistiller ``ShuffleV2``)."""
    return ShuffleNetV2(num_classes)

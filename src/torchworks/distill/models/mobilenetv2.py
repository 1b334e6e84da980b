"""MobileNetV2 for CIFAR as used in RepDistiller (``mobile_half``: expansion 6, width 0.5)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.registry import MODELS
from torchworks.distill.models._base import ZooModel

# (expansion t, channels c, repeats n, first stride s); t of the first row is fixed to 1
SETTINGS = [(1, 16, 1, 1), (None, 24, 2, 1), (None, 32, 3, 2), (None, 64, 4, 2), (None, 96, 3, 1),
            (None, 160, 3, 2), (None, 320, 1, 1)]


def _conv_bn_relu(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class InvertedResidual(nn.Module):
    """1x1 expand - 3x3 depthwise - 1x1 linear projection (no ReLU after it), residual when shapes allow."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.use_residual = stride == 1 and c_in == c_out
        self.conv = nn.Sequential(
            *_conv_bn_relu(c_in, hidden, 1),
            *_conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(ZooModel):
    """MobileNetV2 with a stride-2 stem, 7 inverted-residual groups, a 1x1 conv to 1280 and a linear head.

    Features on 32x32 inputs: f0 stem (16x16x16 at width 0.5), f1 = group 1 (12x16x16), f2 = group 2 (16x8x8),
    f3 = group 4 (48x4x4), f4 = group 6 (160x2x2), pooled (B, 1280). The group outputs are *linear bottlenecks*:
    no ReLU follows them, so the pre- and post-ReLU lists are the same tensors (RepDistiller ignores
    ``preact`` for this model; OFD therefore has no natural pre-ReLU position here, mdistiller issue #68).

    Args:
        expand: expansion factor T of groups 2-7 (6).
        width: width multiplier (0.5 for ``mobile_half``); the last conv stays at 1280 for width <= 1.

    References:
        Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018, arXiv:1801.04381.
        Reference implementation (layout and parameter counts): HobbitLong/RepDistiller ``models/mobilenetv2.py``.
    """

    def __init__(self, expand: int = 6, width: float = 0.5, num_classes: int = 100) -> None:
        super().__init__()
        c_in = int(32 * width)
        self.conv1 = nn.Sequential(*_conv_bn_relu(3, c_in, 3, 2))
        groups = []
        for t, c, n, s in SETTINGS:
            c_out = int(c * width)
            blocks = []
            for i in range(n):
                blocks.append(InvertedResidual(c_in, c_out, s if i == 0 else 1, expand if t is None else t))
                c_in = c_out
            groups.append(nn.Sequential(*blocks))
        self.blocks = nn.ModuleList(groups)
        last = int(1280 * width) if width > 1.0 else 1280
        self.conv2 = nn.Sequential(*_conv_bn_relu(c_in, last, 1))
        self.classifier = nn.Linear(last, num_classes)
        self.stage_channels = [int(32 * width)] + [int(SETTINGS[i][1] * width) for i in (1, 2, 4, 6)] + [last]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def _forward(self, x: Tensor, want_features: bool) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        h = self.conv1(x)
        feats = [h]
        for i, group in enumerate(self.blocks):
            h = group(h)
            if i in (1, 2, 4, 6):
                feats.append(h)
        pooled = F.adaptive_avg_pool2d(self.conv2(h), 1).flatten(1)
        feats.append(pooled)
        return self.classifier(pooled), feats, feats

    def bn_before_relu(self) -> list[nn.BatchNorm2d]:
        return [self.blocks[i][-1].conv[-1] for i in (1, 2, 4, 6)]

    def feature_modules(self) -> nn.ModuleList:
        return nn.ModuleList([self.conv1, self.blocks])


@MODELS.register("mobilenetv2_half", family="distill_zoo")
def mobilenetv2_half(num_classes: int = 100) -> MobileNetV2:
    """MobileNetV2, expansion 6, width 0.5 (RepDistiller ``MobileNetV2`` / ``mobile_half``)."""
    return MobileNetV2(6, 0.5, num_classes)

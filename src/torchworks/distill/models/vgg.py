"""VGG with batch norm for CIFAR (FC head reduced to one linear layer): vgg8, vgg11, vgg13."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.registry import MODELS
from torchworks.distill.models._base import ZooModel

# channels per block; RepDistiller's cfg 'S' (vgg8), 'A' (vgg11), 'B' (vgg13)
CONFIGS = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg11": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
}


def _block(c_in: int, widths: list[int]) -> nn.Sequential:
    """conv3x3(bias)-BN-ReLU repeated, *without* the final ReLU, so the block output is the pre-ReLU map."""
    layers: list[nn.Module] = []
    for c in widths:
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
        c_in = c
    return nn.Sequential(*layers[:-1])


class CifarVGG(ZooModel):
    """Five conv blocks with max-pooling between them, global average pooling and one linear layer.

    Features: f0 block0 (after ReLU, 64x32x32), f1..f4 blocks 1-4 (128x16, 256x8, 512x4, 512x4 px on 32x32
    inputs), pooled (B, 512). The pool between blocks 3 and 4 is applied only when the map is larger than 4x4:
    RepDistiller applies it only for 64 px inputs, which on 32 and 64 px inputs is the same rule.

    References:
        Simonyan, Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", ICLR 2015.
        Reference implementation (layout and parameter counts): HobbitLong/RepDistiller ``models/vgg.py`` (``*_bn``).
    """

    def __init__(self, cfg: list[list[int]], num_classes: int = 100) -> None:
        super().__init__()
        c_in, blocks = 3, []
        for widths in cfg:
            blocks.append(_block(c_in, widths))
            c_in = widths[-1]
        self.block0, self.block1, self.block2, self.block3, self.block4 = blocks
        self.classifier = nn.Linear(cfg[4][-1], num_classes)
        self.stage_channels = [w[-1] for w in cfg] + [cfg[4][-1]]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def _forward(self, x: Tensor, want_features: bool) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        f0 = F.relu(self.block0(x))
        pre, post = [], []
        h = F.max_pool2d(f0, 2)
        for i, block in enumerate((self.block1, self.block2, self.block3, self.block4)):
            p = block(h)
            a = F.relu(p)
            pre.append(p)
            post.append(a)
            if i < 2 or (i == 2 and a.shape[-1] > 4):
                h = F.max_pool2d(a, 2)
            else:
                h = a
        pooled = F.adaptive_avg_pool2d(h, 1).flatten(1)
        return self.classifier(pooled), [f0, *post, pooled], [f0, *pre, pooled]

    def bn_before_relu(self) -> list[nn.BatchNorm2d]:
        return [b[-1] for b in (self.block1, self.block2, self.block3, self.block4)]

    def feature_modules(self) -> nn.ModuleList:
        return nn.ModuleList([self.block0, self.block1, self.block2, self.block3, self.block4])


def _register(name: str) -> None:
    def build(num_classes: int = 100) -> CifarVGG:
        return CifarVGG(CONFIGS[name], num_classes)

    build.__name__ = name
    build.__doc__ = f"{name} with BN for CIFAR (RepDistiller ``{name}_bn``)."
    MODELS.add(name, build, family="distill_zoo")


for _name in CONFIGS:
    _register(_name)

"""The CNN that the small ViTs are compared with: a plain VGG-style network sized to the same parameter count.

Three stages of 3x3 conv-BN-ReLU layers, each stage after the first starting with a 2x2 max-pool, then global
average pooling and a linear head. It has exactly the priors ViT lacks (local 3x3 receptive fields, weights
shared across positions, pooling), so at equal parameters, equal data and an equal CPU budget the two differ only
in that inductive bias (see ``docs/results/transformer.md``).

References:
    Simonyan and Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", ICLR 2015.
    Ioffe and Szegedy, "Batch Normalization", ICML 2015.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from torchworks.core.registry import MODELS

__all__ = ["ConvNet"]


class ConvNet(nn.Module):
    """VGG-style classifier: ``stages`` of ``depth`` conv3x3-BN-ReLU, max-pool between stages, GAP, linear.

    Args:
        in_chans: image channels.
        widths: channels of each stage.
        depths: conv layers per stage.
        num_classes: outputs (logits).
        dropout: dropout before the head.
    """

    def __init__(self, in_chans: int = 3, widths: Sequence[int] = (32, 64, 128), depths: Sequence[int] = (1, 2, 2),
                 num_classes: int = 10, dropout: float = 0.0) -> None:
        super().__init__()
        if len(widths) != len(depths) or not widths:
            raise ValueError(f"widths and depths must be non-empty and of equal length, got {widths}, {depths}")
        layers: list[nn.Module] = []
        cin = in_chans
        for i, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            if i:
                layers.append(nn.MaxPool2d(2))
            for _ in range(depth):
                layers += [nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                           nn.ReLU(inplace=True)]
                cin = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(cin, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: Tensor) -> Tensor:
        """Logits (B, num_classes) of normalised images (B, C, H, W) (any size the pools divide)."""
        return self.head(self.features(images))


_VARIANTS = {
    # ~0.21M parameters, like vit_tiny_patch4_28 (Fashion-MNIST).
    "cnn_vgg_28": dict(in_chans=1, widths=(27, 54, 108), depths=(1, 2, 2)),
    # ~0.79M parameters, like vit_small_patch7_28 (Fashion-MNIST).
    "cnn_vgg_28_wide": dict(in_chans=1, widths=(54, 108, 216), depths=(1, 2, 2)),
    # ~0.55M parameters, like vit_mini_patch4_32 (CIFAR-10).
    "cnn_vgg_32": dict(in_chans=3, widths=(48, 96, 168), depths=(1, 2, 2)),
}


def _register(name: str, base: dict) -> None:
    def factory(**overrides) -> ConvNet:
        return ConvNet(**{**base, **overrides})

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"CNN baseline {name!r}: {base}; keyword arguments override any ConvNet argument."
    MODELS.add(name, factory, family="cnn")


for _name, _base in _VARIANTS.items():
    _register(_name, _base)

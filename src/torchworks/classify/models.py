"""Small Fashion-MNIST classifiers (an MLP and a CNN), registered in ``MODELS``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from torchworks.core.registry import MODELS


class MLP(nn.Module):
    """Fully connected classifier on flattened images.

    Args:
        in_features: pixels per image (784 for 28x28).
        hidden: widths of the hidden layers.
        num_classes: outputs (logits).
        dropout: dropout after each hidden layer.
    """

    def __init__(self, in_features: int = 784, hidden: Sequence[int] = (256, 128), num_classes: int = 10,
                 dropout: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps images (B, 1, 28, 28) float in [0, 1] to logits (B, num_classes)."""
        return self.net(x)


class SmallCNN(nn.Module):
    """Two conv blocks (conv-BN-ReLU-pool) and a linear head; ~60k parameters at width 32.

    Args:
        in_channels: image channels.
        width: channels of the first block (the second has twice as many).
        num_classes: outputs (logits).
        image_size: side of the square input, for the head's size.
    """

    def __init__(self, in_channels: int = 1, width: int = 32, num_classes: int = 10, image_size: int = 28,
                 dropout: float = 0.2) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                                 nn.ReLU(inplace=True), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(in_channels, width), block(width, 2 * width))
        side = image_size // 4
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(2 * width * side * side, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps images (B, C, H, W) float in [0, 1] to logits (B, num_classes)."""
        return self.head(self.features(x))


@MODELS.register()
def fashion_mlp(**overrides) -> MLP:
    """MLP 784-256-128-10 with dropout 0.1."""
    return MLP(**{"hidden": (256, 128), "dropout": 0.1, **overrides})


@MODELS.register()
def fashion_cnn(**overrides) -> SmallCNN:
    """Two-block CNN of width 32."""
    return SmallCNN(**{"width": 32, **overrides})

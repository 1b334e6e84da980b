"""Networks outside the zoo for the distillation tests, named by import path ``distill_foreign_nets:<factory>``.

Plain ``torch.nn`` models that know nothing about torchworks: no registry entry, no feature list.
"""

from torch import nn


def tiny_cnn(num_classes: int = 10, width: int = 8) -> nn.Sequential:
    """conv-BN-ReLU (32 px) -> conv-BN-ReLU (16 px) -> pool -> linear; modules 0..8 of a Sequential."""
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
    )


def fixed_ten() -> nn.Sequential:
    """A factory without a ``num_classes`` parameter: always 10 logits."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10))


class SharedRelu(nn.Module):
    """Uses its one ``act`` module twice per forward (as torchvision's BasicBlock does with ``relu``)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.head(self.act(self.conv2(self.act(self.conv1(x)))).mean((2, 3)))


def not_a_model() -> int:
    return 3

"""CIFAR model zoo for distillation (RepDistiller's architectures), registered in ``MODELS``.

Names: resnet8/14/20/32/44/56/110, resnet8x4, resnet32x4, wrn_16_1/16_2/40_1/40_2, vgg8/11/13 (with BN),
mobilenetv2_half, shufflenetv1, shufflenetv2. Every builder takes ``num_classes`` (default 100, the setting of
the published parameter counts) and returns a :class:`ZooModel` whose
``forward(x, return_features=False, preact=False)`` gives logits or ``(logits, [f0, ..., pooled])``.
"""

from torchworks.distill.models import mobilenetv2, resnet, shufflenet, vgg, wrn
from torchworks.distill.models._base import ZooModel

ZOO_NAMES = [
    "resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet8x4", "resnet32x4",
    "wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2", "vgg8", "vgg11", "vgg13", "mobilenetv2_half", "shufflenetv1",
    "shufflenetv2",
]

__all__ = ["ZOO_NAMES", "ZooModel", "mobilenetv2", "resnet", "shufflenet", "vgg", "wrn"]

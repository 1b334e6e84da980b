"""Knowledge distillation: losses (one module per family), feature taps, model zoo, DistillationTask.

Importing this package registers the losses in ``DISTILL_LOSSES`` and the CIFAR model zoo in ``MODELS``.
"""

from torchworks.distill import losses, models
from torchworks.distill.taps import FeatureTaps, feature_shapes

__all__ = ["FeatureTaps", "feature_shapes", "losses", "models"]

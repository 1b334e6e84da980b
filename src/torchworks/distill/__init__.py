"""Knowledge distillation: losses (one module per family), feature taps, model zoo, DistillationTask.

Importing this package registers the losses in ``DISTILL_LOSSES``, the CIFAR model zoo in ``MODELS`` and the
``distill`` and ``classifier`` tasks in ``TASKS``.
"""

from torchworks.distill import losses, models, task
from torchworks.distill.taps import FeatureTaps, feature_shapes

__all__ = ["FeatureTaps", "feature_shapes", "losses", "models", "task"]

"""Image classification: the small Fashion-MNIST task that exercises the shared engine end to end.

It is the demo's first job and the engine's reference task; the distillation model zoo lives in ``distill``.
"""

from torchworks.classify import models, task  # noqa: F401  (registers models and the task)

"""Image classification shared by every domain: one engine task, its data split, augmentations and metrics.

A layer between the engine and the domains (``distill``, ``transformer``, ... may import it; it imports only
``core``, ``data`` and ``engine``): the ``image_classifier`` task trains any registered image model (the
Fashion-MNIST MLP/CNN registered here, the ViTs and CNN partners, the CIFAR ResNets), and the distillation task
builds on :class:`~torchworks.classify.task.ClassificationTask`.

* :mod:`~torchworks.classify.data`: data sets as uint8 tensors and the fixed-permutation train/validation split;
* :mod:`~torchworks.classify.augment`: random crop with zero padding and horizontal flip, on whole batches;
* :mod:`~torchworks.classify.task`: the task, its config and the optimiser/schedule choices;
* :mod:`~torchworks.classify.evaluate`: top-1 accuracy of a model on images in memory, with its uncertainty.
"""

from torchworks.classify import models, task  # noqa: F401  (registers the models and image_classifier)

"""Runs the ``torchworks`` CLI with the distillation tasks registered.

Until ``torchworks.distill`` imports its task modules (``classifier``, ``task``) in ``__init__``, plain
``torchworks train configs/cifar_resnet56.yaml`` cannot find ``cifar_classifier``/``distill``; this wrapper
imports them first and then hands ``argv`` to the CLI unchanged::

    python benchmarks/distill/run_cli.py train configs/cifar_resnet56.yaml \\
        --resume runs/cifar_resnet56/checkpoints/last.ckpt
"""

import sys

import torchworks.distill.classifier  # noqa: F401  (registers cifar_classifier)
import torchworks.distill.task  # noqa: F401  (registers distill)
from torchworks.cli.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Top-1 accuracy of a classifier on images held in memory, and its binomial uncertainty.

Self-contained (torch only), so the shared classification task can take it over as it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


@torch.inference_mode()
def top1_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 250,
                  progress: Callable[[int, int], None] | None = None) -> float:
    """Fraction of ``images`` whose highest logit is the label, in eval mode, without gradients.

    The model is put in eval mode (batch norm uses its running statistics, dropout is off) and left so.

    Args:
        model: maps a (b, C, H, W) batch to (b, num_classes) logits.
        images: (N, C, H, W) float, already normalised as the model expects.
        labels: (N,) int64 class indices.
        batch_size: images per forward pass (memory only: the result does not depend on it).
        progress: called as ``progress(done, N)`` after each batch.

    Returns:
        Top-1 accuracy in [0, 1].

    Raises:
        ValueError: no images, ``images`` and ``labels`` of different lengths, or ``batch_size < 1``.
    """
    n = len(labels)
    if n == 0 or len(images) != n:
        raise ValueError(f"need as many images as labels (at least one), got {len(images)} and {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model.eval()
    correct = 0
    for i in range(0, n, batch_size):
        logits = model(images[i:i + batch_size])
        correct += int((logits.argmax(1) == labels[i:i + batch_size]).sum())
        if progress is not None:
            progress(min(i + batch_size, n), n)
    return correct / n


def accuracy_halfwidth(accuracy: float, n: int, z: float = 1.96) -> float:
    """Half-width of the normal-approximation (Wald) interval of an accuracy measured on ``n`` images.

    ``z`` = 1.96 gives the 95 % interval ``accuracy +- z sqrt(accuracy (1 - accuracy) / n)``. It treats the images
    as independent draws and is too narrow when the accuracy is within a few errors of 0 or 1 (it is 0 there).

    Raises:
        ValueError: ``accuracy`` outside [0, 1] or ``n < 1``.
    """
    if not 0.0 <= accuracy <= 1.0 or n < 1:
        raise ValueError(f"need an accuracy in [0, 1] and n >= 1, got {accuracy} and {n}")
    return z * math.sqrt(accuracy * (1 - accuracy) / n)

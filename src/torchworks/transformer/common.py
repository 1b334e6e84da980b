"""What the transformer families share: the warm-up + cosine learning-rate multiplier and token tick labels.

Everything else shared (attention, blocks, positional encodings, KV cache) lives in :mod:`torchworks.nn`.
"""

from __future__ import annotations

import math

__all__ = ["WarmupCosine", "token_label"]


class WarmupCosine:
    """LR multiplier for ``LambdaLR``: linear warm-up, cosine to ``min_lr / lr``, then flat (nanoGPT ``get_lr``).

    A callable object rather than a closure so that ``LambdaLR.state_dict`` stores its numbers.

    Args:
        warmup: Warm-up steps W; step k < W gets ``(k + 1) / (W + 1)``.
        decay: Step D at which the cosine ends; steps > D get ``floor``.
        floor: ``min_lr / lr``.
    """

    def __init__(self, warmup: int, decay: int, floor: float) -> None:
        self.warmup, self.decay, self.floor = warmup, decay, floor

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        if step > self.decay:
            return self.floor
        ratio = (step - self.warmup) / max(1, self.decay - self.warmup)
        return self.floor + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (1.0 - self.floor)


def token_label(token: str) -> str:
    """Printable tick label for a token (newlines and spaces made visible, an empty token shown as a set sign)."""
    return token.replace("\n", "\\n").replace(" ", "\u2423") or "\u2205"

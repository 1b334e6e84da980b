"""Learning-rate schedules: the one linear warm-up, followed by a cosine decay or by x``gamma`` steps.

Each schedule is a callable object giving the LR *multiplier* of an optimisation step, for
``torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)``; the engine steps schedulers once per optimisation
step. Objects rather than closures, so ``LambdaLR.state_dict`` stores their numbers in the checkpoint (a resumed
run keeps the schedule it started with).

Every task configures them with the same keys: ``warmup_steps`` (W), ``total_steps`` (T, where the decay ends;
0 = no decay, the multiplier stays 1 after the warm-up) and ``min_lr_ratio`` (the final LR as a fraction of the
peak), plus ``milestones``/``gamma`` for the step schedule.

Warm-up: step k < W gets ``(k + 1) / (W + 1)`` (nanoGPT's ``get_lr``), so the first step already moves the
weights and step W is the first at the peak.

References:
    Loshchilov and Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017 (cosine decay).
    Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", 2017 (linear warm-up).
    Karpathy, nanoGPT ``train.py`` ``get_lr`` (the warm-up and cosine formulas used here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["WarmupCosine", "WarmupMultiStep", "warmup_factor"]


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Multiplier of step ``step`` (0-based) inside a warm-up of ``warmup_steps`` steps: ``(step + 1) / (W + 1)``."""
    return (step + 1) / (warmup_steps + 1)


class _Warmup:
    """Shared part: the delay, the linear warm-up, and a constant multiplier when there is no ``total_steps``."""

    warmup_steps: int
    total_steps: int
    delay: int

    def __init__(self, warmup_steps: int, total_steps: int, delay: int) -> None:
        if warmup_steps < 0 or total_steps < 0 or delay < 0:
            raise ValueError(f"warmup_steps, total_steps and delay must be >= 0, got {warmup_steps}, {total_steps}, "
                             f"{delay}")
        self.warmup_steps, self.total_steps, self.delay = warmup_steps, total_steps, delay

    def __call__(self, step: int) -> float:
        step = max(0, step - self.delay)
        if step < self.warmup_steps:
            return warmup_factor(step, self.warmup_steps)
        return 1.0 if self.total_steps <= 0 else self._after_warmup(step)

    def _after_warmup(self, step: int) -> float:
        raise NotImplementedError


class WarmupCosine(_Warmup):
    """Linear warm-up over W steps, cosine from 1 down to ``min_lr_ratio`` at step T, then flat at that floor.

    Args:
        warmup_steps: W; step k < W gets ``(k + 1) / (W + 1)``.
        total_steps: T, the step at which the cosine reaches the floor; 0 keeps the multiplier at 1 after the
            warm-up (a constant LR).
        min_lr_ratio: final LR / peak LR, in [0, 1].
        delay: steps before the schedule starts (an initialisation phase); they get the multiplier of step 0.
    """

    def __init__(self, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0, delay: int = 0) -> None:
        super().__init__(warmup_steps, total_steps, delay)
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
        self.min_lr_ratio = min_lr_ratio

    def _after_warmup(self, step: int) -> float:
        if step > self.total_steps:
            return self.min_lr_ratio
        ratio = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return self.min_lr_ratio + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (1.0 - self.min_lr_ratio)

    def __repr__(self) -> str:
        return (f"WarmupCosine(warmup_steps={self.warmup_steps}, total_steps={self.total_steps}, "
                f"min_lr_ratio={self.min_lr_ratio}, delay={self.delay})")


class WarmupMultiStep(_Warmup):
    """Linear warm-up over W steps, then the LR times ``gamma`` at each milestone (RepDistiller's recipe).

    Args:
        warmup_steps: W, as for :class:`WarmupCosine`.
        total_steps: T; milestone m falls at step ``m * T`` (0: no steps, a constant LR after the warm-up).
        milestones: fractions of ``total_steps`` in (0, 1); RepDistiller's epochs 150/180/210 of 240 are
            ``[0.625, 0.75, 0.875]``.
        gamma: factor applied at each milestone.
        delay: as for :class:`WarmupCosine`.
    """

    def __init__(self, warmup_steps: int, total_steps: int, milestones: Sequence[float], gamma: float = 0.1,
                 delay: int = 0) -> None:
        super().__init__(warmup_steps, total_steps, delay)
        if any(not 0 < m < 1 for m in milestones):
            raise ValueError(f"milestones are fractions of total_steps in (0, 1), got {list(milestones)}")
        self.milestones, self.gamma = [float(m) for m in milestones], gamma

    def _after_warmup(self, step: int) -> float:
        return self.gamma ** sum(step >= m * self.total_steps for m in self.milestones)

    def __repr__(self) -> str:
        return (f"WarmupMultiStep(warmup_steps={self.warmup_steps}, total_steps={self.total_steps}, "
                f"milestones={self.milestones}, gamma={self.gamma}, delay={self.delay})")

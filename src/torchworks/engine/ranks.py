"""What must agree across processes and what must differ: metric reductions, gathered states, RNG streams.

Each rule here exists because getting it wrong breaks either DDP or exact resume:

* Metrics are reduced as ``(sum, weight)`` pairs over the *union* of names every rank reports, so a rank with
  no validation batch (or a metric logged only sometimes) neither hangs the collective nor skews the mean.
* Every rank's RNG state goes into the checkpoint (gathered to rank 0), because each rank draws its own dropout
  masks and a resumed rank must continue its own stream, not rank 0's.
* Validation runs inside :func:`isolated_rng`: it draws from a fixed, per-rank stream and then puts the training
  stream back, so evaluating (or not) at some step never changes the training that follows.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from torchworks.core.seeding import rng_state, set_rng_state


def gather_objects(fabric: Any, obj: Any) -> list[Any]:
    """Every rank's ``obj`` (any picklable value), in rank order, on every rank."""
    if fabric.world_size == 1:
        return [obj]
    out: list[Any] = [None] * fabric.world_size
    torch.distributed.all_gather_object(out, obj)
    return out


def all_reduce_sums(fabric: Any, sums: Mapping[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Sums ``{name: (weighted_sum, weight)}`` over ranks; names missing on a rank count as ``(0, 0)``.

    Args:
        fabric: the run's Fabric.
        sums: this rank's partial sums.

    Returns:
        The global ``(weighted_sum, weight)`` per name, the same on every rank, names sorted.
    """
    if fabric.world_size == 1:
        return {k: (float(s), float(w)) for k, (s, w) in sorted(sums.items())}
    names = sorted(set().union(*gather_objects(fabric, sorted(sums))))
    if not names:
        return {}
    local = torch.tensor([[float(sums[n][0]), float(sums[n][1])] if n in sums else [0.0, 0.0] for n in names],
                         dtype=torch.float64, device=fabric.device)
    total = fabric.all_reduce(local, reduce_op="sum").cpu()
    return {n: (float(total[i, 0]), float(total[i, 1])) for i, n in enumerate(names)}


def reduce_means(fabric: Any, values: Mapping[str, float]) -> dict[str, float]:
    """Mean over ranks of per-rank scalars (each rank weighted equally)."""
    totals = all_reduce_sums(fabric, {k: (float(v), 1.0) for k, v in values.items()})
    return {k: s / w for k, (s, w) in totals.items() if w > 0}


def seed_stream(seed: int) -> None:
    """Seeds torch, NumPy and ``random`` for one stream without touching environment variables."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Runs the body on a stream seeded with ``seed`` and restores every generator afterwards."""
    saved = rng_state()
    seed_stream(seed)
    try:
        yield
    finally:
        set_rng_state(saved)


def training_seed(seed: int, rank: int) -> int:
    """Seed of rank ``rank``'s training stream (dropout, noise): distinct per rank, equal to ``seed`` on rank 0."""
    return seed + 1_000_003 * rank


def validation_seed(seed: int, rank: int) -> int:
    """Seed of the stream validation draws from, fixed so every evaluation of the same weights agrees."""
    return seed + 7919 + 1_000_003 * rank


def loader_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of the DataLoader's own generator for one epoch (worker seeds), independent of the global stream."""
    return (seed * 1_000_003 + epoch * 7919 + rank) % 2**63

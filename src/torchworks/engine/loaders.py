"""DataLoaders the engine builds from a task's data sets.

The engine, not the task, builds the loaders so that every task gets the same sharding, per-epoch shuffling and
mid-epoch resume (:class:`~torchworks.engine.sampler.ShardedBatchSampler`). Each loader draws its worker seeds
from its own generator, never from the global one: creating an iterator would otherwise consume a global
random number, and a resumed run (which creates its iterator mid-epoch) would drift from an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sized
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from torchworks.engine import ranks
from torchworks.engine.sampler import ShardedBatchSampler


@dataclass
class EngineLoader:
    """A Fabric-wrapped DataLoader with the sampler and generator that control its order.

    Attributes:
        loader: the loader to iterate (batches arrive on the device).
        sampler: its batch sampler (set its position before each epoch).
        generator: the loader's own generator (seeds worker processes).
        sizes: samples per batch in iteration order, for weighted means (evaluation loaders only).
    """

    loader: Any
    sampler: ShardedBatchSampler
    generator: torch.Generator
    sizes: list[int] = field(default_factory=list)

    def start_epoch(self, seed: int, epoch: int, start_batch: int = 0) -> None:
        """Positions the sampler and reseeds the generator for ``epoch``."""
        self.sampler.set_position(epoch, start_batch)
        self.generator.manual_seed(ranks.loader_seed(seed, epoch, self.sampler.rank))


def build_loader(fabric: Any, dataset: Dataset, task: Any, *, batch_size: int, seed: int, train: bool,
                 num_workers: int = 0, drop_last: bool = False, limit_batches: int | None = None,
                 what: str = "dataset") -> EngineLoader:
    """Builds a sharded, resumable loader over ``dataset`` and hands it to Fabric.

    Args:
        fabric: the run's (launched) Fabric.
        dataset: a map-style data set.
        task: the task (for ``collate_fn``).
        batch_size: samples per batch per process.
        seed: the run seed (shuffling uses ``seed + epoch``).
        train: shuffled and padded so every rank runs the same number of steps; otherwise in order, each
            sample once.
        num_workers: worker processes.
        drop_last: drop the last incomplete batch (training only).
        limit_batches: evaluation only: keep at most this many batches per process.
        what: name used in error messages, e.g. ``"train_dataset()"``.

    Raises:
        TypeError: ``dataset`` is an iterable-style data set (it cannot be sharded or resumed by index).
        ValueError: ``dataset`` is empty, or too small for one batch with ``drop_last``.
    """
    if isinstance(dataset, IterableDataset) or not isinstance(dataset, Sized):
        raise TypeError(f"{what} must return a map-style Dataset (with __len__ and __getitem__), "
                        f"got {type(dataset).__name__}")
    n = len(dataset)
    if n == 0:
        raise ValueError(f"{what} is empty")
    sampler = ShardedBatchSampler(n, batch_size, num_replicas=fabric.world_size, rank=fabric.global_rank,
                                  shuffle=train, seed=seed, drop_last=drop_last and train, pad=train)
    if train and sampler.num_batches == 0:
        raise ValueError(f"{what} has {n} samples, fewer than one batch of {batch_size} per process "
                         "with drop_last; lower trainer.batch_size or set trainer.drop_last=false")
    generator = torch.Generator()
    generator.manual_seed(ranks.loader_seed(seed, 0, fabric.global_rank))
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=task.collate_fn(), num_workers=num_workers,
                        generator=generator, pin_memory=fabric.device.type == "cuda")
    sizes = [] if train else [len(b) for b in sampler.batches()][:limit_batches]
    loader = fabric.setup_dataloaders(loader, use_distributed_sampler=False)
    return EngineLoader(loader, sampler, generator, sizes)

"""A batch sampler that shards by rank, reshuffles per epoch, and resumes in the middle of an epoch.

Why not ``DistributedSampler``: resuming there means iterating (and loading) every batch already seen in the
epoch, or losing the data order. Here the order of an epoch is a pure function of ``(seed, epoch)``, so a
resumed run asks for "epoch 3 from batch 17" and gets exactly the batches an uninterrupted run would have seen,
without touching the skipped samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ShardedBatchSampler(Sampler[list[int]]):
    """Yields this rank's batches of dataset indices for one epoch, from a settable position.

    Every rank draws the same permutation of ``range(dataset_size)`` (seeded with ``seed + epoch``) and takes
    every ``num_replicas``-th index starting at ``rank``, so the shards are disjoint and together cover the
    data set. With ``pad=True`` (training) the permutation is first extended with its own head until it divides
    evenly, so all ranks run the same number of steps (DDP needs that); ``pad=False`` (evaluation) keeps each
    sample exactly once, at the price of shards that may differ by one sample.

    The method is deliberately not called ``set_epoch``: Fabric's dataloader wrapper calls ``set_epoch`` with
    its own count of ``iter()`` calls, which is wrong after a resume.

    Args:
        dataset_size: number of samples in the data set.
        batch_size: samples per batch.
        num_replicas: number of processes sharing the data set (``fabric.world_size``).
        rank: this process's index (``fabric.global_rank``).
        shuffle: draw a new permutation per epoch; False keeps dataset order.
        seed: base seed of the per-epoch permutation.
        drop_last: drop the last, incomplete batch of each epoch.
        pad: repeat samples so every rank gets the same number (see above).
    """

    def __init__(self, dataset_size: int, batch_size: int, *, num_replicas: int = 1, rank: int = 0,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False, pad: bool = True) -> None:
        if dataset_size < 0 or batch_size < 1:
            raise ValueError(f"need dataset_size >= 0 and batch_size >= 1, got {dataset_size}, {batch_size}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.dataset_size = dataset_size
        self.batch_size = batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.pad = pad
        self.epoch = 0
        self.start_batch = 0

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        """Makes the next iteration yield epoch ``epoch`` from its batch ``start_batch`` (0-based) on."""
        if epoch < 0 or not 0 <= start_batch <= self.num_batches:
            raise ValueError(f"invalid position epoch={epoch}, start_batch={start_batch} "
                             f"(an epoch has {self.num_batches} batches)")
        self.epoch = epoch
        self.start_batch = start_batch

    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch."""
        if self.pad:
            return math.ceil(self.dataset_size / self.num_replicas)
        return len(range(self.rank, self.dataset_size, self.num_replicas))

    @property
    def num_batches(self) -> int:
        """Batches this rank yields per full epoch."""
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def indices(self, epoch: int | None = None) -> list[int]:
        """This rank's sample indices for ``epoch`` (default: the current one), in iteration order."""
        epoch = self.epoch if epoch is None else epoch
        n = self.dataset_size
        if self.shuffle:
            gen = torch.Generator()
            gen.manual_seed(self.seed + epoch)
            order = torch.randperm(n, generator=gen).tolist()
        else:
            order = list(range(n))
        if self.pad and n:
            total = self.num_samples * self.num_replicas
            while len(order) < total:  # a loop, not one slice: tiny sets may need several copies
                order += order[: total - len(order)]
        return order[self.rank :: self.num_replicas]

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """All of this rank's batches for ``epoch`` (default: the current one)."""
        idx = self.indices(epoch)
        out = [idx[i : i + self.batch_size] for i in range(0, len(idx), self.batch_size)]
        return out[: self.num_batches]

    def __iter__(self) -> Iterator[list[int]]:
        # Built eagerly so the position in effect is the one at iter() time, not at the first next().
        return iter(self.batches()[self.start_batch :])

    def __len__(self) -> int:
        return self.num_batches - self.start_batch

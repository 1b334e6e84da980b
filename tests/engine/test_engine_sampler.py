"""ShardedBatchSampler: disjoint covering shards, per-epoch reshuffle, mid-epoch start."""

from __future__ import annotations

import pytest

from torchworks.engine.sampler import ShardedBatchSampler


def _flat(batches):
    return [i for b in batches for i in b]


@pytest.mark.parametrize("n,replicas", [(32, 2), (33, 2), (10, 3), (5, 4)])
def test_shards_are_disjoint_cover_and_equal_length(n, replicas):
    samplers = [ShardedBatchSampler(n, 4, num_replicas=replicas, rank=r, seed=7) for r in range(replicas)]
    shards = [s.indices() for s in samplers]
    assert len({len(s) for s in shards}) == 1  # same step count on every rank, or DDP would hang
    assert set().union(*map(set, shards)) == set(range(n))
    if n % replicas == 0:  # without padding nothing may repeat
        assert sum(len(s) for s in shards) == n
        assert all(not (set(a) & set(b)) for i, a in enumerate(shards) for b in shards[i + 1 :])


def test_unpadded_shards_hold_each_sample_once():
    shards = [ShardedBatchSampler(11, 3, num_replicas=3, rank=r, shuffle=False, pad=False).indices() for r in range(3)]
    assert sorted(_flat(shards)) == list(range(11))


def test_epochs_reshuffle_deterministically_from_seed():
    s = ShardedBatchSampler(50, 8, seed=3)
    e0, e1 = s.indices(0), s.indices(1)
    assert e0 != e1 and sorted(e0) == sorted(e1) == list(range(50))
    assert ShardedBatchSampler(50, 8, seed=3).indices(1) == e1
    assert ShardedBatchSampler(50, 8, seed=4).indices(1) != e1


def test_start_batch_yields_the_tail_of_the_epoch():
    s = ShardedBatchSampler(23, 4, seed=1)
    s.set_position(2)
    full = list(s)
    s.set_position(2, start_batch=3)
    assert list(s) == full[3:] and len(s) == len(full) - 3
    assert [len(b) for b in full] == [4, 4, 4, 4, 4, 3]


def test_drop_last_and_invalid_positions():
    s = ShardedBatchSampler(23, 4, drop_last=True)
    assert s.num_batches == 5 and all(len(b) == 4 for b in s)
    with pytest.raises(ValueError, match="start_batch"):
        s.set_position(0, start_batch=6)
    with pytest.raises(ValueError, match="rank"):
        ShardedBatchSampler(10, 2, num_replicas=2, rank=2)

"""Batch augmentation: crop after zero padding and horizontal flip against hand values and a per-image loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from torchworks.classify.augment import crop_flip, random_crop_flip

IMG = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # (1, 1, 2, 2)


def _one(v: int) -> torch.Tensor:
    return torch.tensor([v])


@pytest.mark.parametrize("dy,dx,flip,expected", [
    (0, 0, False, [[0, 0], [0, 1]]),   # top-left window of the zero-padded image
    (2, 2, False, [[4, 0], [0, 0]]),   # bottom-right window
    (1, 1, False, [[1, 2], [3, 4]]),   # centred window = the image
    (1, 1, True, [[2, 1], [4, 3]]),    # mirrored
    (0, 1, True, [[0, 0], [2, 1]]),    # shifted down one row, then mirrored
    (1, 2, True, [[0, 2], [0, 4]]),    # window shifted right (column 0 of it is the image's column 1), mirrored
])
def test_crop_flip_against_hand_computed(dy, dx, flip, expected):
    out = crop_flip(IMG, 1, _one(dy), _one(dx), torch.tensor([flip]))
    assert torch.equal(out, torch.tensor([[expected]], dtype=torch.float32))


def test_crop_flip_matches_a_per_image_slicing_loop():
    x = torch.rand(6, 3, 5, 7)
    g = torch.Generator().manual_seed(3)
    dy, dx = torch.randint(0, 5, (6,), generator=g), torch.randint(0, 5, (6,), generator=g)
    flip = torch.tensor([True, False, True, True, False, False])
    out = crop_flip(x, 2, dy, dx, flip)
    for b in range(6):
        ref = F.pad(x[b], (2, 2, 2, 2))[:, dy[b]:dy[b] + 5, dx[b]:dx[b] + 7]
        assert torch.equal(out[b], ref.flip(-1) if flip[b] else ref)
    with pytest.raises(ValueError, match="dx"):
        crop_flip(x, 2, dy, torch.full((6,), 5), flip)


def test_random_crop_flip_is_seeded_keeps_order_and_shapes():
    # Image b holds the value b + 1 everywhere: padding only adds zeros, so each output keeps its own value.
    x = torch.arange(1, 9, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 3, 6, 6).contiguous()
    a = random_crop_flip(x, 3, generator=torch.Generator().manual_seed(0))
    b = random_crop_flip(x, 3, generator=torch.Generator().manual_seed(0))
    c = random_crop_flip(x, 3, generator=torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a.amax(dim=(1, 2, 3)), torch.arange(1, 9, dtype=torch.float32))  # order (= labels) kept
    assert (a == 0).any()  # some crops reach into the padding
    assert torch.equal(random_crop_flip(x, 0, flip=False), x)


def test_random_flip_only_mirrors_about_half():
    x = torch.rand(400, 1, 2, 3)
    out = random_crop_flip(x, 0, generator=torch.Generator().manual_seed(0))
    same, mirrored = (out == x).flatten(1).all(1), (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 150 < int(mirrored.sum()) < 250


def test_random_crop_reaches_every_offset_uniformly():
    """padding 1: 9 equally likely windows; only the centred one (1/9 of the images) keeps no padded pixel."""
    x = torch.ones(3000, 1, 4, 4)
    out = random_crop_flip(x, 1, flip=False, generator=torch.Generator().manual_seed(0))
    untouched = (out == 1).flatten(1).all(1).float().mean().item()
    assert abs(untouched - 1 / 9) < 0.02
    zeros = (out == 0).flatten(1).sum(1)
    assert set(zeros.tolist()) == {0, 4, 7}  # no shift, a one-pixel shift in one axis (4 px), in both (4+4-1)

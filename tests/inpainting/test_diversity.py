"""Diversity of pluralistic inpainting: hand-computed values, exact zero for deterministic methods, > 0 for ICT."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from torchworks.core.checkpoint import build_model
from torchworks.inpainting import get_inpainter
from torchworks.inpainting.diversity import (
    diversity,
    feature_diversity,
    hole_l1_diversity,
    is_pluralistic,
    pairwise_mean_distance,
    sample_fills,
    with_seed,
)


class MeanColour(nn.Module):
    """Stand-in feature network: the mean of each channel of its (normalised) input."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


def _constant(*levels: float, size: int = 4) -> torch.Tensor:
    return torch.stack([torch.full((3, size, size), v) for v in levels])


def _hole(size: int = 4) -> torch.Tensor:
    m = torch.zeros(1, 1, size, size)
    m[..., 1:3, 1:3] = 1
    return m


def test_hand_computed_values_on_three_constant_fills():
    samples = _constant(0.0, 0.5, 1.0)
    # hole L1 of the pairs: 0.5, 1.0, 0.5
    assert hole_l1_diversity(samples, _hole()) == pytest.approx(2 / 3, abs=1e-12)
    # features 2c - 1 per channel: (-1,-1,-1), (0,0,0), (1,1,1); distances sqrt3, 2 sqrt3, sqrt3
    assert feature_diversity(MeanColour(), samples) == pytest.approx(4 * math.sqrt(3) / 3, abs=1e-6)
    assert pairwise_mean_distance(torch.tensor([[0.0, 0.0], [3.0, 4.0]])) == 5.0


def test_only_hole_pixels_count():
    samples = _constant(0.2, 0.2)
    samples[1, :, 0, 0] = 1.0  # outside the hole: ignored
    assert hole_l1_diversity(samples, _hole()) == 0.0
    samples[1, 0, 1, 1] = 0.6  # one of 12 hole values differs by 0.4
    assert hole_l1_diversity(samples, _hole()) == pytest.approx(0.4 / 12, abs=1e-7)  # float32 inputs


def test_identical_fills_are_exactly_zero_and_bad_shapes_say_why():
    same = _constant(0.3, 0.3, 0.3)
    assert hole_l1_diversity(same, _hole()) == 0.0
    assert feature_diversity(MeanColour(), same) == 0.0
    with pytest.raises(ValueError, match="S >= 2"):
        hole_l1_diversity(same[:1], _hole())
    with pytest.raises(ValueError, match="mask must be"):
        hole_l1_diversity(same, torch.ones(1, 1, 5, 5))
    with pytest.raises(ValueError, match="no hole pixel"):
        hole_l1_diversity(same, torch.zeros(1, 1, 4, 4))


def _photo_and_hole():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 64, 64, generator=g)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:40, 20:44] = 1
    return image, mask


def _tiny_ict(seed: int = 0):
    from torchworks.inpainting.ict import ICTInpainter

    torch.manual_seed(0)
    prior = build_model("ict_prior_tiny").eval()
    prior.palette.copy_(torch.rand(16, 3))
    return ICTInpainter(prior, build_model("ict_upsampler_tiny").eval(), seed=seed, working_size=64, pad_mod=4)


def test_deterministic_method_has_zero_diversity_and_refuses_a_seed():
    pytest.importorskip("cv2")
    image, mask = _photo_and_hole()
    telea = get_inpainter("telea")
    assert not is_pluralistic(telea)
    fills = sample_fills(telea, image, mask, 3)
    assert fills.shape == (3, 3, 64, 64)
    d = diversity(fills, mask, MeanColour())
    assert (d.hole_l1, d.feature, d.samples) == (0.0, 0.0, 3)
    with pytest.raises(ValueError, match="one completion per hole"):
        with_seed(telea, 1)


def test_ict_samples_differ_and_seeds_reproduce():
    image, mask = _photo_and_hole()
    ict = _tiny_ict()
    assert is_pluralistic(ict) and with_seed(ict, 7).seed == 7 and ict.seed == 0
    fills = sample_fills(ict, image, mask, 3, seed=4, dilate=0)
    d = diversity(fills, mask, MeanColour())
    assert d.hole_l1 > 0.0 and d.feature > 0.0
    assert torch.equal(fills[(1 - mask).expand(3, 3, -1, -1).bool()].view(3, -1)[0],
                       image[(1 - mask).expand(1, 3, -1, -1).bool()])  # known pixels untouched
    again = sample_fills(ict, image, mask, 1, seed=5, dilate=0)
    assert torch.equal(again[0], fills[1])  # sample i uses seed + i

"""CBAM: hand-computed channel and spatial maps, the paper-vs-seed variants, and branch-aware application."""

from __future__ import annotations

import math

import pytest
import torch

from torchworks.nn.cbam import CBAM, BranchCBAM, ChannelAttention, SpatialAttention

torch.set_num_threads(1)


def _sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _tiny_channel_attention(variant: str) -> ChannelAttention:
    ca = ChannelAttention(2, reduction=2, variant=variant).double()  # MLP 2 -> 1 -> 2
    with torch.no_grad():
        ca.mlp[0].weight.copy_(torch.tensor([[1.0, -1.0]]))
        ca.mlp[2].weight.copy_(torch.tensor([[2.0], [0.5]]))
    return ca


# channel 0 = [[1, 2], [3, 6]] (mean 3, max 6); channel 1 = [[0, 0], [0, 4]] (mean 1, max 4)
X = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]], [[0.0, 0.0], [0.0, 4.0]]]], dtype=torch.float64)


def test_channel_attention_equals_hand_computation():
    got = _tiny_channel_attention("paper")(X).flatten().tolist()
    h_avg, h_max = max(0.0, 3.0 - 1.0), max(0.0, 6.0 - 4.0)  # ReLU(W0 @ avg), ReLU(W0 @ max) = 2, 2
    expected = [_sig(2.0 * h_avg + 2.0 * h_max), _sig(0.5 * h_avg + 0.5 * h_max)]  # sigmoid(8), sigmoid(2)
    assert got == pytest.approx(expected, abs=1e-12)


def test_seed_channel_attention_is_a_sigmoid_of_sigmoids():
    got = _tiny_channel_attention("seed")(X).flatten().tolist()
    expected = [_sig(_sig(4.0) + _sig(4.0)), _sig(_sig(1.0) + _sig(1.0))]
    assert got == pytest.approx(expected, abs=1e-12)
    assert got != pytest.approx(_tiny_channel_attention("paper")(X).flatten().tolist(), abs=1e-3)


def test_seed_gate_cannot_leave_half_to_0881_while_the_paper_gate_can():
    x = torch.randn(4, 32, 6, 6) * 50  # large activations drive the MLP outputs far from 0
    paper, seed = ChannelAttention(32, variant="paper"), ChannelAttention(32, variant="seed")
    seed.load_state_dict(paper.state_dict())
    p, s = paper(x), seed(x)
    assert s.min() > 0.5 and s.max() < _sig(2.0)
    assert p.min() < 0.1 and p.max() > 0.9


def test_spatial_attention_equals_hand_computation():
    sa = SpatialAttention(kernel_size=1).double()  # 1x1 kernel: a*mean + b*max per position
    with torch.no_grad():
        sa.conv.weight.copy_(torch.tensor([0.5, -0.25], dtype=torch.float64).view(1, 2, 1, 1))
    got = sa(X)[0, 0]
    mean = X[0].mean(0)
    mx = X[0].amax(0)
    torch.testing.assert_close(got, torch.sigmoid(0.5 * mean - 0.25 * mx))
    assert SpatialAttention(7).conv.weight.shape == (1, 2, 7, 7)
    with pytest.raises(ValueError, match="odd"):
        SpatialAttention(4)


def test_cbam_is_channel_then_spatial():
    cbam = CBAM(8, reduction=4).double()
    x = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    after_channel = x * cbam.channel(x)
    torch.testing.assert_close(cbam(x), after_channel * cbam.spatial(after_channel))


def test_branch_cbam_param_difference_is_one_spatial_conv():
    paper, seed = BranchCBAM(8, 24, reduction=4, variant="paper"), BranchCBAM(8, 24, reduction=4, variant="seed")
    n_paper = sum(p.numel() for p in paper.parameters())
    n_seed = sum(p.numel() for p in seed.parameters())
    assert n_paper - n_seed == 2 * 7 * 7
    # MLPs: 8 -> 2 -> 8 and 24 -> 6 -> 24 without bias; two spatial convs of 2 x 7 x 7
    assert n_paper == (8 * 2 * 2) + (24 * 6 * 2) + 2 * 98


def test_branch_cbam_paper_uses_separate_spatial_maps_and_seed_shares_one():
    paper, seed = BranchCBAM(4, 4, reduction=2, variant="paper"), BranchCBAM(4, 4, reduction=2, variant="seed")
    x_l, x_g = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6)
    out_l, out_g = paper((x_l, x_g))
    torch.testing.assert_close(out_l, paper.cbam_l(x_l))
    torch.testing.assert_close(out_g, paper.cbam_g(x_g))
    s_l, s_g = seed((x_l, x_g))
    g_l = x_l * seed.channel_l(x_l)
    torch.testing.assert_close(s_l, g_l * seed.spatial(g_l))
    g_g = x_g * seed.channel_g(x_g)
    torch.testing.assert_close(s_g, g_g * seed.spatial(g_g))


def test_branch_cbam_skips_empty_branches_and_rejects_unknown_variants():
    local_only = BranchCBAM(8, 0)
    assert local_only.cbam_g is None
    x = torch.randn(1, 8, 4, 4)
    out_l, out_g = local_only((x, None))
    assert out_g is None and out_l.shape == x.shape
    with pytest.raises(ValueError, match="variant"):
        BranchCBAM(8, 8, variant="typo")

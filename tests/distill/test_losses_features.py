"""Feature losses against values computed independently (numpy, explicit loops) from the papers' formulas."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from torchworks.distill.losses import (
    ABLoss,
    ATLoss,
    CCLoss,
    FitNetLoss,
    FSPLoss,
    FTLoss,
    NSTLoss,
    PKTLoss,
    RKDLoss,
    SPLoss,
    VIDLoss,
)

rng = np.random.RandomState(0)


def t64(a):
    return torch.tensor(a, dtype=torch.float64)


def np_normalize(v, axis=-1):
    return v / np.linalg.norm(v, axis=axis, keepdims=True)


def test_at_matches_numpy_and_pools_larger_map():
    s1, t1 = rng.randn(2, 3, 4, 4), rng.randn(2, 5, 4, 4)
    s2, t2 = rng.randn(2, 3, 4, 4), rng.randn(2, 6, 2, 2)

    def at(f):
        return np_normalize((f**2).mean(1).reshape(len(f), -1))

    # student map 2 is 4x4, teacher 2x2: average 2x2 blocks of the student first
    s2_pooled = s2.reshape(2, 3, 2, 2, 2, 2).mean((3, 5))
    expected = np.mean((at(s1) - at(t1)) ** 2) + np.mean((at(s2_pooled) - at(t2)) ** 2)
    got = ATLoss()([t64(s1), t64(s2)], [t64(t1), t64(t2)])
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_sp_matches_numpy():
    s, t = rng.randn(4, 3, 2, 2), rng.randn(4, 7)
    gs, gt = s.reshape(4, -1) @ s.reshape(4, -1).T, t @ t.T
    expected = np.sum((np_normalize(gt) - np_normalize(gs)) ** 2) / 16
    assert SPLoss()(t64(s), t64(t)).item() == pytest.approx(expected, rel=1e-10)


def test_cc_reference_is_consecutive_difference_product():
    s, t = rng.randn(5, 3), rng.randn(5, 3)
    d = np.abs(s - t)
    expected = np.mean([d[i] @ d[i + 1] for i in range(4)])
    assert CCLoss(3, 3, embed_dim=None)(t64(s), t64(t)).item() == pytest.approx(expected, rel=1e-10)


def test_cc_paper_matches_exact_rbf_at_high_taylor_order():
    s, t = rng.randn(4, 3), rng.randn(4, 6)
    gamma = 0.4

    def rbf(f):
        f = np_normalize(f)
        d2 = ((f[:, None] - f[None]) ** 2).sum(-1)
        return np.exp(-gamma * d2)

    expected = np.mean((rbf(t) - rbf(s)) ** 2)
    got = CCLoss(3, 6, embed_dim=None, mode="paper", gamma=gamma, order=12)(t64(s), t64(t))
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # order 2 (the default) is a truncation: close but not equal
    got2 = CCLoss(3, 6, embed_dim=None, mode="paper", gamma=gamma)(t64(s), t64(t))
    assert got2.item() != pytest.approx(expected, rel=1e-6)


def test_cc_embeddings_are_trainable_submodules():
    loss = CCLoss(8, 16)
    names = {n for n, _ in loss.named_parameters()}
    assert names == {"embed_s.weight", "embed_s.bias", "embed_t.weight", "embed_t.bias"}


def test_rkd_matches_explicit_loops():
    s, t = rng.randn(4, 3), rng.randn(4, 5)

    def huber(a, b):
        d = np.abs(a - b)
        return np.where(d < 1, 0.5 * d**2, d - 0.5).mean()

    def dist(e):
        d = np.array([[np.linalg.norm(e[i] - e[j]) for j in range(4)] for i in range(4)])
        return d / d[~np.eye(4, dtype=bool)].mean()

    def ang(e):
        out = np.zeros((4, 4, 4))
        for i in range(4):
            for j in range(4):
                for k in range(4):
                    if j != i and k != i:
                        out[i, j, k] = np_normalize(e[j] - e[i]) @ np_normalize(e[k] - e[i])
        return out

    expected = 25 * huber(dist(s), dist(t)) + 50 * huber(ang(s), ang(t))
    assert RKDLoss()(t64(s), t64(t)).item() == pytest.approx(expected, rel=1e-8)


def test_pkt_matches_numpy():
    s, t = rng.randn(5, 3), rng.randn(5, 8)

    def prob(f):
        f = np_normalize(f)
        k = (f @ f.T + 1) / 2
        return k / k.sum(1, keepdims=True)

    p, q = prob(t), prob(s)
    expected = np.mean(p * np.log((p + 1e-7) / (q + 1e-7)))
    assert PKTLoss()(t64(s), t64(t)).item() == pytest.approx(expected, rel=1e-6)


def test_nst_matches_explicit_mmd_loop():
    s, t = rng.randn(2, 3, 2, 2), rng.randn(2, 4, 2, 2)
    total = 0.0
    for b in range(2):
        fs = np_normalize(s[b].reshape(3, -1))
        ft = np_normalize(t[b].reshape(4, -1))
        k = lambda x, y: (x @ y) ** 2  # noqa: E731
        tt = np.mean([k(ft[i], ft[j]) for i in range(4) for j in range(4)])
        ss = np.mean([k(fs[i], fs[j]) for i in range(3) for j in range(3)])
        st = np.mean([k(fs[i], ft[j]) for i in range(3) for j in range(4)])
        total += (tt + ss - 2 * st) / 2
    assert NSTLoss()(t64(s), t64(t)).item() == pytest.approx(total, rel=1e-10)


def test_fsp_matches_explicit_loop():
    s = [rng.randn(2, 2, 2, 2), rng.randn(2, 3, 2, 2)]
    t = [rng.randn(2, 2, 2, 2), rng.randn(2, 3, 2, 2)]

    def g(f1, f2):  # paper Eq. 1: G[b, i, j] over (bottom channel i, top channel j)
        return np.array([[[np.mean(f1[b, i] * f2[b, j]) for j in range(3)] for i in range(2)] for b in range(2)])

    expected = np.mean((g(*s) - g(*t)) ** 2)
    assert FSPLoss()([t64(a) for a in s], [t64(a) for a in t]).item() == pytest.approx(expected, rel=1e-10)


def test_fsp_rejects_channel_mismatch_naming_shapes():
    with pytest.raises(ValueError, match=r"fsp: channel counts.*\(2, 4, 2, 2\).*\(2, 5, 2, 2\)"):
        FSPLoss()(
            [torch.randn(2, 3, 2, 2), torch.randn(2, 4, 2, 2)], [torch.randn(2, 3, 2, 2), torch.randn(2, 5, 2, 2)]
        )


def test_ab_reference_and_paper_scaling():
    s = [rng.randn(2, 2, 3, 3), rng.randn(2, 2, 3, 3)]
    t = [rng.randn(2, 2, 3, 3), rng.randn(2, 2, 3, 3)]

    def per_layer(a, b, m=1.0):  # squared hinge on the activation boundary, summed, per sample
        active = b > 0
        return np.sum(np.where(active, np.maximum(m - a, 0) ** 2, np.maximum(m + a, 0) ** 2)) / 2

    l0, l1 = per_layer(s[0], t[0]), per_layer(s[1], t[1])
    shapes = [(2, 3, 3), (2, 3, 3)]
    ref = ABLoss(shapes, shapes)([t64(a) for a in s], [t64(a) for a in t])
    paper = ABLoss(shapes, shapes, mode="paper")([t64(a) for a in s], [t64(a) for a in t])
    assert ref.item() == pytest.approx(3e-3 * (0.5 * l0 + 1.0 * l1), rel=1e-10)
    assert paper.item() == pytest.approx(l0 + l1, rel=1e-10)
    assert ABLoss.init_only


def test_ab_builds_connector_only_where_shapes_differ():
    loss = ABLoss([(4, 8, 8), (8, 4, 4)], [(4, 8, 8), (16, 4, 4)])
    assert isinstance(loss.connectors[0], nn.Identity)
    assert sum(p.numel() for p in loss.connectors[1].parameters()) > 0


def test_fitnet_modes_against_hand_values():
    s, t = torch.randn(2, 3, 4, 4, dtype=torch.float64), torch.randn(2, 3, 4, 4, dtype=torch.float64)
    for mode in ("reference", "paper"):
        loss = FitNetLoss((3, 4, 4), (3, 4, 4), mode=mode).double().eval()
        with torch.no_grad():  # regressor = identity 1x1 conv; BN in eval with fresh statistics divides by sqrt(1+eps)
            loss.regressor.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            loss.regressor.conv.bias.zero_()
        r = torch.relu(s / math.sqrt(1 + 1e-5))
        expected = ((r - t) ** 2).mean() if mode == "reference" else 0.5 * ((r - t) ** 2).sum() / 2
        assert loss(s, t).item() == pytest.approx(expected.item(), rel=1e-10)
        assert loss.init_only == (mode == "paper")


@pytest.mark.parametrize("s_hw,t_hw", [(8, 4), (4, 8), (6, 4), (4, 4)])
def test_fitnet_regressor_maps_to_teacher_shape(s_hw, t_hw):
    loss = FitNetLoss((5, s_hw, s_hw), (7, t_hw, t_hw))
    assert loss.regressor(torch.randn(2, 5, s_hw, s_hw)).shape == (2, 7, t_hw, t_hw)


def test_fitnet_impossible_shape_is_an_error():
    with pytest.raises(ValueError, match="fitnet"):
        FitNetLoss((5, 2, 2), (7, 8, 8))


def test_vid_hand_value_with_zero_mean_predictor():
    loss = VIDLoss(3, 2, init_var=5.0).double()
    for m in loss.heads[0].mean:
        if isinstance(m, nn.Conv2d):
            nn.init.zeros_(m.weight)
    t = torch.full((2, 2, 3, 3), 2.0, dtype=torch.float64)
    # NLL = 0.5 * (t^2 / var + log var) with var = 5: 0.5 * (4/5 + ln 5)
    assert loss(torch.randn(2, 3, 3, 3, dtype=torch.float64), t).item() == pytest.approx(
        0.5 * (0.8 + math.log(5.0)), rel=1e-6
    )
    assert "heads.0.log_scale" in dict(loss.named_parameters())


def _identity_ft(mode):
    loss = FTLoss(3, 3, mode=mode).double()
    loss.translator = nn.Identity()
    loss.paraphraser.encoder = nn.Identity()
    return loss


def test_ft_paper_compares_flattened_factors():
    s, t = rng.randn(2, 3, 2, 2), rng.randn(2, 3, 2, 2)
    vs, vt = np_normalize(s.reshape(2, -1)), np_normalize(t.reshape(2, -1))
    expected = np.abs(vs - vt).sum(1).mean()
    assert _identity_ft("paper")(t64(s), t64(t)).item() == pytest.approx(expected, rel=1e-10)


def test_ft_reference_compares_factor_attention_maps():
    s, t = rng.randn(2, 3, 2, 2), rng.randn(2, 3, 2, 2)
    a_s = np_normalize((s**2).mean(1).reshape(2, -1))
    a_t = np_normalize((t**2).mean(1).reshape(2, -1))
    expected = np.abs(a_s - a_t).mean()
    assert _identity_ft("reference")(t64(s), t64(t)).item() == pytest.approx(expected, rel=1e-10)


def test_ft_paraphraser_trained_only_by_reconstruction():
    loss = FTLoss(4, 6)
    s, t = torch.randn(2, 4, 4, 4), torch.randn(2, 6, 4, 4)
    loss(s, t).backward()
    assert all(p.grad is None for p in loss.paraphraser.parameters())
    assert all(p.grad is not None for p in loss.translator.parameters())
    loss.zero_grad()
    loss.reconstruction_loss(t).backward()
    assert all(p.grad is not None for p in loss.paraphraser.parameters())


def test_ab_boundary_gradient_and_both_cases():
    from torchworks.distill.losses.ab import boundary_loss

    s = torch.tensor([[2.0, 0.5, -0.5, -2.0, 0.25, -0.25]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[1.0, 1.0, 1.0, -1.0, -1.0, 0.0]], dtype=torch.float64)  # t = 0 counts as inactive
    # active: relu(1 - s)^2 -> 0, 0.25, 2.25; inactive: relu(1 + s)^2 -> 0, 1.5625, 0.5625
    assert boundary_loss(s, t, 1.0).item() == pytest.approx(0.25 + 2.25 + 1.5625 + 0.5625)
    boundary_loss(s, t, 1.0).backward()
    expected = [0.0, -2 * 0.5, -2 * 1.5, 0.0, 2 * 1.25, 2 * 0.75]
    torch.testing.assert_close(s.grad, torch.tensor([expected], dtype=torch.float64))
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: boundary_loss(a, torch.randn(2, 3, 4, 4, generator=torch.Generator()
                                                                            .manual_seed(1), dtype=torch.float64),
                                                            0.5), (x,))

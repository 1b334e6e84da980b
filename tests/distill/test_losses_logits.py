"""KD, DKD, DIST against values computed independently with numpy from the papers' formulas."""

import math

import numpy as np
import pytest
import torch

from torchworks.core.registry import DISTILL_LOSSES
from torchworks.distill.losses import DISTLoss, DKDLoss, KDLoss


def np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_kd_hand_value():
    # p_t = softmax([ln 3, 0]) = [0.75, 0.25], p_s = [0.5, 0.5]:
    # KL = 0.75 ln 1.5 + 0.25 ln 0.5 = 0.1308120...
    z_s = torch.tensor([[0.0, 0.0]])
    z_t = torch.tensor([[math.log(3.0), 0.0]])
    assert KDLoss(T=1.0)(z_s, z_t).item() == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5), abs=1e-6)


def test_kd_matches_numpy_with_temperature():
    z_s, z_t = np.random.RandomState(0).randn(2, 5, 7)
    T = 4.0
    p_t, p_s = np_softmax(z_t / T), np_softmax(z_s / T)
    expected = T**2 * np.mean(np.sum(p_t * (np.log(p_t) - np.log(p_s)), 1))
    got = DISTILL_LOSSES.build("kd", T=T)(torch.tensor(z_s), torch.tensor(z_t))
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_dkd_matches_numpy_loop():
    rng = np.random.RandomState(1)
    z_s, z_t = rng.randn(4, 6), rng.randn(4, 6)
    y = np.array([0, 3, 5, 3])
    T, alpha, beta = 2.0, 1.5, 3.0
    tckd = nckd = 0.0
    for b in range(4):
        ps, pt = np_softmax(z_s[b] / T), np_softmax(z_t[b] / T)
        bs, bt = np.array([ps[y[b]], 1 - ps[y[b]]]), np.array([pt[y[b]], 1 - pt[y[b]]])
        tckd += np.sum(bt * np.log(bt / bs))
        keep = np.arange(6) != y[b]
        hs, ht = np_softmax(z_s[b][keep] / T), np_softmax(z_t[b][keep] / T)
        nckd += np.sum(ht * np.log(ht / hs))
    expected = T**2 * (alpha * tckd + beta * nckd) / 4
    got = DKDLoss(alpha, beta, T)(torch.tensor(z_s), torch.tensor(z_t), torch.tensor(y))
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_dkd_reduces_to_kd_with_coupled_weight():
    # the paper's identity KD = TCKD + (1 - p^t_gt) NCKD, checked on one sample so beta can carry the coupling
    z_s, z_t, y = torch.randn(1, 5, dtype=torch.float64), torch.randn(1, 5, dtype=torch.float64), torch.tensor([2])
    p_gt = torch.softmax(z_t / 4, 1)[0, 2].item()
    dkd = DKDLoss(alpha=1.0, beta=1 - p_gt, T=4.0)(z_s, z_t, y)
    assert dkd.item() == pytest.approx(KDLoss(4.0)(z_s, z_t).item(), rel=1e-10)


def test_dkd_requires_target():
    with pytest.raises(ValueError, match="dkd.*target"):
        DKDLoss()(torch.randn(2, 3), torch.randn(2, 3))


def test_dist_matches_numpy_corrcoef():
    rng = np.random.RandomState(2)
    z_s, z_t = rng.randn(5, 4), rng.randn(5, 4)
    tau, beta, gamma = 2.0, 1.0, 2.0
    ys, yt = np_softmax(z_s / tau), np_softmax(z_t / tau)
    inter = np.mean([1 - np.corrcoef(ys[i], yt[i])[0, 1] for i in range(5)])
    intra = np.mean([1 - np.corrcoef(ys[:, j], yt[:, j])[0, 1] for j in range(4)])
    expected = tau**2 * (beta * inter + gamma * intra)
    got = DISTLoss(beta=beta, gamma=gamma, tau=tau)(torch.tensor(z_s), torch.tensor(z_t))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_dist_is_zero_for_identical_predictions():
    # not exactly 0: eps = 1e-8 in the correlation's denominator is comparable to the tiny column norms
    z = torch.randn(4, 6, dtype=torch.float64)
    assert DISTLoss()(z, z).item() == pytest.approx(0.0, abs=1e-5)
    assert DISTLoss()(z, -z).item() > 0.5


@pytest.mark.parametrize("name,kwargs", [("kd", {}), ("dist", {}), ("dkd", {"target": torch.tensor([1, 0, 2])})])
def test_logit_losses_gradcheck(name, kwargs):
    loss = DISTILL_LOSSES.build(name)
    z_s = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    z_t = torch.randn(3, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s: loss(s, z_t, **kwargs), (z_s,))


@pytest.mark.parametrize("bad_t", [torch.randn(3, 5), torch.randn(4, 4), torch.randn(3, 4, 1)])
def test_logit_shape_mismatch_names_method_and_shapes(bad_t):
    for name in ("kd", "dist"):
        with pytest.raises(ValueError, match=rf"{name}:.*\(3, 4\).*{tuple(bad_t.shape)[0]}"):
            DISTILL_LOSSES.build(name)(torch.randn(3, 4), bad_t)

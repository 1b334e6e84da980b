"""LaMa / Context Encoder losses against hand-computed values on tiny tensors, and gradient flow."""

from __future__ import annotations

import logging
import math

import pytest
import torch

import torchworks.inpainting.nets  # noqa: F401  (registers the discriminators)
from torchworks.core.checkpoint import build_model
from torchworks.inpainting import losses as L

LN2 = math.log(2.0)
SP1 = math.log1p(math.e)  # softplus(1)
SPM1 = math.log1p(math.exp(-1.0))  # softplus(-1)


def _row(*values: float) -> torch.Tensor:
    """(1, 1, 1, N) tensor."""
    return torch.tensor(values, dtype=torch.float64).view(1, 1, 1, -1)


def test_masked_l1_weights_known_and_missing_pixels():
    pred, target, mask = _row(0.0, 0.0), _row(1.0, 3.0), _row(1.0, 0.0)  # first pixel is the hole
    assert L.masked_l1(pred, target, mask).item() == pytest.approx(10 * 3 / 2)  # LaMa: hole weight 0
    assert L.masked_l1(pred, target, mask, 10.0, 1.0).item() == pytest.approx((1 + 30) / 2)


def test_masked_l2_hole_only():
    pred, target, mask = _row(0.0, 0.0), _row(2.0, 3.0), _row(1.0, 0.0)
    assert L.masked_l2(pred, target, mask).item() == pytest.approx(4 / 2)
    assert L.masked_l2(pred, target, mask, 1.0, 0.5).item() == pytest.approx((4 + 4.5) / 2)


def test_generator_loss_is_weighted_softplus():
    assert L.ns_generator_loss(_row(0.0, 0.0)).item() == pytest.approx(10 * LN2)
    assert L.ns_generator_loss(_row(1.0, -1.0), weight=1.0).item() == pytest.approx((SPM1 + SP1) / 2)


def test_discriminator_loss_mask_as_fake_target():
    real, fake = _row(0.0, 0.0), _row(1.0, -1.0)
    loss, parts = L.ns_discriminator_loss(real, fake, mask=_row(1.0, 0.0))
    # hole patch: softplus(D) = softplus(1); known patch labelled real: softplus(-D) = softplus(1)
    assert loss.item() == pytest.approx(LN2 + SP1)
    assert parts["d_real"].item() == pytest.approx(LN2) and parts["r1"].item() == 0.0
    plain, _ = L.ns_discriminator_loss(real, fake)  # no mask: every fake patch is fake
    assert plain.item() == pytest.approx(LN2 + (SP1 + SPM1) / 2)


def test_discriminator_loss_resizes_the_mask_nearest():
    real, fake = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :2] = 1  # nearest 4x4 -> 2x2 keeps pixel (0, 0) of each 2x2 cell: one hole patch of four
    loss, _ = L.ns_discriminator_loss(real, fake, mask=mask)
    assert loss.item() == pytest.approx(LN2 + (SP1 + 3 * SPM1) / 4, rel=1e-6)
    assert L.resize_mask(mask, (2, 2)).flatten().tolist() == [1.0, 0.0, 0.0, 0.0]


def test_r1_penalty_value_and_double_backprop():
    x = torch.tensor([[[[1.0, 2.0]]], [[[3.0, 0.0]]]], dtype=torch.float64, requires_grad=True)  # (2, 1, 1, 2)
    a = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    logits = a * x.pow(2)  # dD/dx = 2 a x, so R1 = mean_b 4 a^2 sum x^2 = a^2 * (4*5 + 4*9) / 2
    gp = L.r1_penalty(logits, x)
    assert gp.item() == pytest.approx(0.25 * 28)
    (grad_a,) = torch.autograd.grad(gp, a)
    assert grad_a.item() == pytest.approx(2 * 0.5 * 28)  # d/da (28 a^2)
    with torch.no_grad():
        assert L.r1_penalty(a * x.pow(2), x).item() == 0.0


def test_discriminator_loss_adds_weighted_r1():
    x = torch.full((1, 1, 1, 2), 2.0, dtype=torch.float64, requires_grad=True)
    real_logits = 3.0 * x  # gradient 3 everywhere: R1 = 9 * 2
    loss, parts = L.ns_discriminator_loss(real_logits, _row(0.0, 0.0), real=x, gp_coef=0.5)
    expected = (2 * math.log1p(math.exp(-6.0))) / 2 + LN2 + 0.5 * 18
    assert parts["r1"].item() == pytest.approx(18) and loss.item() == pytest.approx(expected)


def test_feature_matching_mean_over_layers_and_real_detached():
    fake = [torch.ones(1, 1, 2, 2, requires_grad=True), torch.full((1, 2, 1, 1), 3.0, requires_grad=True)]
    real = [torch.zeros(1, 1, 2, 2, requires_grad=True), torch.zeros(1, 2, 1, 1, requires_grad=True)]
    loss = L.feature_matching(fake, real)
    assert loss.item() == pytest.approx((1 + 9) / 2)
    loss.backward()
    assert fake[0].grad is not None and real[0].grad is None
    torch.testing.assert_close(fake[1].grad, torch.full((1, 2, 1, 1), 1.5))  # d/df mean(f^2) / 2 layers = f / 2
    with pytest.raises(ValueError, match="equally many"):
        L.feature_matching(fake, real[:1])


def test_gan_losses_reach_both_networks():
    torch.manual_seed(0)
    gen = build_model("lama_tiny")
    disc = build_model("lama_discriminator_tiny")
    image, mask = torch.rand(2, 3, 32, 32), torch.zeros(2, 1, 32, 32)
    mask[..., 8:20, 8:24] = 1
    pred = gen(torch.cat([image * (1 - mask), mask], 1))
    fake_logits, fake_feats = disc(pred)
    g = L.masked_l1(pred, image, mask) + L.ns_generator_loss(fake_logits) + L.feature_matching(
        fake_feats, disc(image)[1])
    g.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in gen.parameters())
    disc.zero_grad()
    real = image.clone().requires_grad_(True)
    d, parts = L.ns_discriminator_loss(disc(real)[0], disc(pred.detach())[0], mask, real)
    d.backward()
    assert parts["r1"] > 0 and all(torch.isfinite(p.grad).all() for p in disc.parameters())


def test_efficientnet_perceptual_gradients_reach_prediction_only():
    from torchworks.inpainting.fid import EfficientNetLite0

    torch.manual_seed(0)
    pl = L.EfficientNetPerceptual(EfficientNetLite0())
    target = torch.rand(1, 3, 32, 32)
    assert pl(target, target).item() == 0.0
    pred = torch.rand(1, 3, 32, 32, requires_grad=True)
    loss = pl(pred, target)
    loss.backward()
    assert loss.item() > 0 and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in pl.parameters()) and not pl.train().backbone.training


def test_build_perceptual_skips_with_a_note_when_weights_are_missing(tmp_path, monkeypatch, caplog):
    from torchworks.inpainting.fid import ENV_WEIGHTS

    assert L.build_perceptual(0.0) is None
    monkeypatch.setenv(ENV_WEIGHTS, str(tmp_path / "missing.pth"))
    with caplog.at_level(logging.WARNING, logger="torchworks.inpainting.losses"):
        assert L.build_perceptual(30.0) is None
    assert "perceptual loss skipped" in caplog.text and "missing.pth" in caplog.text

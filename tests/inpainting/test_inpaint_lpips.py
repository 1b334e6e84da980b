"""LPIPS: zero on identical images, symmetric, equal to an independent implementation of the formula, lin heads
read from the lpips wheel without importing it, torchvision-format backbone files, and the errors users hit."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
import torch.nn.functional as F

from torchworks.core.errors import CheckpointError
from torchworks.inpainting import lpips as L

ALEX_CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
LIN_CHANNELS = (64, 192, 384, 256, 256)


def torchvision_alexnet_state(seed: int = 0, classifier: bool = True) -> dict[str, torch.Tensor]:
    """A random state dict with torchvision ``alexnet``'s feature keys (and a stand-in classifier, tiny)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i, (cout, cin, k) in ALEX_CONVS.items():
        sd[f"features.{i}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (2 / (cin * k * k)) ** 0.5
        sd[f"features.{i}.bias"] = torch.randn(cout, generator=g) * 0.1
    if classifier:  # the real file has classifier.{1,4,6}.*; shapes are not checked since they are unused
        sd["classifier.6.weight"], sd["classifier.6.bias"] = torch.randn(10, 4), torch.randn(10)
    return sd


def random_lin(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for i, c in enumerate(LIN_CHANNELS)}


def reference_lpips(sd, lin, x, y):
    """LPIPS written out independently, in float64, from the paper (eq. 1) and the reference code:
    inputs [0, 1] -> [-1, 1] -> (z - shift) / scale; AlexNet conv1..conv5 ReLU outputs; each pixel's channel vector
    divided by (its L2 norm + 1e-10); squared difference; weighted by w_l >= 0 per channel (applied to the squared
    difference, as the reference's 1x1 conv does, not squared as the paper's ||w * d||^2 suggests); channel sum,
    spatial mean, sum over the five layers."""
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)
    w = {k: v.double() for k, v in sd.items()}

    def feats(img):
        z = ((2 * img.double() - 1) - shift) / scale
        z1 = F.relu(F.conv2d(z, w["features.0.weight"], w["features.0.bias"], stride=4, padding=2))
        z2 = F.relu(F.conv2d(F.max_pool2d(z1, 3, 2), w["features.3.weight"], w["features.3.bias"], padding=2))
        z3 = F.relu(F.conv2d(F.max_pool2d(z2, 3, 2), w["features.6.weight"], w["features.6.bias"], padding=1))
        z4 = F.relu(F.conv2d(z3, w["features.8.weight"], w["features.8.bias"], padding=1))
        z5 = F.relu(F.conv2d(z4, w["features.10.weight"], w["features.10.bias"], padding=1))
        return [z1, z2, z3, z4, z5]

    total = torch.zeros(x.shape[0], dtype=torch.float64)
    for i, (a, b) in enumerate(zip(feats(x), feats(y), strict=True)):
        na = a / (torch.sqrt((a * a).sum(1, keepdim=True)) + 1e-10)
        nb = b / (torch.sqrt((b * b).sum(1, keepdim=True)) + 1e-10)
        wl = lin[f"lin{i}.model.1.weight"].double().view(1, -1, 1, 1)
        total += ((na - nb) ** 2 * wl).sum(1).mean((1, 2))
    return total


@pytest.fixture
def model():
    m = L.LPIPS("alex")
    m.load_backbone(torchvision_alexnet_state())
    m.load_lin(random_lin())
    return m.eval()


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """No env vars and an empty torch hub folder, so nothing is found unless a test puts it there."""
    for var in (L.ENV_BACKBONE, L.ENV_LIN):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


def test_zero_on_identical_images_and_symmetric(model):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 3, 40, 48, generator=g), torch.rand(3, 3, 40, 48, generator=g)
    with torch.no_grad():
        assert torch.equal(model(x, x), torch.zeros(3))
        dxy, dyx = model(x, y), model(y, x)
        per = model(x, y, per_layer=True)
    assert dxy.shape == (3,) and bool((dxy > 0).all())
    torch.testing.assert_close(dxy, dyx, rtol=1e-5, atol=1e-7)
    assert per.shape == (3, 5) and bool((per >= 0).all())
    torch.testing.assert_close(per.sum(1), dxy)


def test_matches_the_formula_written_independently(model):
    g = torch.Generator().manual_seed(5)
    x = torch.rand(2, 3, 33, 37, generator=g)  # odd sizes: the pooling/padding arithmetic must agree too
    y = (x + 0.2 * torch.randn(2, 3, 33, 37, generator=g)).clamp(0, 1)
    with torch.no_grad():
        got = model(x, y)
    want = reference_lpips(torchvision_alexnet_state(), random_lin(), x, y)
    torch.testing.assert_close(got.double(), want, rtol=2e-4, atol=1e-6)


def test_user_files_load_through_load_lpips(tmp_path, no_hub):
    torch.save(torchvision_alexnet_state(), tmp_path / "my_alexnet.pth")  # unpublished name: no hash to check
    torch.save(random_lin(), tmp_path / "lin.pth")
    m = L.load_lpips(tmp_path / "my_alexnet.pth", lin=tmp_path / "lin.pth")
    assert m.net_name == "alex" and not m.training and not any(p.requires_grad for p in m.parameters())
    x = torch.rand(1, 3, 32, 32)
    y = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(L.lpips_distance(m, x, y), reference_lpips(torchvision_alexnet_state(), random_lin(),
                                                                          x, y), rtol=2e-4, atol=1e-6)
    # features-only files and safetensors work too
    from safetensors.torch import save_file

    save_file(torchvision_alexnet_state(classifier=False), str(tmp_path / "feats.safetensors"))
    assert L.load_lpips(tmp_path / "feats.safetensors", lin=tmp_path / "lin.pth").net_name == "alex"


@pytest.mark.skipif(importlib.util.find_spec("lpips") is None, reason="pip install --no-deps lpips==0.1.4")
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lin_weights_from_the_wheel(net, no_hub):
    path = L.lin_path(net)
    assert "lpips" not in sys.modules  # located, never imported (it would import torchvision)
    assert path.parts[-3:] == ("weights", "v0.1", f"{net}.pth")
    assert L.sha256_file(path) == L.LIN_SHA256[net]
    raw = torch.load(path, map_location="cpu", weights_only=True)
    m = L.LPIPS(net)
    m.load_lin(raw)
    for i, lin in enumerate(m.lins):
        assert torch.equal(lin.weight, raw[f"lin{i}.model.1.weight"])
        assert bool((lin.weight >= 0).all())  # trained with clamping to >= 0
    assert [lin.weight.shape[1] for lin in m.lins] == list(L.NETS[net][2])


def test_missing_backbone_says_where_to_get_it(no_hub):
    with pytest.raises(L.WeightsNotFoundError) as err:
        L.load_lpips()
    msg = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    for part in ("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", L.BACKBONES["alex"].sha256,
                 "--lpips-backbone", "$TORCHWORKS_LPIPS_BACKBONE", "nothing is downloaded"):
        assert part in msg
    with pytest.raises(FileNotFoundError, match="no LPIPS-alex"):
        L.load_lpips("/nonexistent/alexnet.pth")


def test_published_name_is_hash_checked_and_found_in_the_hub_cache(no_hub, tmp_path):
    no_hub.mkdir(parents=True)
    fake = no_hub / "alexnet-owt-7be5be79.pth"
    torch.save(torchvision_alexnet_state(), fake)
    torch.save(random_lin(), tmp_path / "lin.pth")
    with pytest.raises(CheckpointError, match="does not match the published 7be5be79"):
        L.load_lpips(lin=tmp_path / "lin.pth")  # found in the cache, then refused: not the real bytes
    assert L.load_lpips(lin=tmp_path / "lin.pth", verify=False).net_name == "alex"


def test_wrong_files(tmp_path, no_hub):
    torch.save(random_lin(), tmp_path / "lin.pth")
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "resnet.pth")
    with pytest.raises(CheckpointError, match="not a torchvision"):
        L.load_lpips(tmp_path / "resnet.pth", lin=tmp_path / "lin.pth", net="alex")
    with pytest.raises(CheckpointError, match="not an AlexNet or VGG16"):
        L.load_lpips(tmp_path / "resnet.pth", lin=tmp_path / "lin.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable weights file"):
        L.load_lpips(tmp_path / "junk.pth", lin=tmp_path / "lin.pth")
    sd = torchvision_alexnet_state()
    sd["features.3.weight"] = sd["features.3.weight"][:100]
    torch.save(sd, tmp_path / "bad_shape.pth")
    with pytest.raises(CheckpointError, match="wrong shape"):
        L.load_lpips(tmp_path / "bad_shape.pth", lin=tmp_path / "lin.pth")
    m = L.LPIPS("alex")
    neg = random_lin()
    neg["lin2.model.1.weight"][0, 0] = -0.1
    with pytest.raises(CheckpointError, match="non-negative"):
        m.load_lin(neg)
    with pytest.raises(CheckpointError, match="lin shapes"):
        L.LPIPS("vgg").load_lin(random_lin())
    with pytest.raises(ValueError, match="at least 31 px"):
        m(torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24))
    with pytest.raises(ValueError, match="unknown LPIPS network"):
        L.LPIPS("squeeze")


def test_vgg16_layout_and_net_inference():
    vgg = L.LPIPS("vgg")
    keys = [k for k in vgg.net.state_dict() if k.endswith("weight")]
    assert keys[0] == "features.0.weight" and keys[-1] == "features.28.weight" and len(keys) == 13
    assert sum(p.numel() for p in vgg.net.parameters()) == 14_714_688  # VGG16's conv layers (138.4 M with fc)
    assert sum(p.numel() for p in L.LPIPS("alex").net.parameters()) == 2_469_696  # 61,100,840 minus classifier
    assert L.infer_net({"features.0.weight": torch.zeros(64, 3, 3, 3)}) == "vgg"
    assert L.infer_net(torchvision_alexnet_state()) == "alex"
    with torch.no_grad():
        assert vgg(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)).shape == (1,)

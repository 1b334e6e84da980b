"""Model zoo sweep: parameter counts, forward/backward, feature layouts, pre/post-ReLU consistency."""

import pytest
import torch
import torch.nn.functional as F

from torchworks.core.registry import MODELS
from torchworks.distill.models import ZOO_NAMES

# num_classes=100. Computed by instantiating HobbitLong/RepDistiller's model files (models/__init__.py:model_dict)
# at commit b84f547 and summing p.numel(); e.g. resnet56 0.86M, resnet20 0.28M, wrn_40_2 2.26M as published.
PARAMS = {
    "resnet8": 83_892, "resnet14": 181_108, "resnet20": 278_324, "resnet32": 472_756, "resnet44": 667_188,
    "resnet56": 861_620, "resnet110": 1_736_564, "resnet8x4": 1_233_540, "resnet32x4": 7_433_860,
    "wrn_16_1": 180_916, "wrn_16_2": 703_284, "wrn_40_1": 569_780, "wrn_40_2": 2_255_156,
    "vgg8": 3_965_028, "vgg11": 9_277_284, "vgg13": 9_462_180,
    "mobilenetv2_half": 812_836, "shufflenetv1": 949_258, "shufflenetv2": 1_355_528,
}

# RepDistiller's is_feat shapes on 32x32 inputs (without batch), same measurement
FEATS = {
    "resnet8": [(16, 32, 32), (16, 32, 32), (32, 16, 16), (64, 8, 8), (64,)],
    "resnet8x4": [(32, 32, 32), (64, 32, 32), (128, 16, 16), (256, 8, 8), (256,)],
    "wrn_16_2": [(16, 32, 32), (32, 32, 32), (64, 16, 16), (128, 8, 8), (128,)],
    "vgg8": [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 4, 4), (512,)],
    "mobilenetv2_half": [(16, 16, 16), (12, 16, 16), (16, 8, 8), (48, 4, 4), (160, 2, 2), (1280,)],
    "shufflenetv1": [(24, 32, 32), (240, 16, 16), (480, 8, 8), (960, 4, 4), (960,)],
    "shufflenetv2": [(24, 32, 32), (116, 16, 16), (232, 8, 8), (464, 4, 4), (1024,)],
}
LARGE = {"resnet110", "resnet32x4", "vgg11", "vgg13", "wrn_40_2", "resnet44"}  # parameter count only


def test_zoo_is_registered():
    assert set(ZOO_NAMES) == set(PARAMS)
    assert all(name in MODELS for name in ZOO_NAMES)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_parameter_count_matches_repdistiller(name):
    model = MODELS.build(name, num_classes=100)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]


@pytest.mark.parametrize("name", [n for n in ZOO_NAMES if n not in LARGE])
def test_forward_backward_features(name):
    model = MODELS.build(name, num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    logits, feats = model(x, return_features=True)
    _, pre = model(x, return_features=True, preact=True)
    assert logits.shape == (2, 10)
    assert len(feats) == len(pre) == len(model.stage_channels)
    assert [f.shape[1] for f in feats] == model.stage_channels
    assert [f.shape == p.shape for f, p in zip(feats, pre, strict=True)] == [True] * len(feats)
    if name in FEATS:
        assert [tuple(f.shape[1:]) for f in feats] == FEATS[name]
    (logits.sum() + sum(f.mean() for f in feats) + sum(p.mean() for p in pre)).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    assert torch.allclose(model(x), model(x, return_features=True)[0])


@pytest.mark.parametrize("name", ["resnet8", "vgg8", "shufflenetv1", "shufflenetv2"])
def test_post_features_are_relu_of_pre_features(name):
    model = MODELS.build(name).eval()
    x = torch.randn(2, 3, 32, 32)
    _, post = model(x, return_features=True)
    _, pre = model(x, return_features=True, preact=True)
    for p, q in zip(pre[1:-1], post[1:-1], strict=True):
        assert (p < 0).any()  # really pre-activation
        torch.testing.assert_close(F.relu(p), q)


def test_wrn_preact_is_next_bn_output_computed_once():
    model = MODELS.build("wrn_16_1")
    x = torch.randn(4, 3, 32, 32)
    before = model.block2[0].bn1.num_batches_tracked.item()
    _, post = model(x, return_features=True)
    assert model.block2[0].bn1.num_batches_tracked.item() == before + 1  # one BN update per forward
    model.eval()
    _, post = model(x, return_features=True)
    _, pre = model(x, return_features=True, preact=True)
    for bn, f, p in zip(model.bn_before_relu(), post[1:4], pre[1:4], strict=True):
        torch.testing.assert_close(bn(f), p)


def test_mobilenet_pre_and_post_coincide():
    model = MODELS.build("mobilenetv2_half").eval()
    x = torch.randn(2, 3, 32, 32)
    _, post = model(x, return_features=True)
    _, pre = model(x, return_features=True, preact=True)
    assert all(torch.equal(a, b) for a, b in zip(post, pre, strict=True))


@pytest.mark.parametrize("name", ["resnet8", "wrn_16_1", "vgg8", "mobilenetv2_half"])
def test_bn_before_relu_one_per_stage(name):
    model = MODELS.build(name)
    bns = model.bn_before_relu()
    assert all(isinstance(b, torch.nn.BatchNorm2d) for b in bns)
    assert [b.num_features for b in bns] == model.stage_channels[1:-1]


def test_bad_input_and_depth():
    with pytest.raises(ValueError, match=r"\(2, 1, 32, 32\)"):
        MODELS.build("resnet8")(torch.randn(2, 1, 32, 32))
    from torchworks.distill.models.resnet import CifarResNet

    with pytest.raises(ValueError, match="6n\\+2"):
        CifarResNet(21, [16, 16, 32, 64])

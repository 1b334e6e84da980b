"""OFD: margins from BN statistics (checked by numerical integration) and the partial L2 distance."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from torchworks.distill.losses import OFDLoss, margin_from_bn


def test_margin_is_conditional_mean_of_negative_part():
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, -2.0, 0.5]))  # |gamma| is the std
        bn.bias.copy_(torch.tensor([0.0, 1.0, 5.0]))  # the last channel is almost never negative
    m = margin_from_bn(bn)
    x = np.linspace(-60, 0, 600001)
    for c, (s, mu) in enumerate(((1.0, 0.0), (2.0, 1.0))):
        pdf = np.exp(-((x - mu) ** 2) / (2 * s * s))
        assert m[c].item() == pytest.approx(np.sum(x * pdf) / np.sum(pdf), rel=1e-4)
    assert m[0].item() == pytest.approx(-math.sqrt(2 / math.pi), rel=1e-5)
    assert m[2].item() == pytest.approx(-1.5)  # Phi(-10) < 1e-3 -> -3 |gamma|


def test_partial_l2_hand_value():
    loss = OFDLoss([1], [1], margins=[torch.tensor([-0.5])]).double().eval()
    with torch.no_grad():  # identity connector; eval BN with fresh stats divides by sqrt(1 + eps)
        loss.connectors[0][0].weight.fill_(math.sqrt(1 + 1e-5))
    s = torch.tensor([-2.0, -0.1, 0.3, -1.0], dtype=torch.float64).view(1, 1, 2, 2)
    t = torch.tensor([-3.0, -3.0, 1.0, 0.5], dtype=torch.float64).view(1, 1, 2, 2)
    # t' = max(t, -0.5) = [-0.5, -0.5, 1, 0.5]; keep where s > t' or t' > 0:
    # pos 0: s=-2 <= -0.5 and t' <= 0 -> skipped; pos 1: s=-0.1 > -0.5 -> 0.4^2; pos 2: 0.7^2; pos 3: 1.5^2
    assert loss(s, t).item() == pytest.approx(0.16 + 0.49 + 2.25, rel=1e-8)


def test_deeper_stages_weigh_more_and_margins_from_zoo_teacher():
    from torchworks.core.registry import MODELS

    teacher = MODELS.build("resnet8")
    loss = OFDLoss([16, 32, 64], [16, 32, 64], margins=teacher.bn_before_relu())
    assert len(loss.margins()) == 3 and loss.margins()[2].shape == (1, 64, 1, 1)
    z = [torch.zeros(1, c, 2, 2) for c in (16, 32, 64)]
    ones = [torch.ones(1, c, 2, 2) for c in (16, 32, 64)]
    loss.eval()
    per_stage = []
    for j in range(3):
        s = [x.clone() for x in z]
        t = [x.clone() for x in z]
        t[j] = ones[j]
        per_stage.append(loss(s, t).item() / (4 * (16, 32, 64)[j]))  # per element
    assert per_stage[0] == pytest.approx(per_stage[2] / 4, rel=1e-5)
    assert per_stage[1] == pytest.approx(per_stage[2] / 2, rel=1e-5)

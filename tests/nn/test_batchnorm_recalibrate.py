"""recalibrate_batchnorm: the running statistics become the averages over the given batches for the fixed weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchworks.nn.batchnorm import recalibrate_batchnorm

torch.set_num_threads(1)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1),
                         nn.BatchNorm2d(2))


def test_running_statistics_are_the_averages_over_the_batches():
    net = _net().eval()
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(5, 3, 6, 6, generator=g) * 2 + 1 for _ in range(4)]
    weights = [p.clone() for p in net.parameters()]
    assert recalibrate_batchnorm(net, batches) == 2
    assert not net.training and net[1].momentum == 0.1  # mode and momentum restored
    assert all(torch.equal(a, b) for a, b in zip(weights, net.parameters(), strict=True))  # no parameter moved
    # expected: the first layer's per-batch means and unbiased variances of the conv output, averaged over batches
    with torch.no_grad():
        outs = [net[0](b) for b in batches]
    mean = torch.stack([o.mean((0, 2, 3)) for o in outs]).mean(0)
    var = torch.stack([o.var((0, 2, 3), unbiased=True) for o in outs]).mean(0)
    torch.testing.assert_close(net[1].running_mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net[1].running_var, var, rtol=1e-5, atol=1e-6)
    assert int(net[1].num_batches_tracked) == 4


def test_stale_statistics_are_repaired_and_one_batch_gives_the_train_mode_output():
    net = _net()
    x = torch.randn(8, 3, 6, 6, generator=torch.Generator().manual_seed(2)) * 3 + 5
    for m in (net[1], net[4]):  # stale averages, far from what the weights produce on x
        m.running_mean.fill_(-4.0), m.running_var.fill_(0.01)
    net.eval()
    with torch.no_grad():
        stale = net(x)
        net.train()
        train_out = net(x)
    net.eval()
    recalibrate_batchnorm(net, [x])
    with torch.no_grad():
        fixed = net(x)
    # one batch: eval mode equals train mode up to the unbiased (n / (n - 1)) variance of the running average
    assert (fixed - train_out).abs().max() < 0.05 < (stale - train_out).abs().max()


def test_custom_forward_no_layers_and_empty_batches():
    net = _net()
    seen = []
    recalibrate_batchnorm(net, [{"x": torch.randn(2, 3, 4, 4)}], forward=lambda m, b: seen.append(m(b["x"])))
    assert len(seen) == 1
    assert recalibrate_batchnorm(nn.Linear(2, 2), [torch.randn(1, 2)]) == 0
    before = net[1].running_mean.clone()
    with pytest.raises(ValueError, match="at least one batch"):
        recalibrate_batchnorm(net, [])
    assert torch.equal(net[1].running_mean, before)  # unchanged on error

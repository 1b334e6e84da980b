"""``torchworks.classify.evaluate``: batched top-1 accuracy and its binomial interval."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from torchworks.classify.evaluate import accuracy_halfwidth, top1_accuracy

torch.set_num_threads(1)


class _Dropping(nn.Module):
    """Linear logits behind a dropout that zeroes everything in train mode, and a batch norm whose batch
    statistics would differ from its (identity) running statistics: only eval mode gives the linear logits."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(weight.shape[1])
        self.drop = nn.Dropout(p=1.0)
        self.linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        self.linear.weight.data.copy_(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.drop(self.norm(x.flatten(1))))


def _data(n: int = 103, k: int = 5, d: int = 8):
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(k, d, generator=g)
    x = torch.randn(n, 1, 2, d // 2, generator=g)  # (N, C, H, W)
    y = torch.randint(0, k, (n,), generator=g)
    return _Dropping(weight), x, y, weight


def test_matches_a_direct_count_for_every_batch_size():
    model, x, y, weight = _data()
    model.train()
    expected = float(((x.flatten(1) @ weight.T).argmax(1) == y).sum()) / len(y)
    assert 0.1 < expected < 0.5  # random labels: some right, some wrong
    for batch in (1, 7, 103, 500):
        assert top1_accuracy(model, x, y, batch_size=batch) == expected
    assert not model.training  # left in eval mode, as documented


def test_progress_reports_each_batch_and_no_gradient_is_kept():
    model, x, y, _ = _data(n=10)
    seen = []
    top1_accuracy(model, x, y, batch_size=4, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(4, 10), (8, 10), (10, 10)]
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(("images", "labels", "batch", "match"), [
    (torch.zeros(3, 8), torch.zeros(2, dtype=torch.long), 4, "as many images as labels"),
    (torch.zeros(0, 8), torch.zeros(0, dtype=torch.long), 4, "at least one"),
    (torch.zeros(3, 8), torch.zeros(3, dtype=torch.long), 0, "batch_size must be >= 1"),
])
def test_bad_input_is_refused(images, labels, batch, match):
    with pytest.raises(ValueError, match=match):
        top1_accuracy(nn.Linear(8, 2), images, labels, batch_size=batch)


def test_halfwidth_is_the_wald_interval():
    assert accuracy_halfwidth(0.8, 400) == pytest.approx(1.96 * math.sqrt(0.8 * 0.2 / 400))  # 0.0392
    assert accuracy_halfwidth(0.8, 400, z=1.0) == pytest.approx(0.02)
    assert accuracy_halfwidth(1.0, 10) == 0.0 and accuracy_halfwidth(0.5, 100) > accuracy_halfwidth(0.9, 100)
    for acc, n in ((1.2, 10), (-0.1, 10), (0.5, 0)):
        with pytest.raises(ValueError, match="accuracy in \\[0, 1\\] and n >= 1"):
            accuracy_halfwidth(acc, n)

"""The ViTs trained here and shipped in the package: small files with a model card whose test accuracy the
weights reproduce on the real test set (when the shared data set is present)."""

from __future__ import annotations

import re

import pytest
import torch

import torchworks.transformer.vit  # noqa: F401  (registers the ViT variants)
from torchworks.core.checkpoint import load_model
from torchworks.transformer.pretrained import PRETRAINED_DIR
from torchworks.transformer.vit.task import STATS, load_split

PRETRAINED = PRETRAINED_DIR
SHIPPED = sorted(PRETRAINED.glob("vit_*.safetensors"))
DATASET = {"fashion_mnist": "fashion_mnist", "cifar10": "cifar10"}


def test_the_vits_ship():
    assert {p.stem for p in SHIPPED} == {"vit_small_fashion_mnist", "vit_mini_cifar10", "vit_convstem_fashion_mnist"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_vit_reproduces_its_card(path):
    assert path.stat().st_size < 20e6
    card = path.with_suffix(".md").read_text()
    stated = float(re.search(r"Test accuracy \*\*([\d.]+) %\*\*", card).group(1))
    dataset = next(v for k, v in DATASET.items() if path.stem.endswith(k))
    try:
        images, labels = load_split(dataset, "test")
    except FileNotFoundError as exc:
        pytest.skip(f"{dataset} test set not available: {exc}")
    torch.set_num_threads(2)
    model = load_model(path).eval()
    x = images[::5].float() / 255.0  # every 5th: the CIFAR-10 copy is stored class by class
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in STATS[dataset])
    with torch.no_grad():
        pred = torch.cat([model((x[i:i + 500] - mean) / std).argmax(1) for i in range(0, len(x), 500)])
    acc = 100 * (pred == torch.as_tensor(labels[::5])).float().mean().item()
    assert abs(acc - stated) < 3.0, (acc, stated)  # 2,000 of the 10,000 test images: +-1 pp sampling noise

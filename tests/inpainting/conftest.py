"""Shared fixtures: a small real photo (CC0, tests/fixtures) and masks over it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def photo() -> np.ndarray:
    """(64, 96, 3) uint8 RGB photo of a cat (scikit-image's CC0 'chelsea', downscaled)."""
    from PIL import Image

    return np.asarray(Image.open(FIXTURES / "chelsea_96x64.png").convert("RGB")).copy()


@pytest.fixture
def hole() -> np.ndarray:
    """(64, 96) uint8 mask, 255 = hole: a box and a thin scratch."""
    m = np.zeros((64, 96), np.uint8)
    m[20:34, 30:50] = 255
    m[50:52, 5:90] = 255
    return m

"""Shared fixtures of the engine tests: the toy tasks and a small, fast run config."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the toy-task module sits next to the tests (no package __init__ here)
    sys.path.insert(0, str(HERE))

import engine_toys  # noqa: E402,F401  (registers the _test_* tasks)


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: fast on 2 cores, and the same arithmetic in every run of a comparison."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def make_config(tmp_path):
    """``make_config(sub="run", task={...}, **trainer)``: a plain run config for ``_test_regression``."""

    def make(sub: str = "run", task: dict | None = None, **trainer) -> dict:
        base = {"max_steps": 20, "batch_size": 16, "eval_every": 10, "log_every": 1, "threads": 1,
                "progress": False, "tensorboard": False, "plots": False}
        return {
            "task": {"name": "_test_regression", **(task or {})},
            "trainer": {**base, **trainer},
            "seed": 0,
            "out_dir": str(tmp_path / sub),
        }

    return make

"""``image_classifier`` on Fashion-MNIST end to end through the shared engine (needs the Fashion-MNIST files)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from torchworks.core.checkpoint import load_model

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny_fashion.yaml"


@pytest.fixture(scope="module")
def have_data():
    from torchworks.data import dataset_path

    try:
        return dataset_path("fashion_mnist")
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST not available (torchworks data path fashion_mnist --download)")


@pytest.fixture(scope="module")
def tiny_run(have_data, tmp_path_factory):
    import torchworks.classify  # noqa: F401
    from torchworks.engine.run import train

    out = tmp_path_factory.mktemp("tiny")
    return train(str(TINY), out_dir=str(out))


def test_tiny_config_overfits_through_the_engine(tiny_run):
    import csv

    rows = list(csv.DictReader(open(tiny_run["metrics_csv"])))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    accs = [float(r["train/acc"]) for r in rows if r.get("train/acc")]
    # 256 images, 150 full-batch-ish steps of Adam at lr 3e-3 without dropout: the MLP memorises them.
    assert losses[0] > 0.5  # first log after `log_every` steps; chance level is ln(10) = 2.30
    assert losses[-1] < 0.05 and losses[-1] < losses[0] / 20, losses[-5:]
    assert accs[-1] == 1.0
    assert Path(tiny_run["curves_png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_directory_holds_the_resolved_config(tiny_run):
    from torchworks.core.config import load_yaml
    from torchworks.engine.config import load_run_config

    saved = load_yaml(Path(tiny_run["out_dir"]) / "config.yaml")
    assert saved["task"]["model"] == "fashion_mlp" and saved["task"]["train_limit"] == 256
    assert saved["task"]["holdout"] == 512 and saved["trainer"]["max_steps"] == 150
    run_cfg, task_cfg = load_run_config(saved)  # strict: the file is a valid recipe as written
    assert task_cfg.lr == 0.003 and run_cfg.out_dir == str(tiny_run["out_dir"])


def test_best_checkpoint_rebuilds_the_classifier(tiny_run, have_data):
    from torchworks.classify.data import split_indices
    from torchworks.data.fashion_mnist import FashionMNIST

    model = load_model(tiny_run["best_checkpoint"], expect="fashion_mlp").eval()
    ds = FashionMNIST("train")
    idx = split_indices(len(ds), holdout=512, train_limit=256)[0]  # the 256 images it trained on (fixed split)
    x = torch.stack([ds[i][0] for i in idx])  # float in [0, 1]: the tiny recipe does not normalise
    y = torch.tensor([ds[i][1] for i in idx])
    acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.98  # the memorised training images


def test_eval_on_the_test_split(tiny_run):
    from torchworks.engine.run import evaluate

    metrics = evaluate(str(TINY), tiny_run["last_checkpoint"])
    # 256 training images generalise to roughly 65-75 % on the 10k test set; chance is 10 %.
    assert 0.5 < metrics["test/acc"] < 0.9, metrics

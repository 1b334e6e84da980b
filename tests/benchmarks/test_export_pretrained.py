"""The GPT card exporter writes its recipe in the current schedule keys, and that recipe is the config the card's
Reproduce command evaluates with (the shipped card's run was trained with the old ``decay_steps``/``min_lr``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import torchworks.transformer  # noqa: F401  (registers the gpt_lm task)
from torchworks.core.errors import ConfigError
from torchworks.engine.config import load_run_config

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "transformer"))
import export_pretrained as export  # noqa: E402

RUN = json.loads((ROOT / "benchmarks" / "transformer" / "results" / "rope_lr3_1800.json").read_text())
BASE = ROOT / "configs" / "gpt_char_nanogpt.yaml"
RECIPE = ROOT / "configs" / "gpt_char_best.yaml"
CARD = ROOT / "src" / "torchworks" / "transformer" / "pretrained" / "gpt_char_shakespeare.md"
# The task section the shipped run's checkpoint saved (keys of the time: absolute floor, decay_steps).
OLD_TASK = {"lr": 0.003, "min_lr": 1e-4, "warmup_steps": 100, "decay_steps": 1800}


def test_the_recorded_overrides_use_a_key_the_config_no_longer_has():
    assert "task.decay_steps=1800" in RUN["overrides"]
    with pytest.raises(ConfigError, match="task.total_steps"):
        load_run_config(BASE, RUN["overrides"])


def test_recipe_overrides_resolve_to_the_shipped_recipe_config():
    overrides = export.recipe_overrides(RUN["overrides"], OLD_TASK)
    assert overrides[-2:] == ["task.total_steps=1800", "task.min_lr_ratio=0.03333333333333333"]
    export.check_recipe(BASE, overrides, RECIPE)  # raises on any differing task/trainer setting
    task = load_run_config(BASE, overrides)[1]
    assert task.lr * task.min_lr_ratio == pytest.approx(OLD_TASK["min_lr"], rel=1e-12)  # the floor trained with
    # and the card names exactly these overrides
    flat = " ".join(CARD.read_text().split())
    assert "with " + ", ".join(f"`{o}`" for o in overrides) + " (`configs/gpt_char_best.yaml`)." in flat


def test_new_keys_pass_through_and_a_wrong_recipe_is_named():
    new_task = {"lr": 0.003, "min_lr_ratio": 0.5, "warmup_steps": 100, "total_steps": 1800}
    overrides = export.recipe_overrides(["task.lr=0.003", "task.min_lr_ratio=0.5", "task.total_steps=1800"],
                                        new_task)
    assert overrides == ["task.lr=0.003", "task.total_steps=1800", "task.min_lr_ratio=0.5"]
    with pytest.raises(ValueError, match=r"task\.min_lr_ratio: 0\.5 != 0\.0333"):
        export.check_recipe(BASE, [*export.recipe_overrides(RUN["overrides"], OLD_TASK)[:-1],
                                   "task.min_lr_ratio=0.5"], RECIPE)


def test_the_template_rebuilds_the_shipped_reproduce_section():
    shipped = CARD.read_text()
    section = shipped[shipped.index("\n## Reproduce\n"):]
    rendered = export.CARD[export.CARD.index("\n## Reproduce\n"):].format(
        recipe="configs/gpt_char_best.yaml", name="gpt_char_shakespeare", full=RUN["full_val_loss"], limit=2)
    assert rendered == section

"""Run-config validation: strict keys with suggestions, types, task lookup, and overrides before validation."""

from __future__ import annotations

import pytest

from torchworks.core.errors import ConfigError
from torchworks.engine.config import RunConfig, TrainerConfig, load_run_config
from torchworks.engine.run import train


def test_valid_config_resolves_task_defaults(make_config):
    run, task_cfg = load_run_config(make_config(task={"hidden": 7}), ["trainer.max_steps=5", "seed=3"])
    assert isinstance(run, RunConfig) and isinstance(run.trainer, TrainerConfig)
    assert run.trainer.max_steps == 5 and run.seed == 3
    assert task_cfg.hidden == 7 and task_cfg.dim == 8
    assert run.task == {"name": "_test_regression", **{k: getattr(task_cfg, k) for k in vars(task_cfg)}}


def test_unknown_trainer_key_suggests_the_close_one(make_config):
    with pytest.raises(ConfigError, match=r"trainer\.max_stepz.*max_steps"):
        load_run_config(make_config(), ["trainer.max_stepz=3"])


def test_wrong_type_names_path_and_value(make_config):
    with pytest.raises(ConfigError, match=r"trainer\.max_steps.*'abc'"):
        load_run_config(make_config(), ["trainer.max_steps=abc"])
    with pytest.raises(ConfigError, match=r"trainer\.precision.*'bf16'"):
        load_run_config(make_config(), ["trainer.precision=bf16"])


def test_out_of_range_value_is_a_config_error(make_config):
    with pytest.raises(ConfigError, match=r"max_steps must be >= 1, got 0"):
        load_run_config(make_config(), ["trainer.max_steps=0"])


def test_task_keys_are_validated_against_the_task_config(make_config):
    with pytest.raises(ConfigError, match=r"task\.hiden.*hidden"):
        load_run_config(make_config(), ["task.hiden=3"])
    with pytest.raises(ConfigError, match=r"task\.dropout.*'x'"):
        load_run_config(make_config(), ["task.dropout=x"])


@pytest.mark.parametrize("name", [None, ""])
def test_missing_task_name(make_config, name):
    cfg = make_config()
    cfg["task"]["name"] = name
    with pytest.raises(ConfigError, match=r"task\.name is missing.*_test_regression"):
        load_run_config(cfg)


def test_missing_task_section_and_out_dir(make_config):
    cfg = make_config()
    del cfg["task"]
    with pytest.raises(ConfigError, match=r"'task' section"):
        load_run_config(cfg)
    cfg = make_config()
    del cfg["out_dir"]
    with pytest.raises(ConfigError, match=r"out_dir"):
        load_run_config(cfg)


def test_unknown_task_name_lists_close_matches(make_config):
    with pytest.raises(ConfigError, match=r"unknown task '_test_regresion'.*'_test_regression'"):
        load_run_config(make_config(), ["task.name=_test_regresion"])


def test_yaml_file_and_train_kwargs_are_validated(make_config, tmp_path):
    import yaml

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(make_config()), encoding="utf-8")
    run, _ = load_run_config(path, ["trainer.batch_size=4"])
    assert run.trainer.batch_size == 4
    with pytest.raises(ConfigError, match=r"trainer\.threads.*'many'"):
        train(path, threads="many")


def test_every_recipe_in_configs_loads_with_strict_keys():
    # A typo in a shipped recipe (unknown key, unknown task or model field, wrong type) must fail here, not an
    # hour into a training run.
    from pathlib import Path

    from torchworks.catalog import load_all
    from torchworks.core.registry import MODELS

    load_all()
    recipes = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
    assert len(recipes) > 40
    for path in recipes:
        run, _ = load_run_config(path, [])
        assert run.trainer.max_steps > 0, path.name
        model = run.task.get("model")
        if isinstance(model, str) and not run.task["name"].startswith("seq_"):  # seq tasks name a cell type here
            assert model in MODELS, f"{path.name}: unknown model {model!r}; close: {MODELS.close_matches(model)}"

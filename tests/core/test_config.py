from dataclasses import dataclass, field
from typing import Literal

import pytest

from torchworks.core.config import apply_overrides, from_dict, load_yaml, parse_overrides, to_dict
from torchworks.core.errors import ConfigError


@dataclass
class Opt:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class Cfg:
    name: str
    steps: int = 10
    dropout: float | None = None
    act: Literal["relu", "gelu"] = "relu"
    widths: list[int] = field(default_factory=lambda: [8, 16])
    opt: Opt = field(default_factory=Opt)
    amp: bool = False


def test_from_dict_builds_nested_and_coerces_losslessly():
    cfg = from_dict(Cfg, {"name": "a", "steps": 5.0, "dropout": 1, "opt": {"lr": "3e-4", "betas": [0.8, 0.9]}})
    assert cfg == Cfg(name="a", steps=5, dropout=1.0, opt=Opt(lr=3e-4, betas=(0.8, 0.9)))
    assert isinstance(cfg.steps, int) and isinstance(cfg.opt.betas, tuple)
    assert from_dict(Cfg, to_dict(cfg)) == cfg  # round trip through plain data


@pytest.mark.parametrize(("data", "pattern"), [
    ({"name": "a", "stepz": 3}, r"unknown config key 'stepz'; did you mean steps"),
    ({"name": "a", "opt": {"learning_rate": 1}}, r"unknown config key 'opt.learning_rate'; allowed keys: lr, betas"),
    ({}, r"missing required config key 'name'"),
    ({"name": "a", "steps": "ten"}, r"steps: expected an integer, got 'ten'"),
    ({"name": "a", "steps": 2.5}, r"steps: expected an integer, got 2.5"),
    ({"name": "a", "amp": "yes"}, r"amp: expected true or false, got 'yes'"),
    ({"name": "a", "act": "gleu"}, r"act: 'gleu' is not one of 'relu', 'gelu' \(did you mean 'gelu'\?\)"),
    ({"name": "a", "widths": [1, "x"]}, r"widths\[1\]: expected an integer"),
    ({"name": "a", "opt": {"betas": [0.9]}}, r"opt.betas: expected 2 items, got 1"),
    ({"name": "a", "opt": 3}, r"opt: expected a mapping"),
])
def test_from_dict_rejects_bad_values_naming_them(data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        from_dict(Cfg, data)


def test_overrides_parse_yaml_scalars_and_nest():
    assert parse_overrides(["a.b=1", "c=gelu", "d=1e-3", "e=[1, 2]", "f=true", "g=null"]) == [
        (["a", "b"], 1), (["c"], "gelu"), (["d"], "1e-3"), (["e"], [1, 2]), (["f"], True), (["g"], None)]
    base = {"name": "a", "opt": {"lr": 0.1}}
    out = apply_overrides(base, ["opt.lr=0.5", "steps=7", "opt.betas=[0.5, 0.6]"])
    assert base == {"name": "a", "opt": {"lr": 0.1}}  # input untouched
    cfg = from_dict(Cfg, out)
    assert (cfg.steps, cfg.opt.lr, cfg.opt.betas) == (7, 0.5, (0.5, 0.6))


def test_override_errors():
    with pytest.raises(ConfigError, match="must look like key.path=value"):
        parse_overrides(["steps"])
    with pytest.raises(ConfigError, match="name is not a section"):
        apply_overrides({"name": "a"}, ["name.x=1"])
    with pytest.raises(ConfigError, match="steps: expected an integer, got 'abc'"):
        from_dict(Cfg, apply_overrides({"name": "a"}, ["steps=abc"]))


def test_load_yaml_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(ConfigError, match=r"malformed YAML in .*bad.yaml at line \d+"):
        load_yaml(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_yaml(lst)
    tag = tmp_path / "tag.yaml"
    tag.write_text("a: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):  # safe_load: no code tags
        load_yaml(tag)
    ok = tmp_path / "ok.yaml"
    ok.write_text("name: x\nsteps: 3\n")
    assert load_yaml(ok) == {"name": "x", "steps": 3}

"""The GPT, translation and BERT tasks configure the engine's WarmupCosine with the classifiers' keys
(``warmup_steps``, ``total_steps``, ``min_lr_ratio``), and every shipped config keeps the LR it had under the old
keys (``min_lr``, ``decay_steps``) at every step; the old keys give one ConfigError line naming the new one."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

import torchworks.transformer  # noqa: F401  (registers the tasks)
from torchworks.cli.main import main
from torchworks.core.errors import ConfigError
from torchworks.core.registry import TASKS
from torchworks.engine.config import load_run_config
from torchworks.transformer.bert.finetune import BertClassifyTask, BertTagTask
from torchworks.transformer.bert.task import BertPretrainTask
from torchworks.transformer.gpt.task import GPTLMTask
from torchworks.transformer.seq2seq.task import TranslationTask

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# The shipped configs' schedule as it was written with the old keys: (lr, min_lr, warmup_steps, decay_steps).
OLD = {
    "bert_classify_langid": (5e-4, 1e-5, 30, 300),
    "bert_classify_pairs": (5e-4, 1e-5, 100, 2000),
    "bert_classify_pairs_minilm": (5e-5, 1e-6, 40, 800),
    "bert_pretrain_long": (2e-3, 2e-5, 100, 8000),
    "bert_pretrain_small": (2e-3, 2e-5, 100, 1700),
    "bert_tag_case": (1e-3, 2e-5, 50, 400),
    "bert_tag_case_minilm": (8e-5, 1e-6, 20, 250),
    "gpt_bpe": (2e-3, 1e-4, 100, 2000),
    "gpt_char_best": (3e-3, 1e-4, 100, 1800),
    "gpt_char_nanogpt": (1e-3, 1e-4, 100, 2000),
    "tiny_gpt": (3e-3, 3e-4, 10, 150),
    "translate_multi30k": (7e-4, 1e-5, 300, 2100),
}
# The config classes' defaults before the change (lr, min_lr, warmup_steps, decay_steps).
OLD_DEFAULTS = {"gpt_lm": (1e-3, 1e-4, 100, 2000), "translation": (7e-4, 1e-5, 300, 3000),
                "bert_pretrain": (1e-3, 1e-5, 100, 1000), "bert_classify": (5e-4, 1e-5, 50, 500),
                "bert_tag": (5e-4, 1e-5, 50, 500)}
TASK_CLASSES = {"gpt_lm": GPTLMTask, "translation": TranslationTask, "bert_pretrain": BertPretrainTask,
                "bert_classify": BertClassifyTask, "bert_tag": BertTagTask}


def old_lr(step: int, lr: float, min_lr: float, warmup: int, decay: int) -> float:
    """The former LR of these tasks, written out (nanoGPT ``get_lr``; BERT decayed to max(decay, warmup + 1),
    which equals ``decay`` for every shipped config)."""
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    if step > decay:
        return min_lr
    ratio = (step - warmup) / (decay - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def scheduled_lrs(task_name: str, cfg, steps: int) -> list[float]:
    """The LR of steps 0..steps-1 as the task's own ``configure_schedulers`` drives an optimiser."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    (sched,) = TASK_CLASSES[task_name].configure_schedulers(SimpleNamespace(cfg=cfg), [opt])
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_every_family_config_is_listed():
    shipped = {p.stem for p in CONFIGS.glob("*.yaml")
               if (yaml.safe_load(p.read_text()) or {}).get("task", {}).get("name") in TASK_CLASSES}
    assert shipped == set(OLD)


@pytest.mark.parametrize("name", sorted(OLD))
def test_shipped_config_keeps_its_lr_at_every_step(name):
    run, cfg = load_run_config(CONFIGS / f"{name}.yaml")
    lr, min_lr, warmup, decay = OLD[name]
    assert (cfg.lr, cfg.warmup_steps, cfg.total_steps) == (lr, warmup, decay)
    assert cfg.lr * cfg.min_lr_ratio == pytest.approx(min_lr, rel=1e-12)
    steps = decay + 20
    got = scheduled_lrs(run.task["name"], cfg, steps)
    want = [old_lr(k, lr, min_lr, warmup, decay) for k in range(steps)]
    assert got == pytest.approx(want, rel=1e-12, abs=0)
    assert got[warmup] == pytest.approx(lr) and got[-1] == pytest.approx(min_lr)


@pytest.mark.parametrize("task_name", sorted(OLD_DEFAULTS))
def test_defaults_keep_their_schedule(task_name):
    cfg = TASKS.meta(task_name)["config"]()
    lr, min_lr, warmup, decay = OLD_DEFAULTS[task_name]
    assert (cfg.lr, cfg.warmup_steps, cfg.total_steps) == (lr, warmup, decay)
    assert cfg.lr * cfg.min_lr_ratio == pytest.approx(min_lr, rel=1e-12)


@pytest.mark.parametrize("name", ["gpt_char_best", "translate_multi30k", "bert_pretrain_small",
                                  "bert_classify_langid", "bert_tag_case"])
@pytest.mark.parametrize(("old", "new"), [("decay_steps", "task.total_steps"), ("min_lr", "task.min_lr_ratio")])
def test_old_key_names_its_replacement(name, old, new):
    with pytest.raises(ConfigError) as info:
        load_run_config(CONFIGS / f"{name}.yaml", [f"task.{old}=100"])
    message = str(info.value)
    assert "\n" not in message and f"'task.{old}'" in message and new in message, message


def test_cli_old_key_is_one_line_exit_2(tmp_path, capsys):
    data = yaml.safe_load((CONFIGS / "tiny_gpt.yaml").read_text())
    data["task"]["decay_steps"] = data["task"].pop("total_steps")
    data["out_dir"] = str(tmp_path / "run")
    cfg = tmp_path / "old.yaml"
    cfg.write_text(yaml.safe_dump(data))
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'task.decay_steps'" in err and "use task.total_steps" in err, err
    assert not (tmp_path / "run").exists()

"""The ``gpt_lm`` task through the shared engine: overfitting, resume, checkpoint round trip, schedule, data."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import torchworks.transformer  # noqa: F401  (registers gpt_lm)
from torchworks.core.checkpoint import load_checkpoint, save_model
from torchworks.core.errors import ConfigError
from torchworks.engine.run import train
from torchworks.transformer.gpt.data import full_val_loss
from torchworks.transformer.gpt.task import GPTLMConfig, GPTLMTask, load_lm
from torchworks.transformer.gpt.tokenizers import CharTokenizer

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "tiny_gpt.yaml"
VERSE = ("First Citizen: Before we proceed any further, hear me speak.\n"
         "All: Speak, speak.\nFirst Citizen: You are all resolved rather to die than to famish?\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(VERSE * 6, encoding="utf-8")  # ~1,000 characters, periodic: memorisable in a few steps
    return path


def _overrides(corpus: Path, steps: int, **extra: object) -> list[str]:
    base = {"task.text_file": str(corpus), "task.max_chars": "null", "trainer.max_steps": steps,
            "task.total_steps": max(steps, 11), "trainer.eval_every": steps, "trainer.checkpoint_every": steps}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def _losses(metrics_csv: Path) -> dict[int, float]:
    with open(metrics_csv) as fh:
        return {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(fh) if r.get("train/loss")}


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_gpt")
    return train(CONFIG, _overrides(corpus, 120), out_dir=out)


def test_overfits_tiny_corpus_through_engine(trained):
    first = _losses(trained.metrics_csv)
    assert first[10] > 2.0  # starts near ln(V) ~ 3.3
    assert trained.metrics["train/loss"] < 0.35, trained.metrics
    assert trained.metrics["val/loss"] < 1.0, trained.metrics  # periodic text: the held-out tail is predictable
    assert trained.last_checkpoint is not None and trained.curves_png is None  # plots off in tiny_gpt.yaml


def test_uncapped_validation_is_full_val_loss(trained):
    task = trained.task
    model = task.model
    expected = full_val_loss(model, task.val_tokens, model.config.block_size, batch_size=7)
    assert trained.metrics["val/loss"] == pytest.approx(expected, rel=1e-5)


def test_checkpoint_rebuilds_model_and_tokenizer_offline(trained, tmp_path):
    model, tok = load_lm(trained.last_checkpoint)
    task = trained.task
    assert isinstance(tok, CharTokenizer) and tok.chars == task.tokenizer.chars
    idx = torch.tensor([tok.encode("First Citizen: Before we")])
    task.model.eval()
    ref, _ = task.model(idx, all_logits=True)
    got, _ = model(idx, all_logits=True)
    assert torch.equal(got, ref)
    # The export a model card ships: save_model with the tokenizer JSON inside, then the same logits again.
    path = save_model(tmp_path / "lm.ckpt", model, spec=task.export_model()[1], extra={"tokenizer": tok.to_json()})
    model2, tok2 = load_lm(path)
    assert torch.equal(model2(idx, all_logits=True)[0], ref) and tok2.chars == tok.chars
    state = load_checkpoint(trained.last_checkpoint)
    assert state["model_spec"]["kwargs"]["vocab_size"] == tok.vocab_size


def test_resume_gives_identical_losses(corpus, tmp_path):
    extra = {"trainer.log_every": 1, "trainer.eval_every": 0, "task.total_steps": 12, "task.warmup_steps": 3}
    full = train(CONFIG, _overrides(corpus, 12, **extra), out_dir=tmp_path / "full")
    half = train(CONFIG, _overrides(corpus, 6, **extra), out_dir=tmp_path / "half")
    resumed = train(CONFIG, _overrides(corpus, 12, **extra), out_dir=tmp_path / "half", resume=half.last_checkpoint)
    a, b = _losses(full.metrics_csv), _losses(resumed.metrics_csv)
    assert [a[s] for s in range(7, 13)] == [b[s] for s in range(7, 13)]


def test_bpe_task_and_optimizer_groups(corpus):
    cfg = GPTLMConfig(model="gpt_char_tiny", text_file=str(corpus), tokenizer="bpe", bpe_vocab_size=300,
                      model_args={"block_size": 16}, decay_embeddings=False)
    task = GPTLMTask(cfg)
    assert task.tokenizer.vocab_size == task.model.config.vocab_size <= 300
    assert task.tokenizer.decode(task.tokenizer.encode(VERSE)) == VERSE
    x, y = task.train_dataset()[3]
    assert torch.equal(x[1:], y[:-1])
    opt = task.configure_optimizers()
    decayed = {id(p) for p in opt.param_groups[0]["params"]}
    assert id(task.model.tok_emb.weight) not in decayed and opt.param_groups[0]["weight_decay"] == 0.1
    assert opt.defaults["betas"] == (0.9, 0.99)
    # A fresh task (possibly another tokenizer) adopts the tokenizer stored with the weights.
    other = GPTLMTask(cfg)
    other.load_state_dict(task.state_dict())
    assert other.tokenizer.to_json() == task.tokenizer.to_json()


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="vocab_size"):
        GPTLMConfig(model_args={"vocab_size": 10})
    with pytest.raises(ValueError, match="min_lr_ratio"):
        GPTLMConfig(min_lr_ratio=1.5)
    with pytest.raises(ValueError, match="total_steps 0 .no decay. or > warmup_steps"):
        GPTLMConfig(warmup_steps=10, total_steps=10)
    with pytest.raises(ConfigError, match="tokenizer"):
        train(CONFIG, ["task.tokenizer=words"], out_dir="/nonexistent/never-written")
    with pytest.raises(FileNotFoundError, match="text_file"):
        GPTLMTask(GPTLMConfig(text_file="/nonexistent/corpus.txt"))


@pytest.mark.parametrize("name", ["tiny_gpt", "gpt_char_nanogpt", "gpt_char_best", "gpt_bpe"])
def test_shipped_configs_load(name):
    from torchworks.engine.config import load_run_config

    run, cfg = load_run_config(CONFIG.parent / f"{name}.yaml")
    assert run.task["name"] == "gpt_lm" and isinstance(cfg, GPTLMConfig)
    assert cfg.total_steps == run.trainer.max_steps or name == "tiny_gpt"

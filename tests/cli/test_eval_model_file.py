"""``torchworks eval CONFIG --ckpt MODEL.safetensors``: a ``save_model`` file scores like the training checkpoint
it came from, and a file that does not fit the config's task is one line, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchworks.cli.main import main
from torchworks.core.checkpoint import build_model, load_checkpoint, save_checkpoint, save_model

ROOT = Path(__file__).resolve().parents[2]
SEQ = ROOT / "src" / "torchworks" / "sequence" / "pretrained"
TEXT = "".join(f"line {i}: to be, or not to be, that is the question.\n" for i in range(80))


def _eval(capsys, *argv):
    code = main(["eval", *argv])
    out, err = capsys.readouterr()
    return code, {ln.split()[0]: float(ln.split()[1]) for ln in out.splitlines()}, err


def _one_line(code, err, *fragments):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def gpt_run(tmp_path):
    """A 3-step tiny GPT run on a text file: its training checkpoint and the same weights as a model file."""
    from torchworks.engine import run as engine_run
    from torchworks.transformer.gpt.task import load_lm

    text = tmp_path / "text.txt"
    text.write_text(TEXT)
    sets = [f"task.text_file={text}", "trainer.max_steps=3", "trainer.eval_every=0", "trainer.plots=false",
            "trainer.checkpoint_every=0"]
    result = engine_run.train(ROOT / "configs" / "tiny_gpt.yaml", overrides=sets, out_dir=tmp_path / "run")
    ckpt = result.last_checkpoint
    model, tokenizer = load_lm(ckpt)
    exported = save_model(tmp_path / "gpt.safetensors", model, extra={"tokenizer": tokenizer.to_json()})
    return sets, ckpt, exported, text


def test_model_file_scores_exactly_like_its_training_checkpoint(capsys, gpt_run):
    sets, ckpt, exported, _ = gpt_run
    args = [str(ROOT / "configs" / "tiny_gpt.yaml"), "--threads", "1", *[a for s in sets for a in ("--set", s)]]
    code_a, from_ckpt, _ = _eval(capsys, *args, "--ckpt", str(ckpt))
    code_b, from_file, _ = _eval(capsys, *args, "--ckpt", str(exported))
    assert code_a == code_b == 0 and set(from_file) == {"val/loss"}
    assert from_file == from_ckpt and 0 < from_file["val/loss"] < 5  # a few steps in: below ln(vocab) ~ 3.3 + noise


def test_only_rank_zero_prints_the_metrics(capsys, gpt_run, monkeypatch):
    """Every process of a multi-process evaluation holds the same reduced metrics: rank 0 prints them once."""
    from torchworks.cli import train_cmd

    sets, ckpt, _, _ = gpt_run
    args = [str(ROOT / "configs" / "tiny_gpt.yaml"), "--threads", "1", *[a for s in sets for a in ("--set", s)]]
    monkeypatch.setattr(train_cmd, "_rank", lambda: 1)
    code, metrics, _ = _eval(capsys, *args, "--ckpt", str(ckpt))
    assert code == 0 and metrics == {}
    monkeypatch.setattr(train_cmd, "_rank", lambda: 0)
    code, metrics, _ = _eval(capsys, *args, "--ckpt", str(ckpt))
    assert code == 0 and set(metrics) == {"val/loss"}


def test_model_file_with_another_tokenizer_is_refused(capsys, gpt_run, tmp_path):
    sets, _, exported, _ = gpt_run
    state = load_checkpoint(exported)
    state["tokenizer"] = state["tokenizer"].replace('"a"', '"A"')  # another vocabulary of the same size
    save_checkpoint(tmp_path / "other.safetensors", state)
    code, _, err = _eval(capsys, str(ROOT / "configs" / "tiny_gpt.yaml"), "--ckpt", str(tmp_path / "other.safetensors"),
                         *[a for s in sets for a in ("--set", s)])
    _one_line(code, err, "carries another tokenizer than task 'gpt_lm' built from this config")


def test_model_of_another_kind_names_both_models(capsys):
    code, _, err = _eval(capsys, str(SEQ / "counter_lstm.yaml"), "--ckpt", str(SEQ / "melbourne_temp_lstm.safetensors"))
    _one_line(code, err, "holds model 'seq_forecaster' but task 'seq_memory' of this config builds 'seq_lstm'")


def test_model_of_another_size_explains_the_mismatch(capsys):
    code, _, err = _eval(capsys, str(SEQ / "counter_lstm.yaml"), "--ckpt", str(SEQ / "ab_memory_lstm.safetensors"))
    _one_line(code, err, "ab_memory_lstm.safetensors does not fit", "wrong shape")


def test_a_file_with_neither_training_state_nor_model_is_refused(capsys, tmp_path):
    save_checkpoint(tmp_path / "x.ckpt", {"step": 3})
    code, _, err = _eval(capsys, str(SEQ / "counter_lstm.yaml"), "--ckpt", str(tmp_path / "x.ckpt"))
    _one_line(code, err, "is not a training checkpoint")


def test_model_named_differently_suggests_the_override(capsys, tmp_path):
    save_model(tmp_path / "r8.safetensors", build_model("resnet8", num_classes=10))
    code, _, err = _eval(capsys, str(ROOT / "configs" / "cifar_resnet56.yaml"), "--ckpt",
                         str(tmp_path / "r8.safetensors"), "--set", "task.dataset=synthetic")
    _one_line(code, err, "holds model 'resnet8'", "builds 'resnet56'", "add --set task.model=resnet8")

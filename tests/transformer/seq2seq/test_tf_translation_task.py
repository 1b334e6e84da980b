"""The ``translation`` task on the engine, bucketed batches, the exported translator, ``torchworks translate``."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
import torch

import torchworks.transformer.seq2seq.task  # noqa: F401  (registers the task)
from torchworks.cli.main import main
from torchworks.core.checkpoint import load_checkpoint, save_model
from torchworks.core.errors import CheckpointError
from torchworks.engine.run import train
from torchworks.transformer.seq2seq.data import (
    DEFAULT_TRANSLATOR,
    LengthBucketSampler,
    TranslationDataset,
    TranslationTokenizer,
    corpus_bleu,
    export_translator,
    load_multi30k,
    load_translator,
    translate,
)
from torchworks.transformer.seq2seq.task import BucketedBatches, TranslationConfig

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "translate_multi30k.yaml"
TINY = {"task.max_train_pairs": 64, "task.max_val_pairs": 32, "task.vocab_size": 400, "task.batch_sentences": 16,
        "task.model_args": "{dim: 32, num_heads: 2, ff_dim: 64, num_encoder_layers: 1, num_decoder_layers: 1, "
                           "dropout: 0.0}",
        "task.lr": 0.003, "task.warmup_steps": 5, "trainer.threads": 1, "trainer.progress": "false",
        "trainer.plots": "false"}


def _multi30k_or_skip():
    try:
        return load_multi30k("val")
    except Exception as exc:  # not on this machine
        pytest.skip(f"Multi30k not available: {exc}")


def _overrides(steps: int, **extra) -> list[str]:
    values = {**TINY, "trainer.max_steps": steps, "task.total_steps": steps, "trainer.eval_every": steps,
              "trainer.checkpoint_every": steps, **extra}
    return [f"{k}={v}" for k, v in values.items()]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    _multi30k_or_skip()
    out = tmp_path_factory.mktemp("translate_run")
    return train(CONFIG, _overrides(60), out_dir=out, overwrite=True)


def test_bucketed_batches_cover_every_pair_once_and_pad_less_than_random_batches():
    pairs = _multi30k_or_skip()
    tok = TranslationTokenizer.train([s for p in pairs for s in p], vocab_size=500)
    data = TranslationDataset(pairs, tok, max_len=64)
    bucketed = BucketedBatches(data, batch_sentences=32, seed=3)
    flat = sorted(i for b in bucketed.batches for i in b)
    assert flat == list(range(len(pairs)))
    assert max(len(b) for b in bucketed.batches) <= 32
    assert [data.src[i] for i in bucketed.batches[0]] == [s for s, _ in bucketed[0]]
    order = list(range(len(pairs)))
    random.Random(0).shuffle(order)
    randomised = BucketedBatches(data, batch_sentences=32)
    randomised.batches = [order[i : i + 32] for i in range(0, len(order), 32)]
    assert bucketed.padding_fraction() < 0.6 * randomised.padding_fraction()
    capped = BucketedBatches(data, batch_sentences=512, batch_tokens=400)
    assert all(len(b) * max(data.lengths[i] for i in b) <= 400 for b in capped.batches)
    assert LengthBucketSampler(data.lengths, 32, seed=3)._batches() == bucketed.batches  # same plan, same seed


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="min_lr_ratio"):
        TranslationConfig(min_lr_ratio=-0.1)
    with pytest.raises(ValueError, match="set from the tokenizer"):
        TranslationConfig(model_args={"src_vocab_size": 10})
    with pytest.raises(ValueError, match="label_smoothing"):
        TranslationConfig(label_smoothing=1.0)


def test_training_lowers_loss_and_records_wall_time(tiny_run):
    with open(tiny_run.metrics_csv) as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("train/loss")]
    first, last = float(rows[0]["train/loss"]), float(rows[-1]["train/loss"])
    assert last < first - 1.0, (first, last)
    seconds = [float(r["train/train_seconds"]) for r in rows]
    assert seconds == sorted(seconds) and seconds[-1] > 0
    state = load_checkpoint(tiny_run.last_checkpoint)
    assert float(state["task"]["train_seconds"]) >= seconds[-1]


def test_checkpoint_and_fp16_export_translate_like_the_trained_model(tiny_run, tmp_path):
    task = tiny_run.task.eval()
    src = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee."]
    expected = translate(task.model, task.tokenizer, src, beam_size=1)
    model, tok = load_translator(tiny_run.last_checkpoint)
    assert translate(model, tok, src, beam_size=1) == expected
    path = export_translator(tmp_path / "t.safetensors", task.model, task.tokenizer, extra={"bleu": 1.5})
    assert (tmp_path / "t.tokenizer.json").read_text(encoding="utf-8") == task.tokenizer.tokenizer.to_str()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.safetensors", "t.tokenizer.json"]  # no temporaries
    half = load_checkpoint(path)["model"]
    assert all(v.dtype == torch.float16 for v in half.values() if v.is_floating_point())
    model16, tok16 = load_translator(path)
    assert model16.tgt_emb is model16.src_emb
    assert model16.out_proj.weight.data_ptr() == model16.tgt_emb.weight.data_ptr()
    ids = torch.tensor([tok.encode(src[0]) + [tok.eos_id]])
    tgt = torch.tensor([[tok.bos_id] + tok.encode("A man rides a bike.")])
    with torch.no_grad():
        ref, got = task.model(ids, tgt), model16(ids, tgt)
    assert (ref - got).abs().max() < 2e-2  # float16 weights: about 3 significant digits
    assert translate(model16, tok16, src, beam_size=1) == expected


def test_load_translator_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_translator(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        load_translator(tmp_path / "junk.safetensors")
    from torchworks.core.checkpoint import build_model

    gpt = build_model("gpt_char_small", vocab_size=20)
    save_model(tmp_path / "gpt.safetensors", gpt, extra={"tokenizer": "{}"})
    with pytest.raises(CheckpointError, match="not an encoder-decoder"):
        load_translator(tmp_path / "gpt.safetensors")


def test_translate_cli(tiny_run, tmp_path, capsys):
    task = tiny_run.task.eval()
    path = export_translator(tmp_path / "t.safetensors", task.model, task.tokenizer, half=False)
    src = ["Ein Mann fährt Fahrrad.", "Ein Hund läuft."]
    expected = translate(task.model, task.tokenizer, src, beam_size=2)
    png = tmp_path / "att" / "cross.png"
    assert main(["translate", *src, "--ckpt", str(path), "--beam", "2", "--attention-png", str(png)]) == 0
    assert capsys.readouterr().out.splitlines() == expected
    assert png.stat().st_size > 2000 and png.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in png.parent.iterdir()] == ["cross.png"]  # written atomically: no temporary left
    lines = tmp_path / "in.de"
    lines.write_text("\n".join(src) + "\n", encoding="utf-8")
    assert main(["translate", "--file", str(lines), "--ckpt", str(path), "--beam", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == translate(task.model, task.tokenizer, src, beam_size=1)
    assert main(["translate", "--ckpt", str(path)]) == 2
    assert "nothing to translate" in capsys.readouterr().err
    assert main(["translate", "x", "--ckpt", str(path), "--beam", "0"]) == 2
    assert "--beam" in capsys.readouterr().err
    assert main(["translate", "x", "--ckpt", str(tmp_path / "nope.safetensors")]) == 2
    assert "not found" in capsys.readouterr().err


def test_cross_attention_rows_are_distributions(tiny_run):
    task = tiny_run.task.eval()
    tok = task.tokenizer
    src = torch.tensor([tok.encode("Ein Mann fährt Fahrrad.") + [tok.eos_id]])
    tgt = torch.tensor([[tok.bos_id] + tok.encode("A man rides a bike.")])
    maps = task.model.cross_attention_maps(src, tgt)
    assert len(maps) == 1 and maps[0].shape == (1, 2, tgt.shape[1], src.shape[1])
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(1, 2, tgt.shape[1]))


@pytest.mark.skipif(not DEFAULT_TRANSLATOR.is_file(), reason="the de->en model is not shipped in this checkout")
def test_shipped_translator_translates_test2016_sentences():
    model, tok = load_translator()
    pairs = load_multi30k("test2016")[:100] if _multi30k_or_skip() else []
    hyps = translate(model, tok, [s for s, _ in pairs], beam_size=1)
    assert corpus_bleu(hyps, [t for _, t in pairs]) > 25.0
    out = translate(model, tok, ["Ein Mann fährt Fahrrad."], beam_size=4)[0].lower()
    assert "man" in out and ("bike" in out or "bicycle" in out), out

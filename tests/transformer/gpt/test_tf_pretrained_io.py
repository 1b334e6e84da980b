"""Pretrained GPTs from outside: a Hugging Face GPT-2 folder and a nanoGPT ``ckpt.pt`` (both built here, offline),
through the library, ``torchworks generate`` and the ``gpt_lm`` task's ``init_from``; bad input is one line."""

from __future__ import annotations

import json
import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from torchworks.cli.main import main
from torchworks.core.errors import CheckpointError
from torchworks.transformer.gpt.hf import load_hf_folder
from torchworks.transformer.gpt.nanogpt import load_nanogpt, read_meta_pkl
from torchworks.transformer.gpt.sources import load_lm_source
from torchworks.transformer.gpt.tokenizers import BPETokenizer, CharTokenizer

transformers = pytest.importorskip("transformers")

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n") * 3
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def _random_hf(vocab: int, bias: bool = True, activation: str = "gelu_new"):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=vocab, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                                  activation_function=activation, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                  bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_bias = name.endswith("bias")
            if is_bias and not bias:
                p.zero_()  # nanoGPT's bias=False: zero biases in HF compute the same thing
            elif is_bias or "ln_" in name or "wte" in name or "wpe" in name:
                p.add_(torch.randn_like(p) * (0.3 if "wte" in name or "wpe" in name else 0.2))
    return model


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory) -> Path:
    """``save_pretrained`` output of a random tiny GPT-2 plus its byte-level BPE tokenizer.json."""
    folder = tmp_path_factory.mktemp("gpt2")
    tok = BPETokenizer.train(TEXT, vocab_size=300, min_frequency=1)
    _random_hf(tok.vocab_size).save_pretrained(folder)
    tok.save(folder / "tokenizer.json")
    return folder


def _hf_logits(folder: Path, idx: torch.Tensor) -> torch.Tensor:
    hf = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    with torch.no_grad():
        return hf(idx).logits


@pytest.mark.parametrize("layout", ["safetensors", "bin", "vocab_merges"])
def test_hf_folder_logits_match_transformers(hf_folder, tmp_path, layout):
    folder = hf_folder
    if layout != "safetensors":  # the same model written the other ways a folder can hold it
        folder = tmp_path / layout
        hf = transformers.GPT2LMHeadModel.from_pretrained(hf_folder)
        if layout == "bin":  # what transformers 4 wrote by default (5 writes safetensors only): a pickled state dict
            hf.config.save_pretrained(folder)
            torch.save(hf.state_dict(), folder / "pytorch_model.bin")
        else:
            hf.save_pretrained(folder)
        tok = BPETokenizer.load(hf_folder / "tokenizer.json")
        if layout == "vocab_merges":
            tok.tokenizer.model.save(str(folder))  # vocab.json + merges.txt, no tokenizer.json
        else:
            tok.save(folder / "tokenizer.json")
        assert (folder / "pytorch_model.bin").is_file() == (layout == "bin")
    model, tok = load_hf_folder(folder)
    ids = tok.encode("Speak, speak. You are all resolved")
    assert tok.decode(ids) == "Speak, speak. You are all resolved"
    idx = torch.tensor([ids])
    ref = _hf_logits(hf_folder, idx)
    with torch.no_grad():
        out, _ = model(idx, all_logits=True)
    assert ref.abs().max() > 0.5 and (out - ref).abs().max().item() < 1e-5


def _nanogpt_ckpt(folder: Path, bias: bool, prefix: str = "", vocab: int | None = None):
    """A nanoGPT ``train.py`` checkpoint whose weights are a random HF GPT-2 with exact GELU (nanoGPT's model)."""
    tok = CharTokenizer.from_text(TEXT)
    vocab = vocab or tok.vocab_size
    hf = _random_hf(vocab, bias=bias, activation="gelu")
    state = {}
    for k, v in hf.state_dict().items():
        if not bias and k.endswith("bias"):
            continue
        state[prefix + k] = v.t().contiguous() if k.endswith(_CONV1D) else v  # Conv1D (in, out) -> nn.Linear
    state[prefix + "transformer.h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 32, 32))  # non-flash mask buffer
    folder.mkdir(parents=True, exist_ok=True)
    model_args = dict(n_layer=2, n_head=4, n_embd=32, block_size=32, bias=bias, vocab_size=vocab, dropout=0.0)
    torch.save({"model": state, "model_args": model_args, "iter_num": 5, "best_val_loss": torch.tensor(2.5),
                "config": {"dataset": "shakespeare_char", "learning_rate": 1e-3}}, folder / "ckpt.pt")
    meta = {"vocab_size": tok.vocab_size, "itos": dict(enumerate(tok.chars)), "stoi": tok.stoi}
    (folder / "meta.pkl").write_bytes(pickle.dumps(meta))
    return hf, tok


@pytest.mark.parametrize(("bias", "prefix"), [(True, ""), (False, ""), (False, "_orig_mod.")])
def test_nanogpt_checkpoint_logits_match_source(tmp_path, bias, prefix):
    hf, tok = _nanogpt_ckpt(tmp_path / "out", bias, prefix)
    model, loaded_tok = load_nanogpt(tmp_path / "out" / "ckpt.pt")
    assert loaded_tok.chars == tok.chars and model.config.bias is bias and model.config.activation == "gelu"
    idx = torch.tensor([tok.encode("First Citizen:\nSpeak")])
    with torch.no_grad():
        ref = hf(idx).logits
        out, _ = model(idx, all_logits=True)
    assert ref.abs().max() > 0.5 and (out - ref).abs().max().item() < 1e-5


def test_nanogpt_padded_vocab_is_cropped_to_the_tokenizer(tmp_path):
    hf, tok = _nanogpt_ckpt(tmp_path / "out", True, vocab=64)  # nanoGPT rounds GPT-2's vocab up to a multiple of 64
    model, _ = load_nanogpt(tmp_path / "out" / "ckpt.pt")
    assert model.config.vocab_size == tok.vocab_size < 64
    idx = torch.tensor([tok.encode("All:\nSpeak")])
    with torch.no_grad():
        ref = hf(idx).logits[..., : tok.vocab_size]
        out, _ = model(idx, all_logits=True)
    assert (out - ref).abs().max().item() < 1e-5


def test_generate_cli_with_nanogpt_and_hf(tmp_path, hf_folder, capsys):
    _nanogpt_ckpt(tmp_path / "out", False)
    argv = ["generate", "--ckpt", str(tmp_path / "out" / "ckpt.pt"), "--prompt", "All:", "--max-new-tokens", "40"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert first.startswith("All:") and len(first) == len("All:") + 40 + 1
    assert main([*argv, "--no-cache"]) == 0 and capsys.readouterr().out == first  # 44 > block 32: jumps too
    assert main(["generate", "--from-pretrained", str(hf_folder), "--prompt", "Speak", "--max-new-tokens", "20",
                 "--repetition-penalty", "1.3", "--no-repeat-ngram", "3"]) == 0
    assert capsys.readouterr().out.startswith("Speak")
    (tmp_path / "out" / "meta.pkl").rename(tmp_path / "meta_elsewhere.pkl")
    assert main(argv) == 2
    assert "pass --tokenizer" in capsys.readouterr().err
    assert main([*argv, "--tokenizer", str(tmp_path / "meta_elsewhere.pkl")]) == 0
    assert capsys.readouterr().out == first


def _one_line_exit_2(argv, capsys, *needles):
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def test_bad_pretrained_input_is_one_line_exit_2(tmp_path, hf_folder, capsys):
    gen = ["generate", "--max-new-tokens", "5", "--prompt", "Speak"]
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_exit_2([*gen, "--from-pretrained", str(empty)], capsys, "no config.json")
    llama = tmp_path / "llama"
    llama.mkdir()
    (llama / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": 10}))
    _one_line_exit_2([*gen, "--from-pretrained", str(llama)], capsys, "'llama'", "not GPT-2")
    from safetensors.torch import load_file, save_file

    weights = load_file(hf_folder / "model.safetensors")
    for name, change in (("missing", lambda w: w.pop("transformer.h.1.mlp.c_fc.weight")),
                         ("extra", lambda w: w.update({"transformer.h.2.ln_1.weight": torch.ones(32)}))):
        broken = tmp_path / name
        broken.mkdir()
        for f in ("config.json", "tokenizer.json"):
            (broken / f).write_bytes((hf_folder / f).read_bytes())
        w = dict(weights)
        change(w)
        save_file(w, broken / "model.safetensors")
        _one_line_exit_2([*gen, "--from-pretrained", str(broken)], capsys, "h.1.mlp.c_fc.weight" if
                         name == "missing" else "h.2.ln_1.weight")
    other = tmp_path / "other_tok"
    other.mkdir()
    for f in ("config.json", "model.safetensors"):
        (other / f).write_bytes((hf_folder / f).read_bytes())
    BPETokenizer.train(TEXT, vocab_size=280, min_frequency=1).save(other / "tokenizer.json")
    _one_line_exit_2([*gen, "--from-pretrained", str(other)], capsys, "tokens but the model's vocab_size is")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_bytes((hf_folder / "config.json").read_bytes())
    (pickled / "tokenizer.json").write_bytes((hf_folder / "tokenizer.json").read_bytes())
    torch.save({"w": OrderedDict(a=1), "code": Path("x")}, pickled / "pytorch_model.bin")  # needs a class to load
    _one_line_exit_2([*gen, "--from-pretrained", str(pickled)], capsys, "weights_only")
    _nanogpt_ckpt(tmp_path / "nano", True)
    ckpt = tmp_path / "nano" / "ckpt.pt"
    state = torch.load(ckpt, weights_only=True)
    state["model"].pop("transformer.ln_f.bias")
    torch.save(state, tmp_path / "nano" / "broken.pt")
    _one_line_exit_2([*gen[:-2], "--ckpt", str(tmp_path / "nano" / "broken.pt")], capsys, "transformer.ln_f.bias")
    (tmp_path / "nano" / "evil.pkl").write_bytes(pickle.dumps(OrderedDict(itos={0: "a"})))
    _one_line_exit_2([*gen[:-2], "--ckpt", str(ckpt), "--tokenizer", str(tmp_path / "nano" / "evil.pkl")], capsys,
                     "refusing to load collections.OrderedDict")


def test_meta_pkl_reader_needs_plain_data(tmp_path):
    path = tmp_path / "meta.pkl"
    path.write_bytes(pickle.dumps({"itos": {0: "a", 1: "b"}, "stoi": {"a": 0, "b": 1}}))
    assert read_meta_pkl(path).chars == ["a", "b"]
    path.write_bytes(pickle.dumps({"itos": {0: "a", 2: "b"}}))
    with pytest.raises(CheckpointError, match="ids 0..N-1"):
        read_meta_pkl(path)


def test_source_dispatch_and_tokenizer_override(tmp_path, hf_folder):
    model, tok = load_lm_source(hf_folder)
    assert model.config.vocab_size == tok.vocab_size and not model.training
    with pytest.raises(FileNotFoundError):
        load_lm_source(tmp_path / "nothing.pt")
    _nanogpt_ckpt(tmp_path / "nano", True)
    small = CharTokenizer(list("abc"))
    small.save(tmp_path / "abc.json")
    model, tok = load_lm_source(tmp_path / "nano" / "ckpt.pt", tokenizer=tmp_path / "abc.json")
    assert tok.vocab_size == 3 == model.config.vocab_size  # a smaller tokenizer crops the vocabulary rows


def test_init_from_fine_tunes_the_pretrained_model(tmp_path, hf_folder):
    from torchworks.transformer.gpt.data import full_val_loss
    from torchworks.transformer.gpt.task import GPTLMConfig, GPTLMTask

    text = tmp_path / "corpus.txt"
    text.write_text(TEXT * 4)
    task = GPTLMTask(GPTLMConfig(init_from=str(hf_folder), text_file=str(text), model_args={"block_size": 16}))
    source, tok = load_hf_folder(hf_folder)
    assert task.tokenizer.to_json() == tok.to_json() and task.model.config.block_size == 16
    with torch.no_grad():
        for name, p in task.model.state_dict().items():
            ref = source.state_dict()[name]
            assert torch.equal(p, ref[:16] if name == "pos_emb.weight" else ref), name
    loss = full_val_loss(task.model.eval(), task.val_tokens, 16)
    assert 0 < loss < 20
    name, spec = task.export_model()[1]["name"], task.export_model()[1]
    from torchworks.core.checkpoint import build_model

    rebuilt = build_model(name, **spec["kwargs"])
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in task.model.parameters())
    with pytest.raises(ValueError, match="may only set"):
        GPTLMConfig(init_from=str(hf_folder), model_args={"n_layer": 3})
    with pytest.raises(ValueError, match="block_size must be in"):
        GPTLMTask(GPTLMConfig(init_from=str(hf_folder), text_file=str(text), model_args={"block_size": 64}))


def test_init_from_trains_through_the_engine_and_reloads(tmp_path, hf_folder):
    import csv

    from torchworks.engine.run import train
    from torchworks.transformer.gpt.sources import load_lm

    text = tmp_path / "corpus.txt"
    text.write_text(TEXT * 4)
    config = Path(__file__).resolve().parents[3] / "configs" / "tiny_gpt.yaml"
    overrides = [f"task.init_from={hf_folder}", f"task.text_file={text}", "task.max_chars=null",
                 "trainer.max_steps=30", "task.total_steps=30", "trainer.eval_every=30", "trainer.log_every=5",
                 "trainer.checkpoint_every=30"]
    result = train(config, overrides, out_dir=tmp_path / "run")
    with open(result.metrics_csv) as fh:
        losses = [float(r["train/loss"]) for r in csv.DictReader(fh) if r.get("train/loss")]
    assert losses[-1] < losses[0] - 0.5  # fine-tuning from the random "pretrained" GPT-2 learns the corpus
    model, tok = load_lm(result.last_checkpoint)  # the checkpoint alone rebuilds the model and GPT-2's tokenizer
    source_tok = BPETokenizer.load(hf_folder / "tokenizer.json")
    assert tok.to_json() == source_tok.to_json() and model.config.block_size == 32
    idx = torch.tensor([tok.encode("Speak, speak.")])
    with torch.no_grad():
        assert torch.allclose(model(idx)[0], result.task.model.eval()(idx)[0], atol=1e-6)


def test_pickle_sniffing_tells_safetensors_with_a_0x80_header_length_from_a_pickle(tmp_path):
    """A safetensors file whose 8-byte header length starts with byte 0x80 (about 1 in 256) is not a pickle; a
    protocol-2..5 pickle and a torch zip are."""
    from safetensors.torch import save_file

    from torchworks.transformer.gpt.nanogpt import is_torch_pickle

    st = None
    for n in range(1, 400):  # metadata of growing length until the header length's low byte is 0x80
        path = tmp_path / f"w{n}.safetensors"
        save_file({"w": torch.zeros(2)}, str(path), metadata={"pad": "x" * n})
        if path.read_bytes()[0] == 0x80:
            st = path
            break
    assert st is not None
    assert not is_torch_pickle(st)  # the old sniffing (first byte 0x80) called it a pickle
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    zipped = tmp_path / "zip.pt"
    torch.save({"a": torch.zeros(1)}, zipped)
    assert is_torch_pickle(raw) and is_torch_pickle(zipped)

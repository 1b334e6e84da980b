"""``torchworks generate`` and ``torchworks transformer attention`` (offline, one line per user error)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from torchworks.cli.main import main
from torchworks.core.checkpoint import build_model, save_model
from torchworks.transformer.gpt.tokenizers import CharTokenizer
from torchworks.transformer.pretrained import default_checkpoint, load_pretrained

TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\nJULIET: Ay me!\n"


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A random tiny GPT exported like the shipped model (save_model + tokenizer JSON inside)."""
    torch.manual_seed(0)
    tok = CharTokenizer.from_text(TEXT)
    kwargs = {"vocab_size": tok.vocab_size, "block_size": 16}
    model = build_model("gpt_char_tiny", **kwargs)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    return save_model(path, model, extra={"tokenizer": tok.to_json()})


def test_generate_streams_reproducibly(tiny_ckpt, capsys):
    argv = ["generate", "--ckpt", str(tiny_ckpt), "--prompt", "ROMEO:", "--max-new-tokens", "30", "--seed", "3"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert first.startswith("ROMEO:") and len(first) == len("ROMEO:") + 30 + 1  # one char per token + newline
    assert main(argv) == 0
    assert capsys.readouterr().out == first
    assert main([*argv, "--no-cache"]) == 0  # the KV cache changes nothing but speed
    assert capsys.readouterr().out == first


def test_generate_stop_string_is_never_printed(tiny_ckpt, capsys):
    base = ["generate", "--ckpt", str(tiny_ckpt), "--prompt", "ROMEO:", "--max-new-tokens", "60", "--seed", "1",
            "--temperature", "1.5", "--top-k", "0", "--top-p", "1"]
    assert main(base) == 0
    full = capsys.readouterr().out[len("ROMEO:"):-1]
    stop = next(c for c in full[5:] if c.strip())  # a character that does appear after a few tokens
    assert main([*base, "--stop", stop]) == 0
    cut = capsys.readouterr().out[len("ROMEO:"):-1]
    assert stop not in cut and full.startswith(cut) and full[len(cut)] == stop


def test_unknown_characters_one_line_exit_2(tiny_ckpt, capsys):
    assert main(["generate", "--ckpt", str(tiny_ckpt), "--prompt", "ROMEO: \u00e9\u00e9 {"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing printed before the error
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "'\u00e9'" in err and "'{'" in err and "not in the vocabulary" in err


def test_long_prompt_slides_with_warning(tiny_ckpt, capsys):
    assert main(["generate", "--ckpt", str(tiny_ckpt), "--prompt", "ROMEO: " * 5, "--max-new-tokens", "5"]) == 0
    captured = capsys.readouterr()
    assert "exceeds block_size 16" in captured.err and "warning" in captured.err


def test_bad_checkpoints_one_line_exit_2(tmp_path, capsys):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint at all")
    assert main(["generate", "--ckpt", str(junk)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "checkpoint" in err
    torch.save({"model": {}}, tmp_path / "ckpt.pt")  # a torch.save file without nanoGPT's model_args
    assert main(["generate", "--ckpt", str(tmp_path / "ckpt.pt")]) == 2
    assert "torch.save file but not a nanoGPT checkpoint" in capsys.readouterr().err
    assert main(["generate", "--ckpt", str(tmp_path / "missing.ckpt")]) == 2
    assert "not found" in capsys.readouterr().err
    bare = save_model(tmp_path / "bare.ckpt", build_model("gpt_char_tiny"))  # a model but no tokenizer
    assert main(["generate", "--ckpt", str(bare)]) == 2
    assert "no tokenizer" in capsys.readouterr().err


def test_attention_png(tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "attn.png"
    assert main(["transformer", "attention", "--ckpt", str(tiny_ckpt), "--text", "ROMEO: soft", "--out",
                 str(out)]) == 0
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
    assert "2 layers x 2 heads, 11 tokens" in capsys.readouterr().out


def test_shipped_model_generates_offline(capsys):
    if not default_checkpoint().is_file():
        pytest.skip("shipped checkpoint not built yet (benchmarks/transformer/export_pretrained.py)")
    model, tok = load_pretrained()
    assert model.num_params() < 1_500_000 and default_checkpoint().stat().st_size < 5_000_000
    assert main(["generate", "--prompt", "ROMEO:", "--max-new-tokens", "40", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ROMEO:") and len(out) > 40


def test_cli_module_imports_only_stdlib():
    src = Path(__file__).resolve().parents[2] / "src/torchworks/cli/transformer_cmd.py"
    top = [n for n in ast.parse(src.read_text()).body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = {(n.module if isinstance(n, ast.ImportFrom) else n.names[0].name).split(".")[0] for n in top}
    assert names <= {"__future__", "argparse", "sys", "warnings"}, names

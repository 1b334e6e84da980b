"""Character and byte-level BPE tokenizers: round trips, vocabularies, errors, save/load."""

from __future__ import annotations

import json

import pytest

from torchworks.transformer.gpt.tokenizers import BPETokenizer, CharTokenizer, load_tokenizer


def shakespeare_text() -> str:
    from torchworks.transformer.gpt.data import load_text

    try:
        return load_text("tinyshakespeare")
    except FileNotFoundError:  # DataNotFoundError derives from it
        pytest.skip("tinyshakespeare not available locally")


def test_char_round_trip_and_sorted_vocabulary(tmp_path):
    tok = CharTokenizer.from_text("hello world!\n")
    assert tok.chars == sorted(set("hello world!\n")) and tok.vocab_size == 10
    ids = tok.encode("world hello\n")
    assert ids[0] == tok.chars.index("w") and tok.decode(ids) == "world hello\n"
    loaded = load_tokenizer(tok.save(tmp_path / "char.json"))
    assert isinstance(loaded, CharTokenizer) and loaded.chars == tok.chars
    assert loaded.encode("hello") == tok.encode("hello")


def test_char_unknown_characters_named_with_positions():
    tok = CharTokenizer.from_text("abc ")
    with pytest.raises(ValueError) as err:
        tok.encode("ab\u00e9 c\u00e9z")
    msg = str(err.value)
    assert "2 character(s)" in msg and "'\u00e9' at [2, 5]" in msg and "'z' at [6]" in msg
    with pytest.raises(ValueError, match=r"\[4, -1\]"):
        tok.decode([0, 4, -1])
    with pytest.raises(ValueError, match="distinct"):
        CharTokenizer(["a", "a"])
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer.from_text("")


def test_char_vocabulary_of_tinyshakespeare_matches_nanogpt():
    text = shakespeare_text()
    tok = CharTokenizer.from_text(text)
    # nanoGPT's shakespeare_char: 65 symbols, "\n" first, then " !$&',-.3:;?A..Z a..z".
    assert tok.vocab_size == 65 and tok.chars[:3] == ["\n", " ", "!"] and tok.chars[-1] == "z"
    assert tok.decode(tok.encode(text[:5000])) == text[:5000]


def test_bpe_round_trip_on_tinyshakespeare(tmp_path):
    text = shakespeare_text()
    n = int(len(text) * 0.9)
    tok = BPETokenizer.train(text[:n], vocab_size=512)
    assert tok.vocab_size == 512
    val = text[n:]
    ids = tok.encode(val)
    assert tok.decode(ids) == val  # byte-level: exact, including newlines and punctuation
    assert len(ids) < 0.6 * len(val)  # merges compress held-out text
    loaded = load_tokenizer(tok.save(tmp_path / "bpe.json"))
    assert isinstance(loaded, BPETokenizer) and loaded.encode(val) == ids
    assert loaded.encode("ROMEO:") == tok.encode("ROMEO:")


def test_bpe_encodes_any_unicode_and_special_tokens():
    tok = BPETokenizer.train(["the cat sat on the mat"] * 50, vocab_size=300, special_tokens=["<|endoftext|>"])
    assert tok.encode("<|endoftext|>") == [0]
    text = "caf\u00e9 \u20ac \U0001f600 the mat\n\tend"
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode("the mat")) < len("the mat")
    with pytest.raises(ValueError, match="outside"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="256 byte symbols"):
        BPETokenizer.train("abc", vocab_size=100)


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON"):
        load_tokenizer(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"type": "wordpiece"}))
    with pytest.raises(ValueError, match="unknown tokenizer format"):
        load_tokenizer(tmp_path / "other.json")

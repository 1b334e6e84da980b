"""BERT architecture: shapes, padding, heads (MLM tied, NSP, classification, tagging), registry, HF head parity."""

from __future__ import annotations

import pytest
import torch

from torchworks.core.checkpoint import build_model, load_model, save_model
from torchworks.core.errors import CheckpointError, ShapeError
from torchworks.core.registry import MODELS
from torchworks.transformer.bert.hf import bert_from_hf, hf_bert_state_dict_to_ours
from torchworks.transformer.bert.model import (
    BertConfig,
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    mean_pool,
)

TINY = dict(vocab_size=50, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, max_position=16,
            dropout=0.0)


def test_shapes_and_outputs():
    model = BertModel(TINY).eval()
    ids = torch.randint(1, 50, (3, 10))
    out = model(ids, torch.zeros_like(ids), need_weights=True, output_hidden_states=True)
    assert out.last_hidden_state.shape == (3, 10, 32) and out.pooled.shape == (3, 32)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    assert out.attentions[0].shape == (3, 4, 10, 10)
    torch.testing.assert_close(out.attentions[1].sum(-1), torch.ones(3, 4, 10))
    assert out.pooled.abs().max() <= 1.0  # tanh
    fast = model(ids)
    torch.testing.assert_close(fast.last_hidden_state, out.last_hidden_state, atol=1e-5, rtol=0)


def test_segments_change_the_output():
    model = BertModel(TINY).eval()
    ids = torch.randint(1, 50, (1, 8))
    types = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1]])
    assert not torch.allclose(model(ids).last_hidden_state, model(ids, types).last_hidden_state)


def test_padding_invariance():
    """Appending [PAD] tokens (masked) leaves the real tokens' outputs and the mean-pooled embedding unchanged."""
    model = BertModel(TINY).eval()
    ids = torch.randint(1, 50, (2, 7))
    ref = model(ids)
    padded = torch.cat([ids, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    mask = padded == 0
    out = model(padded, key_padding_mask=mask)
    torch.testing.assert_close(out.last_hidden_state[:, :7], ref.last_hidden_state, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.pooled, ref.pooled, atol=1e-6, rtol=0)
    torch.testing.assert_close(mean_pool(out.last_hidden_state, mask), ref.last_hidden_state.mean(1), atol=1e-6,
                               rtol=0)


def test_mean_pool_normalize():
    h = torch.randn(2, 5, 8)
    pooled = mean_pool(h, torch.tensor([[False] * 5, [False, False, True, True, True]]), normalize=True)
    torch.testing.assert_close(pooled.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(pooled[1], torch.nn.functional.normalize(h[1, :2].mean(0), dim=0))


def test_pretraining_heads_tied_and_losses():
    model = BertForPreTraining(TINY)
    assert model.mlm.decoder.weight is model.bert.word_emb.weight
    ids = torch.randint(1, 50, (2, 9))
    labels = torch.full_like(ids, -100)
    labels[:, 3] = ids[:, 3]
    out = model(ids, mlm_labels=labels, nsp_labels=torch.tensor([0, 1]))
    assert out.mlm_logits.shape == (2, 9, 50) and out.nsp_logits.shape == (2, 2)
    mlm = torch.nn.functional.cross_entropy(out.mlm_logits[:, 3], ids[:, 3])
    nsp = torch.nn.functional.cross_entropy(out.nsp_logits, torch.tensor([0, 1]))
    torch.testing.assert_close(out.loss, mlm + nsp)
    out.loss.backward()
    assert model.bert.word_emb.weight.grad is not None and torch.isfinite(model.bert.word_emb.weight.grad).all()
    assert model(ids).loss is None


def test_classification_and_tagging_heads():
    ids = torch.randint(1, 50, (3, 6))
    cls = BertForSequenceClassification(TINY, num_labels=4)
    logits, loss = cls(ids, labels=torch.tensor([0, 1, 3]))
    assert logits.shape == (3, 4) and loss.ndim == 0
    tag = BertForTokenClassification(TINY, num_labels=5)
    assert tag.bert.pooler is None
    mask = torch.zeros(3, 6, dtype=torch.bool)
    mask[0, 4:] = True
    labels = torch.randint(0, 5, (3, 6))
    logits, loss = tag(ids, key_padding_mask=mask, labels=labels)
    assert logits.shape == (3, 6, 5)
    keep = ~mask
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits[keep], labels[keep]))


def test_bad_inputs():
    model = BertModel(TINY)
    with pytest.raises(ShapeError):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ShapeError):
        model(torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown BertConfig keys"):
        BertConfig.from_dict({"hidden": 3})
    with pytest.raises(ValueError, match="divisible"):
        BertConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="head must be"):
        MODELS.build("bert_tiny", head="qa")
    with pytest.raises(CheckpointError, match="position_embeddings"):
        hf_bert_state_dict_to_ours({"embeddings.word_embeddings.weight": torch.zeros(1)}, 1)


@pytest.mark.parametrize("head", ["none", "pretraining", "classification", "tagging"])
def test_registry_variants_build_train_and_round_trip(head, tmp_path):
    model = build_model("bert_tiny", head=head, vocab_size=60, num_labels=3)
    ids = torch.randint(1, 60, (2, 8))
    out = model(ids)
    first = out[0]
    first.float().pow(2).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is None or torch.isfinite(g).all() for g in grads)
    model.eval()
    path = save_model(tmp_path / "m.safetensors", model)
    again = load_model(path).eval()
    torch.testing.assert_close(again(ids)[0], model(ids)[0])
    assert {"bert_minilm_l6", "bert_tiny", "bert_mini"} <= set(MODELS.names("bert_*"))


def test_minilm_variant_has_published_size():
    model = MODELS.build("bert_minilm_l6")
    assert sum(p.numel() for p in model.parameters()) == 22_713_216  # HF BertModel incl. pooler


def test_heads_match_hf_bert_for_pretraining():
    """Random HF BertForPreTraining (perturbed so every tensor matters) -> ours: MLM and NSP logits within 1e-5."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=16, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0)
    hf = transformers.BertForPreTraining(cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            p.add_(torch.randn_like(p) * (0.2 if "LayerNorm" in name or name.endswith("bias") else 0.02))
    ours = bert_from_hf(hf)
    assert isinstance(ours, BertForPreTraining) and ours.mlm.decoder.weight is ours.bert.word_emb.weight
    ids = torch.randint(1, 50, (2, 12))
    attention = torch.ones_like(ids)
    attention[1, 9:] = 0
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=attention, token_type_ids=types)
        out = ours(ids, types, key_padding_mask=attention == 0)
    keep = attention.bool()
    assert (out.mlm_logits - ref.prediction_logits)[keep].abs().max() < 1e-5
    assert (out.nsp_logits - ref.seq_relationship_logits).abs().max() < 1e-5


def test_loading_without_a_pooler_into_a_pooled_model_raises():
    transformers = pytest.importorskip("transformers")
    from torchworks.transformer.bert.hf import load_hf_weights

    hf = transformers.BertModel(transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
                                                        num_attention_heads=4, intermediate_size=64),
                                add_pooling_layer=False)
    weights = hf_bert_state_dict_to_ours(hf.state_dict(), 1)
    assert bert_from_hf(hf).pooler is None
    with pytest.raises(CheckpointError, match="pooler"):
        load_hf_weights(BertModel({**TINY, "num_layers": 1, "max_position": 512}), weights)

"""Encoder-decoder Transformer: torch.nn.Transformer parity, causality, padding, tying, KV cache, loss helper."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from torchworks.core.checkpoint import build_model, load_model, save_model
from torchworks.core.errors import ShapeError
from torchworks.core.registry import MODELS
from torchworks.transformer.seq2seq.model import Seq2SeqConfig, Seq2SeqTransformer, label_smoothed_loss

TINY = dict(src_vocab_size=40, tgt_vocab_size=30, dim=32, num_encoder_layers=2, num_decoder_layers=2, num_heads=4,
            ff_dim=64, dropout=0.0, max_len=32)


def tokens(b, t, vocab, lengths=None):
    x = torch.randint(3, vocab, (b, t))
    if lengths is not None:
        for i, n in enumerate(lengths):
            x[i, n:] = 0
    return x


@pytest.mark.parametrize("norm_first", [False, True])
def test_matches_torch_transformer(norm_first):
    """Our stacks with weights copied from torch.nn.Transformer (which always ends each stack with a LayerNorm)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: "enable_nested_tensor is True, but ... norm_first was True"
        ref = torch.nn.Transformer(d_model=32, nhead=4, num_encoder_layers=2, num_decoder_layers=2,
                                   dim_feedforward=64, dropout=0.0, batch_first=True, norm_first=norm_first).eval()
    with torch.no_grad():  # torch inits norms at 1/0: perturb so a swapped norm would show
        for name, p in ref.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.2)
    ours = Seq2SeqTransformer({**TINY, "norm_first": norm_first, "final_norm": True}).eval()
    ours.load_torch_transformer(ref)
    src, tgt = tokens(3, 9, 40, lengths=[9, 6, 4]), tokens(3, 7, 30)
    mask = src == 0
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's nested-tensor fast-path notice
        expected = ref(ours.embed_src(src), ours.embed_tgt(tgt), src_key_padding_mask=mask,
                       memory_key_padding_mask=mask, tgt_mask=ref.generate_square_subsequent_mask(7),
                       tgt_is_causal=True)
        memory = ours.encode(src)
        got = ours.decode_hidden(tgt, memory, mask)
        logits = ours(src, tgt)
    assert expected.abs().max() > 0.5 and (got - expected).abs().max().item() < 1e-5
    torch.testing.assert_close(logits, ours.out_proj(expected), atol=1e-5, rtol=0)


def test_load_torch_transformer_checks_structure():
    ref = torch.nn.Transformer(d_model=32, nhead=4, num_encoder_layers=1, num_decoder_layers=2, dim_feedforward=64,
                               batch_first=True)
    with pytest.raises(ValueError, match="layers"):
        Seq2SeqTransformer(TINY).load_torch_transformer(ref)
    ref = torch.nn.Transformer(d_model=32, nhead=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=64,
                               batch_first=True)
    with pytest.raises(ValueError, match="final_norm=True"):
        Seq2SeqTransformer(TINY).load_torch_transformer(ref)


def test_decoder_is_causal():
    model = Seq2SeqTransformer(TINY).eval()
    src, tgt = tokens(2, 6, 40), tokens(2, 8, 30)
    changed = tgt.clone()
    changed[:, 5] = (changed[:, 5] + 1 - 3) % 27 + 3
    with torch.no_grad():
        a, b = model(src, tgt), model(src, changed)
    assert torch.equal(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_encoder_padding_invariance():
    """Extra <pad> tokens on the source change neither the memory of real tokens nor the decoder output."""
    model = Seq2SeqTransformer(TINY).eval()
    src, tgt = tokens(2, 6, 40), tokens(2, 5, 30)
    padded = torch.cat([src, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model.encode(padded)[:, :6], model.encode(src), atol=1e-6, rtol=0)
        torch.testing.assert_close(model(padded, tgt), model(src, tgt), atol=1e-5, rtol=0)


def test_cached_decoding_matches_full_pass():
    model = Seq2SeqTransformer({**TINY, "pos": "learned"}).eval()
    src, tgt = tokens(3, 7, 40, lengths=[7, 5, 2]), tokens(3, 6, 30)
    with torch.no_grad():
        full = model(src, tgt)
        memory, mask = model.encode(src), src == 0
        cache = model.new_cache()
        steps = [model.decode(tgt[:, i : i + 1], memory, mask, cache) for i in range(6)]
    assert len(cache) == 6
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


def test_embeddings_scaled_shared_and_tied():
    model = Seq2SeqTransformer({**TINY, "tgt_vocab_size": 40, "share_embeddings": True})
    assert model.src_emb is model.tgt_emb and model.out_proj.weight is model.tgt_emb.weight
    n_shared = sum(p.numel() for p in model.parameters())
    untied = Seq2SeqTransformer({**TINY, "tgt_vocab_size": 40, "tie_output": False})
    assert untied.out_proj.weight is not untied.tgt_emb.weight
    assert sum(p.numel() for p in untied.parameters()) == n_shared + 2 * 40 * 32
    emb = model.src_emb.weight
    assert torch.all(emb[0] == 0) and abs(emb[1:].std().item() * math.sqrt(32) - 1.0) < 0.1  # unit after scaling
    ids = torch.tensor([[5, 6]])
    expected = model.src_emb(ids) * math.sqrt(32) + model.src_pos.table[:2]
    torch.testing.assert_close(model.embed_src(ids), expected)
    with pytest.raises(ValueError, match="equal vocabularies"):
        Seq2SeqConfig(src_vocab_size=10, tgt_vocab_size=12, share_embeddings=True)


def test_label_smoothed_loss():
    logits = torch.randn(2, 4, 7)
    target = torch.tensor([[3, 4, 5, 0], [1, 2, 0, 0]])
    loss, nll = label_smoothed_loss(logits, target, smoothing=0.1, ignore_index=0)
    keep = target != 0
    logp = logits.log_softmax(-1)[keep]
    true = -logp.gather(1, target[keep][:, None]).squeeze(1)
    torch.testing.assert_close(nll, true.mean())
    torch.testing.assert_close(loss, (0.9 * true - 0.1 * logp.mean(-1)).mean())
    plain, _ = label_smoothed_loss(logits, target, smoothing=0.0)
    torch.testing.assert_close(plain, nll)
    with pytest.raises(ValueError):
        label_smoothed_loss(logits, target, smoothing=1.0)
    with pytest.raises(ShapeError):
        label_smoothed_loss(logits, target[:, :3])


def test_cross_attention_maps_ignore_source_padding():
    model = Seq2SeqTransformer(TINY).eval()
    src, tgt = tokens(2, 6, 40, lengths=[6, 3]), tokens(2, 4, 30)
    maps = model.cross_attention_maps(src, tgt)
    assert len(maps) == 2 and maps[0].shape == (2, 4, 4, 6)
    torch.testing.assert_close(maps[1].sum(-1), torch.ones(2, 4, 4))
    assert maps[0][1, :, :, 3:].abs().max() == 0


def test_bad_inputs():
    model = Seq2SeqTransformer(TINY)
    with pytest.raises(ValueError, match="max_len"):
        model(tokens(1, 4, 40), tokens(1, 33, 30))
    with pytest.raises(ShapeError):
        model.encode(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown Seq2SeqConfig keys"):
        Seq2SeqConfig.from_dict({"d_model": 3})


@pytest.mark.parametrize("name", ["transformer_tiny", "transformer_multi30k_small"])
def test_registry_variants(name, tmp_path):
    overrides = dict(src_vocab_size=50, tgt_vocab_size=50) if name != "transformer_tiny" else {}
    model = build_model(name, **overrides)
    vocab = model.config.src_vocab_size
    src, tgt = tokens(2, 5, vocab), tokens(2, 6, vocab)
    loss, _ = label_smoothed_loss(model(src, tgt[:, :-1]), tgt[:, 1:])
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    again = load_model(save_model(tmp_path / "s.safetensors", model)).eval()
    torch.testing.assert_close(again(src, tgt), model(src, tgt))
    assert "transformer_multi30k_base" in MODELS

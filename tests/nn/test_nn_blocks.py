"""Blocks and feed-forward: parity with torch.nn.Transformer{Encoder,Decoder}Layer, caching, causality, tying."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchworks.core.errors import ShapeError
from torchworks.nn.attention import attn_mask_from_torch
from torchworks.nn.blocks import DecoderBlock, EncoderBlock, tie_weights
from torchworks.nn.feedforward import FeedForward
from torchworks.nn.kv_cache import KVCache
from torchworks.nn.positional import RotaryEmbedding

C, H, FF = 32, 4, 48


@pytest.mark.parametrize("training", [False, True])  # eval may take torch's fused fast path; train mode does not
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_block_matches_torch_encoder_layer(norm_first, activation, training):
    ref = nn.TransformerEncoderLayer(C, H, FF, dropout=0.0, activation=activation, batch_first=True,
                                     norm_first=norm_first).train(training)
    ours = EncoderBlock.from_torch(ref).train(training)
    assert ours.norm_first == norm_first and ours.ff.activation == activation
    x = torch.randn(3, 6, C)
    kpm = torch.zeros(3, 6, dtype=torch.bool)
    kpm[1, 4:] = True
    blocked = torch.rand(6, 6) < 0.3
    blocked.fill_diagonal_(False)
    for kw in (dict(), dict(src_key_padding_mask=kpm), dict(src_mask=blocked, src_key_padding_mask=kpm)):
        expected = ref(x, **kw)
        got = ours(x, key_padding_mask=kw.get("src_key_padding_mask"),
                   attn_mask=None if "src_mask" not in kw else attn_mask_from_torch(kw["src_mask"]))
        assert (got - expected).abs().max() <= 1e-6, kw


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_block_matches_torch_decoder_layer(norm_first):
    ref = nn.TransformerDecoderLayer(C, H, FF, dropout=0.0, batch_first=True, norm_first=norm_first).eval()
    ours = DecoderBlock.from_torch(ref).eval()
    tgt, mem = torch.randn(2, 5, C), torch.randn(2, 7, C)
    mem_kpm = torch.zeros(2, 7, dtype=torch.bool)
    mem_kpm[0, 5:] = True
    tgt_kpm = torch.zeros(2, 5, dtype=torch.bool)
    tgt_kpm[1, 4] = True
    causal = torch.ones(5, 5, dtype=torch.bool).triu(1)  # torch convention: True = blocked
    expected = ref(tgt, mem, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=mem_kpm,
                   tgt_key_padding_mask=tgt_kpm)
    got = ours(tgt, mem, memory_key_padding_mask=mem_kpm, key_padding_mask=tgt_kpm)
    assert (got - expected).abs().max() <= 1e-6
    out, w_self, w_cross = ours(tgt, mem, memory_key_padding_mask=mem_kpm, need_weights=True)
    assert w_self.shape == (2, H, 5, 5) and w_cross.shape == (2, H, 5, 7)
    assert w_self[0, :, 0, 1:].abs().max() == 0  # causal: the first token sees only itself
    assert w_cross[0, :, :, 5:].abs().max() == 0  # padded source tokens get no weight


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_block_kv_cache_equals_full_recompute(norm_first):
    block = DecoderBlock(C, H, FF, memory_dim=24, norm_first=norm_first, activation="swiglu",
                         rope=RotaryEmbedding(C // H)).eval()
    x, mem = torch.randn(2, 7, C), torch.randn(2, 4, 24)
    full = block(x, mem)
    cache, mem_cache = KVCache(max_len=8), KVCache()
    steps = [block(x[:, :3], mem, kv_cache=cache, memory_kv_cache=mem_cache)]
    steps += [block(x[:, t : t + 1], mem, kv_cache=cache, memory_kv_cache=mem_cache) for t in range(3, 7)]
    assert (torch.cat(steps, 1) - full).abs().max() <= 1e-6


@pytest.mark.parametrize("block_cls", [EncoderBlock, DecoderBlock])
def test_causal_block_future_token_changes_nothing_before_it(block_cls):
    kw = dict(cross_attention=False) if block_cls is DecoderBlock else {}
    block = block_cls(C, H, norm_first=True, activation="gelu_tanh", **kw).eval()
    x = torch.randn(2, 6, C)
    x2 = x.clone()
    x2[:, 4] += 1.0
    out, out2 = block(x, is_causal=True), block(x2, is_causal=True)
    assert torch.equal(out[:, :4], out2[:, :4]) and not torch.allclose(out[:, 4:], out2[:, 4:])


def test_blocks_pass_gradients_to_every_parameter():
    enc, dec = EncoderBlock(C, H, dropout=0.1), DecoderBlock(C, H, dropout=0.1, norm_first=True)
    x = torch.randn(2, 5, C, requires_grad=True)
    dec(torch.randn(2, 4, C), enc(x)).square().sum().backward()
    for name, p in [*enc.named_parameters(), *dec.named_parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_decoder_block_argument_errors():
    with pytest.raises(ValueError, match="needs memory"):
        DecoderBlock(C, H)(torch.randn(1, 3, C))
    with pytest.raises(ValueError, match="cross_attention=False"):
        DecoderBlock(C, H, cross_attention=False)(torch.randn(1, 3, C), torch.randn(1, 2, C))
    with pytest.raises(ValueError, match="activation"):
        EncoderBlock(C, H, activation="tanh")


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh", "swiglu"])
def test_feedforward_formula(activation):
    ff = FeedForward(8, 12, activation=activation)
    x = torch.randn(3, 4, 8)
    h = x @ ff.fc1.weight.T + ff.fc1.bias
    if activation == "relu":
        h = h.clamp_min(0)
    elif activation == "gelu":
        h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
    elif activation == "gelu_tanh":
        h = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
    else:
        g = x @ ff.gate.weight.T + ff.gate.bias
        h = g * torch.sigmoid(g) * h
    assert (ff(x) - (h @ ff.fc2.weight.T + ff.fc2.bias)).abs().max() <= 1e-6


def test_feedforward_defaults_and_errors():
    assert FeedForward(64).hidden_dim == 256
    assert FeedForward(64, activation="swiglu").hidden_dim == 176  # ceil(8 * 64 / 3 = 170.7) to a multiple of 8
    x = torch.linspace(-3, 3, 101)
    assert 1e-4 < (F.gelu(x) - F.gelu(x, approximate="tanh")).abs().max() < 1e-3  # the two GELUs do differ
    with pytest.raises(ShapeError, match=r"C=64; got \(2, 63\)"):
        FeedForward(64)(torch.randn(2, 63))


def test_tie_weights_shares_one_parameter():
    emb, head = nn.Embedding(11, 8), nn.Linear(8, 11, bias=False)
    tie_weights(head, emb)
    assert head.weight is emb.weight
    model = nn.ModuleDict(dict(emb=emb, head=head))
    assert sum(p.numel() for p in model.parameters()) == 88  # counted once
    tokens = torch.tensor([[1, 2, 3]])
    head(emb(tokens)).sum().backward()
    assert emb.weight.grad[0].abs().sum() > 0  # token 0 is never looked up: its gradient comes from the head
    with pytest.raises(ShapeError, match=r"\(11, 9\).*\(11, 8\)"):
        tie_weights(nn.Linear(9, 11), emb)


def test_from_torch_keeps_float64():
    ref = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True, dtype=torch.float64).eval()
    ours = EncoderBlock.from_torch(ref).eval()
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    assert ours.ff.fc1.weight.dtype == torch.float64
    assert (ours(x) - ref(x)).abs().max() <= 1e-12

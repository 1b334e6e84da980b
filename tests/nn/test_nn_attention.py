"""MultiHeadAttention: parity with torch.nn.MultiheadAttention, causality, padding invariance, KV cache, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchworks.core.errors import ShapeError
from torchworks.nn.attention import MultiHeadAttention, attn_mask_from_torch
from torchworks.nn.kv_cache import KVCache
from torchworks.nn.positional import RotaryEmbedding

E, H = 32, 4


def _torch_mha(kdim=None, bias=True):
    return nn.MultiheadAttention(E, H, batch_first=True, kdim=kdim, vdim=kdim, bias=bias).eval()


@pytest.mark.parametrize("impl", ["sdpa", "reference"])
@pytest.mark.parametrize(("kdim", "bias"), [(None, True), (None, False), (24, True)])
def test_matches_torch_multihead_attention_with_masks(impl, kdim, bias):
    mha = _torch_mha(kdim, bias)
    ours = MultiHeadAttention.from_torch(mha, impl=impl).eval()
    assert ours.fused_qkv == (kdim is None)
    x, mem = torch.randn(3, 7, E), torch.randn(3, 9, kdim or E)
    kpm = torch.zeros(3, 9, dtype=torch.bool)
    kpm[0, -3:] = True
    kpm[2, 4:] = True
    blocked = torch.rand(7, 9) < 0.3  # torch convention: True = NOT allowed
    blocked[:, 0] = False  # keep a key for every query: torch returns NaN for fully masked rows
    cases = [dict(), dict(key_padding_mask=kpm), dict(attn_mask=blocked), dict(key_padding_mask=kpm, attn_mask=blocked)]
    for kw in cases:
        ref, ref_w = mha(x, mem, mem, **kw)
        ours_kw = dict(kw)
        if "attn_mask" in kw:
            ours_kw["attn_mask"] = attn_mask_from_torch(kw["attn_mask"])
        out, w = ours(x, mem, mem, need_weights=True, **ours_kw)
        fast, none = ours(x, mem, mem, **ours_kw)
        assert none is None and w.shape == (3, H, 7, 9)
        assert (out - ref).abs().max() <= 1e-6, kw
        assert (fast - ref).abs().max() <= 1e-6, kw
        assert (w.mean(1) - ref_w).abs().max() <= 1e-6, kw  # torch averages the heads by default


def test_self_attention_matches_torch_causal_and_float_mask_converts():
    mha = _torch_mha()
    ours = MultiHeadAttention.from_torch(mha).eval()
    x = torch.randn(2, 6, E)
    float_mask = nn.Transformer.generate_square_subsequent_mask(6)  # 0 / -inf additive
    ref, _ = mha(x, x, x, attn_mask=float_mask)
    assert torch.equal(attn_mask_from_torch(float_mask), torch.ones(6, 6, dtype=torch.bool).tril())
    for kw in (dict(is_causal=True), dict(attn_mask=attn_mask_from_torch(float_mask))):
        assert (ours(x, **kw)[0] - ref).abs().max() <= 1e-6
        assert (ours(x, x, x, **kw)[0] - ref).abs().max() <= 1e-6
    v = torch.randn(2, 6, E)  # query passed as key but another value: not self-attention
    assert (ours(x, x, v)[0] - mha(x, x, v)[0]).abs().max() <= 1e-6
    with pytest.raises(ValueError, match="0 / -inf"):
        attn_mask_from_torch(torch.full((2, 2), -1.0))


def test_from_torch_rejects_bias_kv():
    with pytest.raises(ValueError, match="add_bias_kv"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(E, H, add_bias_kv=True))


@pytest.mark.parametrize("rope", [None, "half", "interleaved"])
@pytest.mark.parametrize("impl", ["sdpa", "reference"])
def test_causality_future_token_changes_nothing_before_it(rope, impl):
    rot = None if rope is None else RotaryEmbedding(E // H, layout=rope)
    attn = MultiHeadAttention(E, H, rope=rot, impl=impl).eval()
    x = torch.randn(2, 8, E)
    x2 = x.clone()
    x2[:, 5] = torch.randn(2, E)
    out, out2 = attn(x, is_causal=True)[0], attn(x2, is_causal=True)[0]
    assert torch.equal(out[:, :5], out2[:, :5])
    assert not torch.allclose(out[:, 5:], out2[:, 5:])


@pytest.mark.parametrize("impl", ["sdpa", "reference"])
def test_padding_invariance_self_and_cross(impl):
    attn = MultiHeadAttention(E, H, impl=impl).eval()
    x = torch.randn(2, 5, E)
    garbage = 10 * torch.randn(2, 3, E)  # padded tokens may hold anything
    padded = torch.cat([x, garbage], dim=1)
    kpm = torch.zeros(2, 8, dtype=torch.bool)
    kpm[:, 5:] = True
    base = attn(x)[0]
    assert (attn(padded, key_padding_mask=kpm)[0][:, :5] - base).abs().max() <= 1e-6
    q = torch.randn(2, 4, E)
    assert (attn(q, padded, key_padding_mask=kpm)[0] - attn(q, x)[0]).abs().max() <= 1e-6


@pytest.mark.parametrize("max_len", [None, 16])
@pytest.mark.parametrize("rope", [None, "half", "interleaved"])
def test_kv_cache_incremental_decoding_equals_full_recompute(max_len, rope):
    rot = None if rope is None else RotaryEmbedding(E // H, layout=rope)
    attn = MultiHeadAttention(E, H, rope=rot).eval()
    x = torch.randn(2, 10, E)
    full = attn(x, is_causal=True)[0]
    cache = KVCache(max_len)
    pieces = []
    # Prefill 4 tokens, then chunks of 1, 2 and 3: chunks need the bottom-right causal alignment (Tq < Tk).
    for start, stop in [(0, 4), (4, 5), (5, 7), (7, 10)]:
        pieces.append(attn(x[:, start:stop], is_causal=True, kv_cache=cache)[0])
    assert len(cache) == 10
    assert (torch.cat(pieces, dim=1) - full).abs().max() <= 1e-6


def test_kv_cache_with_padding_mask_and_cross_attention_reuse():
    self_attn, cross = MultiHeadAttention(E, H).eval(), MultiHeadAttention(E, H, kdim=24, vdim=24).eval()
    x, mem = torch.randn(2, 6, E), torch.randn(2, 5, 24)
    kpm = torch.tensor([[True, False, False, False, False, False]] * 2)  # a left-padded prompt
    full = cross(self_attn(x, is_causal=True, key_padding_mask=kpm)[0], mem)[0]
    sc, cc = KVCache(), KVCache(max_len=5)
    outs = []
    for t in range(6):
        h = self_attn(x[:, t : t + 1], is_causal=True, key_padding_mask=kpm[:, : t + 1], kv_cache=sc)[0]
        outs.append(cross(h, mem, kv_cache=cc)[0])
    assert len(cc) == 5  # memory projected once, reused for later steps
    assert (torch.cat(outs, 1) - full).abs().max() <= 1e-6


def test_kv_cache_errors_reset_and_reorder():
    cache = KVCache(max_len=4)
    k = torch.randn(2, H, 3, 8)
    cache.update(k, k)
    with pytest.raises(ShapeError, match="overflow: 3 cached \\+ 2 new > max_len 4"):
        cache.update(k[:, :, :2], k[:, :, :2])
    with pytest.raises(ShapeError, match="do not match the cache"):
        cache.update(torch.randn(3, H, 1, 8), torch.randn(3, H, 1, 8))
    cache.reorder(torch.tensor([1, 1]))
    assert torch.equal(cache.keys[0], k[1]) and len(cache) == 3
    cache.reset()
    assert len(cache) == 0 and cache.keys.shape[2] == 0
    keys, _ = cache.update(k[:1], k[:1])  # batch 1 after reset: buffers are re-allocated
    assert torch.equal(keys, k[:1])
    with pytest.raises(ValueError, match="max_len"):
        KVCache(max_len=0)


def test_need_weights_per_head_and_dropout_only_in_training():
    attn = MultiHeadAttention(E, H, dropout=0.5)
    x = torch.randn(2, 5, E)
    attn.eval()
    out, w = attn(x, need_weights=True)
    assert w.shape == (2, H, 5, 5) and torch.allclose(w.sum(-1), torch.ones(2, H, 5))
    assert torch.equal(attn(x)[0], attn(x)[0])
    attn.train()
    assert not torch.allclose(attn(x)[0], attn(x)[0])


def test_gradient_reaches_every_parameter():
    attn = MultiHeadAttention(E, H, kdim=16, vdim=20, rope=None)
    out, _ = attn(torch.randn(2, 5, E, requires_grad=True), torch.randn(2, 3, 16), torch.randn(2, 3, 20))
    out.sum().backward()
    for name, p in attn.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_input_errors_name_the_shapes():
    with pytest.raises(ValueError, match="30 is not divisible by num_heads 4"):
        MultiHeadAttention(30, 4)
    with pytest.raises(ValueError, match="fused_qkv"):
        MultiHeadAttention(E, H, kdim=16, fused_qkv=True)
    with pytest.raises(ValueError, match="rope.head_dim 16"):
        MultiHeadAttention(E, H, rope=RotaryEmbedding(16))
    attn = MultiHeadAttention(E, H)
    with pytest.raises(ShapeError, match=r"E=32\); got \(2, 5, 31\)"):
        attn(torch.randn(2, 5, 31))
    with pytest.raises(ShapeError, match=r"key must be \(B=2, Tk, kdim=32\); got \(3, 4, 32\)"):
        attn(torch.randn(2, 5, E), torch.randn(3, 4, E))
    with pytest.raises(ShapeError, match=r"value must be .*got \(2, 3, 32\)"):
        attn(torch.randn(2, 5, E), torch.randn(2, 4, E), torch.randn(2, 3, E))


def test_gradcheck_float64_with_masks_and_rope():
    attn = MultiHeadAttention(8, 2, rope=RotaryEmbedding(4, layout="interleaved")).double().eval()
    x = torch.randn(2, 4, 8, dtype=torch.float64, requires_grad=True)
    kpm = torch.tensor([[False, False, False, True], [False, False, False, False]])
    assert torch.autograd.gradcheck(lambda x: attn(x, is_causal=True, key_padding_mask=kpm)[0], (x,))

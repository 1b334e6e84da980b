"""Functional attention: reference vs SDPA path, mask rules, fully masked rows, the variance claim, errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from torchworks.core.errors import ShapeError
from torchworks.nn.sdpa import (
    attention_logits,
    attention_reference,
    attention_sdpa,
    merge_masks,
    scaled_dot_product_attention,
)

B, H, D = 2, 3, 8


def _qkv(tq, tk, dtype=torch.float32):
    return (torch.randn(B, H, tq, D, dtype=dtype), torch.randn(B, H, tk, D, dtype=dtype),
            torch.randn(B, H, tk, D + 2, dtype=dtype))


def _attn_mask(kind, tq, tk):
    if kind is None:
        return None
    shape = {"2d": (tq, tk), "batch": (B, 1, tq, tk), "head": (1, H, tq, tk), "full": (B, H, tq, tk)}[kind]
    return torch.rand(shape) < 0.7


MASK_CASES = list(itertools.product([None, "2d", "batch", "head", "full"], [False, True], [False, True], [(5, 5),
                                                                                                         (2, 6)]))


@pytest.mark.parametrize(("mask_kind", "use_kpm", "is_causal", "lengths"), MASK_CASES)
def test_reference_equals_sdpa_for_every_mask_combination(mask_kind, use_kpm, is_causal, lengths):
    tq, tk = lengths
    q, k, v = _qkv(tq, tk)
    attn_mask = _attn_mask(mask_kind, tq, tk)
    kpm = None
    if use_kpm:
        kpm = torch.zeros(B, tk, dtype=torch.bool)
        kpm[0, -2:] = True
        kpm[1, :] = True  # a fully padded sample: every row of it is fully masked
    ref, w = attention_reference(q, k, v, attn_mask=attn_mask, key_padding_mask=kpm, is_causal=is_causal)
    fast = attention_sdpa(q, k, v, attn_mask=attn_mask, key_padding_mask=kpm, is_causal=is_causal)
    assert ref.shape == fast.shape == (B, H, tq, D + 2)
    assert torch.isfinite(ref).all() and torch.isfinite(fast).all()
    assert (ref - fast).abs().max() <= 1e-6
    rows = w.sum(-1)  # each row sums to 1, or to 0 when fully masked
    assert torch.allclose(rows, (rows > 0.5).float(), atol=1e-6)
    if use_kpm:
        assert torch.equal(fast[1], torch.zeros_like(fast[1]))


def test_causal_alignment_is_bottom_right():
    allowed = merge_masks(None, None, True, 1, 1, 2, 4)
    expected = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)  # queries are positions 2 and 3
    assert torch.equal(allowed[0, 0], expected)
    assert merge_masks(None, None, True, 1, 1, 1, 7) is None  # one new token sees the whole cache
    assert torch.equal(merge_masks(None, None, True, 1, 1, 3, 3)[0, 0], torch.ones(3, 3, dtype=torch.bool).tril())


def test_causal_decoding_step_equals_last_rows_of_full_pass():
    q, k, v = _qkv(6, 6)
    full, _ = attention_reference(q, k, v, is_causal=True)
    last2 = attention_sdpa(q[:, :, -2:], k, v, is_causal=True)
    assert (full[:, :, -2:] - last2).abs().max() <= 1e-6


def test_fully_masked_rows_are_zero_with_finite_gradients():
    q, k, v = (t.double().requires_grad_() for t in _qkv(4, 4))
    attn_mask = torch.ones(4, 4, dtype=torch.bool)
    attn_mask[2] = False
    for fn in (lambda: attention_reference(q, k, v, attn_mask=attn_mask)[0],
               lambda: attention_sdpa(q, k, v, attn_mask=attn_mask)):
        out = fn()
        assert torch.equal(out[:, :, 2], torch.zeros_like(out[:, :, 2]))
        grads = torch.autograd.grad(out.square().sum(), (q, k, v))
        assert all(torch.isfinite(g).all() for g in grads)
        assert torch.equal(grads[0][:, :, 2], torch.zeros_like(grads[0][:, :, 2]))


def test_gradcheck_reference_path_with_masks():
    q, k, v = (t.double().requires_grad_() for t in _qkv(3, 4))
    kpm = torch.tensor([[False, False, True, False], [False, True, True, True]])

    def fn(q, k, v):
        return attention_reference(q, k, v, key_padding_mask=kpm, is_causal=True)[0]

    assert torch.autograd.gradcheck(fn, (q, k, v))


def test_dispatcher_returns_weights_only_on_request():
    q, k, v = _qkv(3, 5)
    out, w = scaled_dot_product_attention(q, k, v)
    assert w is None
    out_w, w = scaled_dot_product_attention(q, k, v, need_weights=True)
    assert w.shape == (B, H, 3, 5) and (out - out_w).abs().max() <= 1e-6
    with pytest.raises(ValueError, match="impl"):
        scaled_dot_product_attention(q, k, v, impl="flash")


def test_scale_argument_is_used():
    q, k, v = _qkv(3, 3)
    ref, _ = attention_reference(q, k, v, scale=0.5)
    fast = attention_sdpa(q, k, v, scale=0.5)
    default = attention_sdpa(q, k, v)
    assert (ref - fast).abs().max() <= 1e-6 and (fast - default).abs().max() > 1e-3


@pytest.mark.parametrize("d", [16, 64, 256])
def test_variance_of_dot_product_is_d_before_and_one_after_scaling(d):
    # q.k is a sum of d independent products of unit normals, so Var(q.k) = d. Its sample variance over N draws has
    # relative standard error sqrt((2 + 6/d) / N) (q.k has excess kurtosis 6/d); N = 20000 gives <= 1.1 %, and the
    # 6 % tolerance is over 5 standard errors, so a wrong scale (e.g. 1/d, off by a factor sqrt(d) >= 4) fails.
    n = 20_000
    q, k = torch.randn(n, 1, d, dtype=torch.float64), torch.randn(n, 1, d, dtype=torch.float64)
    raw = attention_logits(q, k, scale=1.0).flatten()
    scaled = attention_logits(q, k).flatten()
    assert raw.var().item() == pytest.approx(d, rel=0.06)
    assert scaled.var().item() == pytest.approx(1.0, rel=0.06)
    assert scaled.var().item() == pytest.approx(raw.var().item() / d, rel=1e-9)


def test_softmax_saturates_without_scaling():
    # Why the scale matters: with unscaled d=256 logits the top weight is close to one-hot.
    q, k = torch.randn(200, 1, 256), torch.randn(200, 32, 256)
    unscaled = attention_logits(q, k, scale=1.0).softmax(-1).amax(-1).mean()
    scaled = attention_logits(q, k).softmax(-1).amax(-1).mean()
    assert unscaled > 0.7 > 0.3 > scaled


@pytest.mark.parametrize(("shapes", "match"), [
    (((B, H, 3, D), (B, H, 4, D + 1), (B, H, 4, D)), r"head dim D.*\(2, 3, 4, 9\)"),
    (((B, H, 3, D), (B, H, 4, D), (B, H, 5, D)), r"key length Tk.*\(2, 3, 5, 8\)"),
    (((B, H, 3, D), (B, H + 1, 4, D), (B, H + 1, 4, D)), r"share \(B, H\)"),
    (((3, D), (4, D), (4, D)), r"4-D.*\(3, 8\)"),
])
def test_bad_qkv_shapes_raise_shape_error_naming_them(shapes, match):
    q, k, v = (torch.randn(s) for s in shapes)
    with pytest.raises(ShapeError, match=match):
        attention_sdpa(q, k, v)


def test_bad_masks_raise():
    q, k, v = _qkv(3, 4)
    with pytest.raises(ShapeError, match=r"got \(4, 3\)"):
        attention_reference(q, k, v, attn_mask=torch.ones(4, 3, dtype=torch.bool))
    with pytest.raises(ShapeError, match=r"got \(5, 1, 3, 4\)"):
        attention_sdpa(q, k, v, attn_mask=torch.ones(5, 1, 3, 4, dtype=torch.bool))
    with pytest.raises(ShapeError, match=r"\(B, H\|1|got \(3, 3, 4\)"):
        attention_sdpa(q, k, v, attn_mask=torch.ones(3, 3, 4, dtype=torch.bool))
    with pytest.raises(ShapeError, match=r"\(2, 4\); got \(2, 5\)"):
        attention_sdpa(q, k, v, key_padding_mask=torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        attention_sdpa(q, k, v, attn_mask=torch.zeros(3, 4))
    with pytest.raises(ValueError, match="bool"):
        attention_sdpa(q, k, v, key_padding_mask=torch.zeros(2, 4))


def test_weights_match_hand_softmax():
    q, k, v = _qkv(2, 3)
    _, w = attention_reference(q, k, v)
    expected = torch.softmax(torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(D), dim=-1)
    assert (w - expected).abs().max() <= 1e-6


def test_bfloat16_on_cpu_takes_the_explicit_path_with_the_same_mask_rules(monkeypatch):
    # The fast path must not call torch's SDPA for bfloat16 CPU inputs (its flash kernel is ~3x slower there than
    # in float32); the answer must still follow every masking rule of the float32 path.
    import torchworks.nn.sdpa as sdpa

    q, k, v = _qkv(5, 6)
    kpm = torch.tensor([[False, False, True, False, False, False], [True, True, True, True, True, True]])
    want = attention_sdpa(q, k, v, key_padding_mask=kpm, is_causal=True)  # float32, torch's SDPA
    calls = []
    monkeypatch.setattr(sdpa.F, "scaled_dot_product_attention", lambda *a, **kw: calls.append(a) or a[0])
    got = attention_sdpa(*(t.bfloat16() for t in (q, k, v)), key_padding_mask=kpm, is_causal=True)
    assert calls == [] and got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, atol=3e-2, rtol=3e-2)
    assert torch.equal(got[1], torch.zeros_like(got[1]))  # batch 1 has only padding keys: zero rows, not NaN


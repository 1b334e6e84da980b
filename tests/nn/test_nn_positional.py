"""Positional encodings: sinusoidal values, learned table, RoPE relative property, layouts and HF parity."""

from __future__ import annotations

import pytest
import torch

from torchworks.core.errors import ShapeError
from torchworks.nn.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    apply_rotary,
    rope_permutation,
    sinusoidal_table,
)


def test_sinusoidal_table_matches_hand_computed_values():
    # dim 4: frequencies 1/10000^(0/4) = 1 and 1/10000^(2/4) = 1/100, so PE[pos] = [sin pos, cos pos, sin pos/100,
    # cos pos/100]. Numbers from:
    #   python -c "import math; print([f(p / 10000 ** (2 * i / 4)) for p in (1, 2) for i in (0, 1)
    #                                  for f in (math.sin, math.cos)])"
    expected = torch.tensor([
        [0.0, 1.0, 0.0, 1.0],
        [0.8414709848078965, 0.5403023058681398, 0.009999833334166664, 0.9999500004166653],
        [0.9092974268256817, -0.4161468365471424, 0.01999866669333308, 0.9998000066665778],
    ])
    assert torch.allclose(sinusoidal_table(3, 4), expected, atol=1e-7, rtol=0)
    big = sinusoidal_table(10, 64)
    assert big.shape == (10, 64) and big.dtype == torch.float32 and big.abs().max() <= 1


def test_sinusoidal_module_adds_table_and_respects_offset():
    pe = SinusoidalPositionalEncoding(8, max_len=32)
    x = torch.randn(2, 6, 8)
    out = pe(x)
    assert torch.allclose(out - x, sinusoidal_table(6, 8).expand(2, 6, 8), atol=1e-6)
    assert torch.equal(pe(x[:, 4:], offset=4), out[:, 4:])
    assert torch.equal(pe(x, positions=torch.arange(6)), out)
    assert "table" not in pe.state_dict()  # fixed buffer, rebuilt on load
    with pytest.raises(ValueError, match="positions up to 32 exceed the table of 32"):
        pe(x, offset=27)
    with pytest.raises(ValueError, match="even dim"):
        sinusoidal_table(4, 7)


def test_learned_embedding_offset_positions_and_gradient():
    pe = LearnedPositionalEmbedding(16, 8)
    x = torch.randn(2, 5, 8)
    out = pe(x)
    assert torch.equal(out, x + pe.weight[:5])
    assert torch.equal(pe(x[:, 2:], offset=2), out[:, 2:])
    per_sample = torch.tensor([[0, 1, 2, 3, 4], [3, 4, 5, 6, 7]])
    assert torch.equal(pe(x, positions=per_sample)[1], x[1] + pe.weight[3:8])
    out.sum().backward()
    assert torch.equal(pe.weight.grad[:5], torch.full((5, 8), 2.0)) and pe.weight.grad[5:].abs().sum() == 0
    with pytest.raises(ValueError, match="positions up to 17 exceed the table of 16"):
        pe(x, offset=13)
    with pytest.raises(ShapeError, match=r"C=8\); got \(2, 5, 9\)"):
        pe(torch.randn(2, 5, 9))


@pytest.mark.parametrize("layout", ["half", "interleaved"])
def test_rope_dot_product_depends_only_on_offset(layout):
    # Angles are float32 (as in HF), so at position ~100 each angle carries ~1e-5 rounding; tolerance 1e-4.
    rope = RotaryEmbedding(16, layout=layout)
    q, k = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)

    def dot(m, n):
        rq = rope(q.view(1, 1, 1, 16), positions=torch.tensor([m]))
        rk = rope(k.view(1, 1, 1, 16), positions=torch.tensor([n]))
        return (rq * rk).sum().item()

    for delta in (0, 3, -5):
        values = [dot(m, m - delta) for m in (7, 20, 101)]
        assert max(values) - min(values) < 1e-4, (delta, values)
    assert abs(dot(10, 7) - dot(10, 2)) > 1e-3  # and it does depend on the offset
    assert dot(0, 0) == pytest.approx((q * k).sum().item(), abs=1e-12)  # position 0 is the identity


@pytest.mark.parametrize("layout", ["half", "interleaved"])
def test_rope_preserves_norm_and_offset_matches_slice(layout):
    rope = RotaryEmbedding(8, layout=layout)
    x = torch.randn(2, 3, 9, 8)
    out = rope(x)
    assert torch.allclose(out.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    assert torch.equal(rope(x[:, :, 4:], offset=4), out[:, :, 4:])


def test_rope_layouts_are_one_rotation_up_to_channel_permutation():
    rope = RotaryEmbedding(12)
    cos, sin = rope.cos_sin(torch.arange(7))
    x = torch.randn(2, 3, 7, 12)
    perm = rope_permutation(12)
    assert perm.tolist() == [0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11]
    inter = apply_rotary(x, cos, sin, "interleaved")
    via_half = apply_rotary(x[..., perm], cos, sin, "half")[..., torch.argsort(perm)]
    assert torch.allclose(inter, via_half, atol=1e-6, rtol=0)
    assert not torch.allclose(inter, apply_rotary(x, cos, sin, "half"))  # the layouts are not interchangeable


def test_rope_interleaved_rotates_adjacent_pairs():
    rope = RotaryEmbedding(4, layout="interleaved", base=100.0)  # pair 0 turns by pos, pair 1 by pos / 10
    x = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(1, 1, 1, 4)
    out = rope(x, offset=2).flatten()
    c0, s0, c1, s1 = torch.cos(torch.tensor(2.0)), torch.sin(torch.tensor(2.0)), torch.cos(torch.tensor(0.2)), \
        torch.sin(torch.tensor(0.2))
    assert torch.allclose(out, torch.stack([c0, s0, -s1, c1]), atol=1e-6)


def test_rope_half_layout_matches_hf_llama():
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    from transformers import LlamaConfig

    config = LlamaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128)
    hf_rope = llama.LlamaRotaryEmbedding(config)
    q, k = torch.randn(2, 4, 9, 16), torch.randn(2, 4, 9, 16)
    position_ids = torch.arange(30, 39).expand(2, 9)  # an offset, as when decoding with a cache
    cos, sin = hf_rope(q, position_ids)
    hf_q, hf_k = llama.apply_rotary_pos_emb(q, k, cos, sin)
    rope = RotaryEmbedding(16, layout="half")
    ours_q, ours_k = rope(q, offset=30), rope(k, positions=position_ids)
    assert (ours_q - hf_q).abs().max() <= 1e-6
    assert (ours_k - hf_k).abs().max() <= 1e-6


def test_partial_rotary_leaves_tail_channels_and_errors():
    rope = RotaryEmbedding(8, rotary_dim=4)
    x = torch.randn(1, 2, 5, 8)
    out = rope(x, offset=3)
    assert torch.equal(out[..., 4:], x[..., 4:]) and not torch.allclose(out[..., :4], x[..., :4])
    with pytest.raises(ValueError, match="rotary_dim must be even"):
        RotaryEmbedding(8, rotary_dim=5)
    with pytest.raises(ValueError, match="layout"):
        RotaryEmbedding(8, layout="neox")
    with pytest.raises(ShapeError, match=r"D=8\); got \(1, 2, 5, 6\)"):
        rope(torch.randn(1, 2, 5, 6))
    with pytest.raises(ShapeError, match=r"T=5; got \(4,\)"):
        rope(x, positions=torch.arange(4))

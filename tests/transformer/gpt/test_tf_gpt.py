"""GPT model: shapes, loss, causality, cache consistency, tying, optimizer groups, parameter counts, registry."""

from __future__ import annotations

import math

import pytest
import torch

import torchworks.transformer  # noqa: F401  (registers the GPT variants)
from torchworks.core.checkpoint import build_model, load_model, save_model
from torchworks.core.errors import ShapeError
from torchworks.core.registry import MODELS
from torchworks.transformer.gpt.model import GPT, GPTConfig

VARIANTS = ["gpt_char_tiny", "gpt_char_small", "gpt_char_small_rope", "gpt_mini", "gpt_small"]


def tiny(**overrides) -> GPT:
    cfg = dict(vocab_size=23, block_size=16, n_layer=2, n_head=2, n_embd=32)
    return GPT(GPTConfig(**{**cfg, **overrides})).eval()


def test_forward_shapes_and_initial_loss():
    model = tiny()
    idx = torch.randint(0, 23, (3, 16))
    logits, loss = model(idx)
    assert logits.shape == (3, 1, 23) and loss is None
    all_logits, _ = model(idx, all_logits=True)
    assert all_logits.shape == (3, 16, 23)
    torch.testing.assert_close(all_logits[:, -1:], logits)
    logits, loss = model(idx, torch.randint(0, 23, (3, 16)))
    assert logits.shape == (3, 16, 23)
    # GPT-2 init gives near-uniform predictions: the loss on unrelated targets starts close to ln(V).
    assert abs(loss.item() - math.log(23)) < 0.15
    targets = idx.clone()
    targets[:, :8] = -1  # ignored positions
    _, part = model(idx, targets)
    full = torch.nn.functional.cross_entropy(model(idx, all_logits=True)[0][:, 8:].flatten(0, 1),
                                             idx[:, 8:].flatten())
    torch.testing.assert_close(part, full)


def test_bad_inputs_raise():
    model = tiny()
    with pytest.raises(ValueError, match="block_size 16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ShapeError):
        model(torch.zeros(16, dtype=torch.long))
    with pytest.raises(ShapeError):
        model(torch.zeros(2, 8, dtype=torch.long), torch.zeros(2, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown GPTConfig keys"):
        MODELS.build("gpt_char_tiny", n_embed=32)
    with pytest.raises(ValueError, match="pos must be"):
        GPTConfig(pos="alibi")


@pytest.mark.parametrize("pos", ["learned", "rope", "sinusoidal"])
@pytest.mark.parametrize("norm_first", [True, False])
def test_causal_earlier_logits_bit_identical(pos, norm_first):
    model = tiny(pos=pos, norm_first=norm_first)
    idx = torch.randint(0, 23, (2, 16))
    ref, _ = model(idx, all_logits=True)
    for t in (0, 7, 15):
        changed = idx.clone()
        changed[:, t] = (changed[:, t] + 1) % 23
        out, _ = model(changed, all_logits=True)
        assert torch.equal(out[:, :t], ref[:, :t]), f"position {t} leaked backwards"
        assert not torch.equal(out[:, t], ref[:, t])


@pytest.mark.parametrize("pos", ["learned", "rope", "sinusoidal"])
def test_incremental_kv_cache_matches_full_forward(pos):
    model = tiny(pos=pos)
    idx = torch.randint(0, 23, (2, 16))
    full, _ = model(idx, all_logits=True)
    caches = model.new_kv_caches()
    steps = [model(idx[:, :5], all_logits=True, kv_caches=caches)[0]]
    steps += [model(idx[:, t : t + 1], kv_caches=caches)[0] for t in range(5, 16)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    assert len(caches[0]) == 16
    with pytest.raises(ValueError, match="exceed block_size"):
        model(idx[:, :1], kv_caches=caches)


def test_weight_tying_shares_storage_and_gradients():
    model = tiny()
    assert model.lm_head.weight is model.tok_emb.weight
    assert model.lm_head.weight.data_ptr() == model.tok_emb.weight.data_ptr()
    _, loss = model(torch.randint(0, 23, (2, 16)), torch.randint(0, 23, (2, 16)))
    loss.backward()
    assert model.tok_emb.weight.grad is not None and model.lm_head.weight.grad is model.tok_emb.weight.grad
    untied = tiny(tie_weights=False)
    assert untied.lm_head.weight.data_ptr() != untied.tok_emb.weight.data_ptr()
    assert untied.num_params(non_embedding=False) == model.num_params(non_embedding=False) + 23 * 32


@pytest.mark.parametrize("overrides", [{}, {"bias": False}, {"tie_weights": False, "pos": "rope"}])
def test_decay_groups_partition_all_parameters(overrides):
    model = tiny(**overrides)
    decay, no_decay = model.configure_optimizer_groups(0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    ids = [id(p) for p in decay["params"] + no_decay["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    assert all(p.dim() == 2 for p in decay["params"])
    named = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {named[id(p)] for p in no_decay["params"]}
    assert "tok_emb.weight" in no_decay_names
    assert all(n.endswith(("bias", "tok_emb.weight", "pos_emb.weight")) or "norm" in n or "ln_f" in n
               for n in no_decay_names)
    # 4 linear weights per block (qkv, out, fc1, fc2) decay; an untied head decays too.
    assert len(decay["params"]) == 4 * 2 + (0 if model.config.tie_weights else 1)
    groups = model.configure_optimizer_groups(0.1, decay_embeddings=True)
    assert any(p is model.tok_emb.weight for p in groups[0]["params"])
    torch.optim.AdamW(groups, lr=1e-3)  # accepted as-is


def nanogpt_param_count(vocab: int, block: int, n_layer: int, n_embd: int, bias: bool) -> int:
    """nanoGPT's GPT parameter count (tied head), written out from its module list."""
    c, b = n_embd, int(bias)
    ln = c + b * c
    per_block = 2 * ln + (c * 3 * c + b * 3 * c) + (c * c + b * c) + (c * 4 * c + b * 4 * c) + (4 * c * c + b * c)
    return vocab * c + block * c + n_layer * per_block + ln


@pytest.mark.parametrize("name", VARIANTS)
def test_param_counts_match_nanogpt(name):
    model = MODELS.build(name)
    cfg = model.config
    total = nanogpt_param_count(cfg.vocab_size, cfg.block_size, cfg.n_layer, cfg.n_embd, cfg.bias)
    pos = cfg.block_size * cfg.n_embd if cfg.pos == "learned" else 0
    assert model.num_params(non_embedding=False) == total - (cfg.block_size * cfg.n_embd - pos)
    assert model.num_params() == total - cfg.block_size * cfg.n_embd


def test_param_counts_of_nanogpt_recipes():
    # Printed by nanoGPT for config/train_shakespeare_char.py at the CPU sizes ("0.80M"; 804,096 with wpe, measured
    # in the research note) and the GPU sizes ("10.65M").
    small = MODELS.build("gpt_char_small")
    assert small.num_params(non_embedding=False) == 804_096 and small.num_params() == 795_904
    assert MODELS.build("gpt_small").num_params() == 10_646_784
    assert 0.08e6 < MODELS.build("gpt_char_tiny").num_params() < 0.12e6
    assert 2.5e6 < MODELS.build("gpt_mini").num_params() < 3.5e6


def test_gpt2_init_statistics():
    model = MODELS.build("gpt_small")
    assert abs(model.blocks[0].ff.fc1.weight.std().item() - 0.02) < 1e-3
    expected = 0.02 / math.sqrt(2 * 6)
    assert abs(model.blocks[3].self_attn.out_proj.weight.std().item() - expected) < 3e-4
    assert abs(model.blocks[5].ff.fc2.weight.std().item() - expected) < 3e-4
    assert model.blocks[0].self_attn_norm.bias is None  # bias=False reaches the norms, as in nanoGPT


@pytest.mark.parametrize("name", VARIANTS)
def test_registry_sweep_backward_and_checkpoint_round_trip(name, tmp_path):
    model = build_model(name, block_size=16, dropout=0.0)
    idx = torch.randint(0, model.config.vocab_size, (2, 16))
    _, loss = model(idx, idx)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    path = save_model(tmp_path / f"{name}.safetensors", model)
    loaded = load_model(path, expect=name).eval()
    assert loaded.config == model.config
    assert loaded.lm_head.weight is loaded.tok_emb.weight
    assert torch.equal(loaded(idx, all_logits=True)[0], model(idx, all_logits=True)[0])


def test_attention_maps_are_causal_distributions():
    model = tiny(pos="rope")
    maps = model.attention_maps(torch.randint(0, 23, (1, 9)))
    assert len(maps) == 2 and maps[0].shape == (1, 2, 9, 9)
    torch.testing.assert_close(maps[1].sum(-1), torch.ones(1, 2, 9))
    assert torch.all(maps[0].triu(diagonal=1) == 0)


def test_overfits_one_batch_with_adamw_groups():
    model = MODELS.build("gpt_char_tiny", block_size=16).train()
    opt = torch.optim.AdamW(model.configure_optimizer_groups(0.1), lr=3e-3, betas=(0.9, 0.99))
    idx = torch.randint(0, 65, (4, 17))
    x, y = idx[:, :-1], idx[:, 1:]
    first = None
    for _ in range(80):
        _, loss = model(x, y)
        first = loss.item() if first is None else first
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert first > 3.5 and loss.item() < 0.5  # ln(65) = 4.17 -> memorised 64 random tokens

"""Parity with HF transformers' GPT2LMHeadModel (random tiny config): Conv1D transposes, tied head, tanh-GELU."""

from __future__ import annotations

import pytest
import torch

from torchworks.core.errors import CheckpointError
from torchworks.transformer.gpt.hf import gpt_config_from_hf, gpt_from_hf, hf_gpt2_state_dict_to_ours

transformers = pytest.importorskip("transformers")


def random_hf_gpt2(dtype=torch.float32, **overrides):
    cfg = dict(vocab_size=97, n_positions=24, n_embd=48, n_layer=3, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0,
               attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**{**cfg, **overrides})).to(dtype).eval()
    # HF init leaves LayerNorms at 1/0 and biases at 0, which would hide a swapped ln_1/ln_2 or a missing bias;
    # perturb everything so each tensor's mapping matters.
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.3 if "wte" in name or "wpe" in name else 0.2 if "ln_" in name or name.endswith("bias") else 0.02
            p.add_(torch.randn_like(p) * scale)
    return model


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_logits_match_hf_gpt2(dtype, tol):
    hf = random_hf_gpt2(dtype)
    ours = gpt_from_hf(hf)
    assert ours.config.activation == "gelu_tanh" and ours.config.norm_eps == 1e-5 and ours.config.pos == "learned"
    assert ours.lm_head.weight is ours.tok_emb.weight
    idx = torch.randint(0, 97, (3, 24))
    with torch.no_grad():
        ref = hf(idx).logits
        out, _ = ours(idx, all_logits=True)
    assert out.dtype == dtype
    assert ref.abs().max() > 1.0  # a non-trivial comparison, not two near-zero tensors
    assert (out - ref).abs().max().item() < tol
    # Same next-token loss as HF's shifted labels (HF computes its loss in float32 even for float64 models).
    with torch.no_grad():
        hf_loss = hf(idx, labels=idx).loss
        _, our_loss = ours(idx[:, :-1], idx[:, 1:])
    assert abs(hf_loss.item() - our_loss.item()) < 1e-5


def test_untied_head_and_exact_gelu_map_too():
    hf = random_hf_gpt2(tie_word_embeddings=False, activation_function="gelu")
    with torch.no_grad():
        hf.lm_head.weight.copy_(torch.randn_like(hf.lm_head.weight) * 0.05)
    ours = gpt_from_hf(hf)
    assert ours.config.activation == "gelu" and ours.lm_head.weight is not ours.tok_emb.weight
    idx = torch.randint(0, 97, (2, 24))
    with torch.no_grad():
        assert (ours(idx, all_logits=True)[0] - hf(idx).logits).abs().max().item() < 1e-5


def test_cached_decoding_matches_hf_cache():
    hf = random_hf_gpt2()
    ours = gpt_from_hf(hf)
    idx = torch.randint(0, 97, (1, 10))
    with torch.no_grad():
        caches = ours.new_kv_caches()
        ours(idx[:, :6], kv_caches=caches)
        step, _ = ours(idx[:, 6:7], kv_caches=caches)
        ref = hf(idx[:, :7]).logits[:, -1:]
    assert (step - ref).abs().max().item() < 1e-5


def test_unsupported_options_and_missing_keys_raise():
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx"):
        gpt_config_from_hf(transformers.GPT2Config(n_layer=1, scale_attn_by_inverse_layer_idx=True))
    with pytest.raises(ValueError, match="activation_function"):
        gpt_config_from_hf(transformers.GPT2Config(n_layer=1, activation_function="silu"))
    state = random_hf_gpt2().state_dict()
    del state["transformer.h.1.ln_2.bias"]
    with pytest.raises(CheckpointError, match=r"h\.1\.ln_2\.bias"):
        hf_gpt2_state_dict_to_ours(state, n_layer=3)

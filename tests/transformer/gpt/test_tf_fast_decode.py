"""The one-token decoding step (fast path of cached generation) against ``GPT.forward``, and the default window
shift that keeps the KV cache useful past the context."""

from __future__ import annotations

import pytest
import torch

from torchworks.transformer.gpt.fast_decode import step_decoder
from torchworks.transformer.gpt.generate import default_window_shift, generate
from torchworks.transformer.gpt.model import GPT, GPTConfig


def _model(**kw) -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{"vocab_size": 23, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 32, **kw}))
    with torch.no_grad():  # non-trivial LayerNorms and biases, so a swapped or skipped tensor shows
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


CONFIGS = [
    {}, {"pos": "rope"}, {"pos": "sinusoidal"}, {"bias": False}, {"activation": "gelu_tanh"},
    {"activation": "relu"}, {"activation": "swiglu"}, {"norm_first": False}, {"tie_weights": False, "pos": "rope"},
]


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
def test_step_logits_equal_forward_with_cache(kw):
    model = _model(**kw)
    step = step_decoder(model)
    assert step is not None
    ids = torch.randint(0, 23, (3, 12))
    ref_caches, fast_caches = model.new_kv_caches(), model.new_kv_caches()
    with torch.no_grad():
        model(ids[:, :4], kv_caches=ref_caches)  # a prompt prefilled by the model, as generate() does
        model(ids[:, :4], kv_caches=fast_caches)
        for t in range(4, 12):
            ref, _ = model(ids[:, t : t + 1], kv_caches=ref_caches)
            out = step(ids[:, t : t + 1], fast_caches)
            assert out.shape == ref.shape == (3, 1, 23)
            assert (out - ref).abs().max().item() < 1e-5
    assert len(fast_caches[0]) == 12
    full, _ = model(ids, all_logits=True)  # and both agree with one uncached pass
    assert (out[:, 0] - full[:, -1]).abs().max().item() < 1e-5


def test_step_refuses_what_it_does_not_cover():
    model = _model()
    assert step_decoder(model.train()) is None  # dropout and training-time behaviour stay with the modules
    assert step_decoder(_model().to(torch.bfloat16)) is None  # bfloat16 attention takes another path on CPU
    step = step_decoder(_model())
    caches = _model().new_kv_caches()
    with torch.no_grad(), pytest.raises(ValueError, match="exceed block_size 16"):
        for _ in range(17):
            step(torch.zeros(1, 1, dtype=torch.long), caches)


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_cached_equals_uncached_within_the_context_with_a_seed(pos):
    model = _model(pos=pos)
    prompt = torch.tensor([[1, 2, 3]])
    outs = [generate(model, prompt, 13, temperature=0.9, top_k=10, use_cache=c,
                     generator=torch.Generator().manual_seed(7)) for c in (False, True)]
    assert outs[0].shape == (1, 16)  # prompt + new tokens fill exactly one block: no window jump yet
    assert torch.equal(outs[0], outs[1])


def test_default_window_shift_is_a_quarter_block_and_cache_still_matches():
    assert [default_window_shift(b) for b in (1, 3, 4, 64, 1024)] == [1, 1, 1, 16, 256]
    model = _model(pos="rope")
    prompt = torch.tensor([[5]])
    outs = [generate(model, prompt, 60, temperature=1.0, use_cache=c, generator=torch.Generator().manual_seed(1))
            for c in (False, True)]
    assert torch.equal(outs[0], outs[1])  # past the context too: both paths jump the window the same way
    explicit = generate(model, prompt, 60, temperature=1.0, window_shift=4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(outs[1], explicit)
    slide = generate(model, prompt, 60, temperature=1.0, window_shift=1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(slide[:, :17], outs[1][:, :17])  # identical until the first jump

"""Generation: top-k / top-p against hand-computed distributions, cached == uncached, windows, stop, streaming."""

from __future__ import annotations

import math
import time
import warnings

import pytest
import torch

from torchworks.transformer.gpt.generate import (
    TextStreamer,
    generate,
    generate_text,
    sample_next_token,
    top_k_filter,
    top_p_filter,
)
from torchworks.transformer.gpt.model import GPT, GPTConfig
from torchworks.transformer.gpt.tokenizers import CharTokenizer

# Probabilities 0.5, 0.2, 0.15, 0.1, 0.05 in a shuffled vocabulary order.
PROBS = torch.tensor([0.1, 0.5, 0.05, 0.2, 0.15], dtype=torch.float64)
LOGITS = PROBS.log()[None]  # (1, 5)


def filtered_probs(logits: torch.Tensor) -> torch.Tensor:
    return logits.softmax(-1)[0]


def expected(keep: dict[int, float]) -> torch.Tensor:
    out = torch.zeros(5, dtype=torch.float64)
    for i, w in keep.items():
        out[i] = w
    return out / out.sum()


@pytest.mark.parametrize("k,keep", [(1, [1]), (2, [1, 3]), (3, [1, 3, 4]), (5, [0, 1, 2, 3, 4]), (9, [0, 1, 2, 3, 4])])
def test_top_k_against_hand_computed(k, keep):
    got = filtered_probs(top_k_filter(LOGITS, k))
    torch.testing.assert_close(got, expected({i: PROBS[i].item() for i in keep}))


@pytest.mark.parametrize("p,keep", [
    (0.3, [1]),                # 0.5 alone already reaches 0.3
    (0.6, [1, 3]),             # 0.5 < 0.6, so 0.2 is needed: 0.7
    (0.75, [1, 3, 4]),         # 0.7 < 0.75: add 0.15 -> 0.85
    (0.9, [1, 3, 4, 0]),       # 0.85 < 0.9: add 0.1 -> 0.95
    (1.0, [0, 1, 2, 3, 4]),
])
def test_top_p_against_hand_computed(p, keep):
    got = filtered_probs(top_p_filter(LOGITS, p))
    torch.testing.assert_close(got, expected({i: PROBS[i].item() for i in keep}))


def test_temperature_then_top_k_then_top_p_and_empirical_sampling():
    # temperature 2 -> probs proportional to sqrt(p); top_k 3 keeps ids 1, 3, 4; top_p 0.6 of the renormalised
    # sqrt masses (0.707, 0.447, 0.387 -> 0.459, 0.290, 0.251): 0.459 < 0.6 so ids 1 and 3 remain.
    root = PROBS.sqrt()
    want = expected({1: root[1].item(), 3: root[3].item()})
    logits = (LOGITS / 2.0)
    torch.testing.assert_close(filtered_probs(top_p_filter(top_k_filter(logits, 3), 0.6)), want)
    n = 20000
    draws = sample_next_token(LOGITS.float().expand(n, 5), temperature=2.0, top_k=3, top_p=0.6,
                              generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=5).double() / n
    assert freq[[0, 2, 4]].sum() == 0
    assert abs(freq[1] - want[1]) < 0.015  # ~4 standard errors at n = 20000
    assert torch.equal(sample_next_token(LOGITS, greedy=True), torch.tensor([1]))
    assert torch.equal(sample_next_token(LOGITS, temperature=0.0), torch.tensor([1]))


def test_filters_reject_bad_arguments():
    with pytest.raises(ValueError, match="top_k"):
        top_k_filter(LOGITS, 0)
    with pytest.raises(ValueError, match="top_p"):
        top_p_filter(LOGITS, 0.0)
    with pytest.raises(ValueError, match="temperature"):
        sample_next_token(LOGITS, temperature=-1.0)


def model_for(pos: str, block_size: int = 16) -> GPT:
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=11, block_size=block_size, n_layer=2, n_head=2, n_embd=32, pos=pos,
                          tie_weights=False))  # tied + tiny init just repeats the prompt's last token
    with torch.no_grad():  # sharper, varied predictions instead of the near-uniform 0.02 init
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(8)
    return model


@pytest.mark.parametrize("pos", ["learned", "rope", "sinusoidal"])
@pytest.mark.parametrize("window_shift", [1, 5])
@pytest.mark.parametrize("mode", ["greedy", "sampled"])
def test_cached_generation_equals_uncached(pos, window_shift, mode):
    model = model_for(pos)
    prompt = torch.randint(0, 11, (2, 3))
    # 40 new tokens with block 16: the window slides many times, so cache rebuilds and positions are exercised.
    kwargs = dict(greedy=True) if mode == "greedy" else dict(temperature=1.3, top_k=8, top_p=0.95)
    outs = []
    for use_cache in (False, True):
        gen = torch.Generator().manual_seed(123)
        outs.append(generate(model, prompt, 40, use_cache=use_cache, window_shift=window_shift, generator=gen,
                             **kwargs))
    assert outs[0].shape == (2, 43)
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(outs[0][:, :3], prompt)
    assert len(set(outs[0][:, 3:].flatten().tolist())) > 2  # not a degenerate constant continuation


def test_long_prompt_warns_and_keeps_last_block():
    model = model_for("learned", block_size=8)
    prompt = torch.randint(0, 11, (1, 12))
    with pytest.warns(UserWarning, match="exceeds block_size 8"):
        out = generate(model, prompt, 1, greedy=True)
    ref, _ = model.eval()(prompt[:, -8:])
    assert out[0, -1].item() == ref[0, -1].argmax().item()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sliding during generation itself is normal and silent
        generate(model, prompt[:, :2], 20, greedy=True)


def test_model_mode_restored_and_generation_deterministic():
    model = model_for("rope").train()
    a = generate(model, torch.zeros(1, 1, dtype=torch.long), 10, generator=torch.Generator().manual_seed(5))
    b = generate(model, torch.zeros(1, 1, dtype=torch.long), 10, generator=torch.Generator().manual_seed(5))
    assert model.training and torch.equal(a, b)


class DigitTokenizer:
    """ids 0-9 are digits, 10 is a space."""

    def encode(self, text):
        return [10 if c == " " else int(c) for c in text]

    def decode(self, ids):
        return "".join(" " if i == 10 else str(i) for i in ids)


class ScriptedModel(torch.nn.Module):
    """Always predicts the next token of a fixed script (for exact stop-string tests)."""

    def __init__(self, script):
        super().__init__()
        self.config = GPTConfig(vocab_size=11, block_size=64, n_layer=1, n_head=1, n_embd=8)
        self.script = script

    def new_kv_caches(self):
        return None

    def forward(self, idx, kv_caches=None):
        logits = torch.full((idx.shape[0], 1, 11), -1e9)
        logits[:, :, self.script[idx.shape[1] % len(self.script)]] = 0.0
        return logits, None


def test_stop_string_truncates_tokens_and_text():
    tok = DigitTokenizer()
    model = ScriptedModel(tok.encode("1234 56 789"))
    prompt = torch.tensor([[1]])
    seen = []
    out = generate(model, prompt, 50, greedy=True, use_cache=False, stop=" 5", decode=tok.decode,
                   on_token=lambda t: seen.append(int(t[0])))
    assert tok.decode(out[0].tolist()) == "1234"  # cut where " 5" begins, at a token boundary
    assert len(seen) == 5  # streaming saw the tokens of the stop string before it completed
    text = generate_text(model, tok, "1", 50, stop=["9", " 56"], greedy=True, use_cache=False)
    assert text == "234"
    assert generate_text(model, tok, "1", 6, stop="x", greedy=True, use_cache=False) == "234 56"
    with pytest.raises(ValueError, match="decode callback"):
        generate(model, prompt, 5, stop="5")
    with pytest.raises(ValueError, match="batch of one"):
        generate(model, prompt.expand(2, 1), 5, stop="5", decode=tok.decode)


def test_text_streamer_and_char_generation():
    tok = CharTokenizer.from_text("abcdefghij ")
    model = model_for("rope")
    pieces = []
    text = generate_text(model, tok, "abc", 12, on_token=TextStreamer(tok.decode, pieces.append),
                         generator=torch.Generator().manual_seed(0))
    assert "".join(pieces) == text and len(text) == 12
    with pytest.raises(ValueError, match="not in the vocabulary"):
        generate_text(model, tok, "xyz", 3)


@pytest.mark.bench
def test_bench_kv_cache_speedup(capsys):
    """Wall time of 500 new tokens (batch 1) for gpt_char_small-sized models; prints, asserts nothing on speed."""
    for block_size, shift in ((64, 1), (64, 16), (512, 1)):
        model = GPT(GPTConfig(vocab_size=65, block_size=block_size, n_layer=4, n_head=4, n_embd=128, bias=False))
        times = {}
        for use_cache in (False, True, False, True):
            start = time.perf_counter()
            out = generate(model, torch.zeros(1, 1, dtype=torch.long), 500, use_cache=use_cache,
                           window_shift=shift, generator=torch.Generator().manual_seed(0))
            elapsed = time.perf_counter() - start
            times[use_cache] = min(times.get(use_cache, math.inf), elapsed)
            assert out.shape == (1, 501)
        with capsys.disabled():
            print(f"\nblock {block_size} shift {shift}: uncached {500 / times[False]:.0f} tok/s, "
                  f"cached {500 / times[True]:.0f} tok/s, speed-up {times[False] / times[True]:.2f}x")


def test_text_streamer_holds_back_split_utf8_characters():
    from torchworks.transformer.gpt.tokenizers import BPETokenizer

    tok = BPETokenizer.train("plain ascii text only", vocab_size=260, min_frequency=10)
    ids = tok.encode("a\u00e9b")  # no merges: 'a', two byte tokens for the accented e, 'b'
    assert len(ids) == 4
    pieces = []
    streamer = TextStreamer(tok.decode, pieces.append)
    for i in ids:
        streamer(torch.tensor([i]))
    assert pieces == ["a", "\u00e9", "b"]

"""Autoregressive generation for decoder-only language models: greedy, temperature, top-k, top-p, repetition
controls, KV cache.

:func:`generate` works with any model called as ``model(idx, kv_caches=...) -> (logits, _)`` that has
``config.block_size`` and ``new_kv_caches()`` (e.g. :class:`~torchworks.transformer.gpt.model.GPT`).

Two paths give the same tokens: uncached (every step re-runs the whole context, as nanoGPT) and cached (the
context is run once, then one token per step against per-layer key/value caches; for a GPT the step runs through
:class:`~torchworks.transformer.gpt.fast_decode.StepDecoder`). Both use the same context window: when it would
exceed ``block_size`` the window start jumps forward by ``window_shift`` tokens and the cache is rebuilt from the
new window, so positions (learned, sinusoidal or RoPE) always restart at 0 exactly as in the uncached path.
``window_shift=1`` slides like nanoGPT (every token sees a full window, but once the window is full every step
rebuilds the cache, so the cache stops paying off). The default, :func:`default_window_shift` (a quarter of the
block), keeps the cache useful past the context: after a jump the window holds at least 3/4 of a block, and one
rebuild serves the next ``window_shift`` tokens.

Before sampling, the logits of each step can be adjusted against the tokens so far (prompt included):
``repetition_penalty`` (CTRL) and ``no_repeat_ngram_size`` (:mod:`torchworks.transformer.common`).

References:
    Holtzman et al., "The Curious Case of Neural Text Degeneration", ICLR 2020 (nucleus / top-p sampling).
    Fan et al., "Hierarchical Neural Story Generation", ACL 2018 (top-k sampling).
    HF transformers ``TopKLogitsWarper`` / ``TopPLogitsWarper`` (same order: repetition processors, temperature,
    top-k, top-p).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from torchworks.transformer.common import ban_repeated_ngrams, penalize_repetition
from torchworks.transformer.gpt.fast_decode import step_decoder

__all__ = ["TextStreamer", "default_window_shift", "generate", "generate_text", "sample_next_token", "top_k_filter",
           "top_p_filter"]


def default_window_shift(block_size: int) -> int:
    """How far the context window jumps by default once it is full: a quarter of the block (at least 1)."""
    return max(1, block_size // 4)


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the k largest logits per row (ties with the k-th are kept too), set the rest to -inf.

    Args:
        logits: (..., V) float.
        k: Number of candidates, >= 1 (values above V keep everything).
    """
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    kth = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability reaches p.

    A token is dropped when the tokens ranked above it already hold at least p of the mass, so the most likely
    token always survives and the kept mass is >= p.

    Args:
        logits: (..., V) float (already temperature-scaled).
        p: Mass in (0, 1]; 1 keeps everything.
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    if p >= 1.0:  # cumulative sums can round above 1 and would drop the tail for no reason
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # mass of the strictly more likely tokens
    drop = (mass_before >= p).scatter(-1, order, mass_before >= p)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def sample_next_token(logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, greedy: bool = False,
                      generator: torch.Generator | None = None) -> Tensor:
    """Pick one token per row from next-token logits.

    Args:
        logits: (B, V) float.
        temperature: Divides the logits (< 1 sharper, > 1 flatter); 0 means greedy.
        top_k: Sample among the k most likely tokens only.
        top_p: Sample from the nucleus holding this probability mass only.
        greedy: Take the argmax (ignores temperature, top_k, top_p and the generator).
        generator: Seeded ``torch.Generator`` for reproducible sampling (on the logits' device).

    Returns:
        (B,) int64 token ids.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if greedy or temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)


class TextStreamer:
    """``on_token`` callback that writes decoded text as it is generated (batch size 1).

    It re-decodes all new tokens and writes the new suffix, so multi-token characters (byte-level BPE) are only
    written once complete (a trailing U+FFFD replacement character is held back).

    Args:
        decode: Token ids -> text (e.g. ``tokenizer.decode``).
        write: Where text goes; default ``sys.stdout.write`` with a flush after each piece.
    """

    def __init__(self, decode: Callable[[list[int]], str], write: Callable[[str], object] | None = None) -> None:
        self.decode, self.write = decode, write
        self.ids: list[int] = []
        self.text = ""

    def __call__(self, token: Tensor) -> None:
        self.ids.append(int(token[0]))
        text = self.decode(self.ids)
        if text.endswith("\ufffd"):
            return
        piece, self.text = text[len(self.text):], text
        if self.write is None:
            sys.stdout.write(piece)
            sys.stdout.flush()
        else:
            self.write(piece)


def _find_stop(text: str, stops: Sequence[str], start: int) -> int:
    """Earliest index >= start at which a stop string begins in text, or -1."""
    hits = [i for i in (text.find(s, start) for s in stops) if i >= 0]
    return min(hits) if hits else -1


@torch.no_grad()
def generate(model: nn.Module, idx: Tensor, max_new_tokens: int, *, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
             generator: torch.Generator | None = None, use_cache: bool = True, window_shift: int | None = None,
             repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0,
             stop: str | Sequence[str] | None = None, decode: Callable[[list[int]], str] | None = None,
             on_token: Callable[[Tensor], None] | None = None) -> Tensor:
    """Continue token sequences, one sampled token at a time (model in eval mode while it runs).

    Args:
        model: Language model (see the module docstring).
        idx: Prompt ids (B, T0) int64, T0 >= 1. A prompt longer than block_size keeps its last block_size
            tokens (with a warning).
        max_new_tokens: Number of tokens to add (fewer when a stop string appears).
        temperature, top_k, top_p, greedy, generator: As in :func:`sample_next_token`.
        use_cache: Decode incrementally with per-layer KV caches (same tokens, faster).
        window_shift: How far the context window jumps when it would exceed block_size (1 <= shift <=
            block_size); default :func:`default_window_shift`. See the module docstring.
        repetition_penalty: CTRL penalty on every token already in the row (prompt included); 1 = off.
        no_repeat_ngram_size: Never complete an n-gram of this size already in the row; 0 = off.
        stop: A string or strings that end generation (needs ``decode`` and B == 1). The returned continuation
            is cut where the earliest stop string begins, at a token boundary (a token straddling that point is
            kept); :func:`generate_text` cuts the text exactly.
        decode: Token ids -> text, for ``stop``.
        on_token: Called with each new token (B,) int64 as soon as it is sampled (streaming; see
            :class:`TextStreamer`).

    Returns:
        (B, T0 + N) int64: the prompt followed by N <= max_new_tokens new tokens.

    Raises:
        ValueError: bad shapes or settings, or a step where the n-gram rule bans every token of the vocabulary.
    """
    if idx.dim() != 2 or idx.shape[1] < 1:
        raise ValueError(f"idx must be (B, T0 >= 1) token ids; got shape {tuple(idx.shape)}")
    block_size = model.config.block_size
    window_shift = default_window_shift(block_size) if window_shift is None else window_shift
    if not 1 <= window_shift <= block_size:
        raise ValueError(f"window_shift must be in [1, block_size={block_size}], got {window_shift}")
    if repetition_penalty <= 0:
        raise ValueError(f"repetition_penalty must be > 0, got {repetition_penalty}")
    if no_repeat_ngram_size < 0:
        raise ValueError(f"no_repeat_ngram_size must be >= 0, got {no_repeat_ngram_size}")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if stops and (decode is None or idx.shape[0] != 1):
        raise ValueError("stop strings need a decode callback and a batch of one prompt")
    if any(not s for s in stops):
        raise ValueError(f"stop strings must be non-empty, got {stops}")
    tokens, prompt_len = idx, idx.shape[1]
    start = max(0, prompt_len - block_size)  # first token of the context window
    if start:
        warnings.warn(f"prompt of {prompt_len} tokens exceeds block_size {block_size}; keeping the last "
                      f"{block_size}", stacklevel=2)
    caches = model.new_kv_caches() if use_cache else None
    fed = start  # tokens[:, :fed] are in the caches (from the current window start)
    was_training = model.training
    model.eval()
    step = step_decoder(model) if use_cache else None
    try:
        for _ in range(max_new_tokens):
            if tokens.shape[1] - start > block_size:
                start = max(start + window_shift, tokens.shape[1] - block_size)
                if caches is not None:
                    for cache in caches:
                        cache.reset()
                    fed = start
            if caches is None:
                logits, _ = model(tokens[:, start:])
            elif step is not None and tokens.shape[1] - fed == 1:
                logits = step(tokens[:, fed:], caches)
                fed += 1
            else:
                logits, _ = model(tokens[:, fed:], kv_caches=caches)
                fed = tokens.shape[1]
            logits = logits[:, -1]
            if repetition_penalty != 1.0:
                logits = penalize_repetition(logits, tokens, repetition_penalty)
            if no_repeat_ngram_size:
                logits = ban_repeated_ngrams(logits, tokens, no_repeat_ngram_size)
                if bool(torch.isneginf(logits).all(dim=-1).any()):
                    raise ValueError(f"no_repeat_ngram_size={no_repeat_ngram_size} bans every token of the "
                                     f"vocabulary after {tokens.shape[1] - prompt_len} new tokens; use a larger n")
            nxt = sample_next_token(logits, temperature=temperature, top_k=top_k, top_p=top_p,
                                    greedy=greedy, generator=generator)  # (B,)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            if on_token is not None:
                on_token(nxt)
            if stops:
                new = tokens[0, prompt_len:].tolist()
                text = decode(new)
                # Only the tail can hold a new match: earlier text was searched at the previous steps.
                at = _find_stop(text, stops, max(0, len(text) - len(decode(new[-1:])) - max(map(len, stops))))
                if at >= 0:
                    keep = next(k for k in range(len(new) + 1) if len(decode(new[:k])) >= at)
                    return tokens[:, : prompt_len + keep]
    finally:
        model.train(was_training)
    return tokens


def generate_text(model: nn.Module, tokenizer, prompt: str, max_new_tokens: int, *,
                  stop: str | Sequence[str] | None = None, device: torch.device | str = "cpu", **kwargs) -> str:
    """Encode a prompt, generate, and return the decoded continuation (cut exactly before a stop string).

    Args:
        model: Language model (see :func:`generate`).
        tokenizer: Object with ``encode(str) -> list[int]`` and ``decode(list[int]) -> str``.
        prompt: Non-empty text; characters outside the vocabulary raise the tokenizer's ValueError.
        max_new_tokens: Tokens to generate at most.
        stop: Stop string(s); the returned text ends just before the first one.
        device: Where the prompt ids go (the model's device).
        **kwargs: Passed to :func:`generate` (temperature, top_k, top_p, greedy, generator, use_cache,
            window_shift, repetition_penalty, no_repeat_ngram_size, on_token).

    Returns:
        The continuation only (without the prompt).
    """
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError("prompt encodes to no tokens; give at least one character")
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    out = generate(model, idx, max_new_tokens, stop=stop, decode=tokenizer.decode, **kwargs)
    text = tokenizer.decode(out[0, len(ids):].tolist())
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    at = _find_stop(text, stops, 0) if stops else -1
    return text if at < 0 else text[:at]

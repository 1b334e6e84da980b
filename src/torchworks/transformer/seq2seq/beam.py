"""Decoding for encoder-decoder models: greedy and beam search (GNMT length penalty), with or without a KV cache.

Works with any model that offers :class:`~torchworks.transformer.seq2seq.Seq2SeqTransformer`'s decoding
interface: ``encode(src, src_key_padding_mask) -> memory``, ``decode(tgt, memory, memory_key_padding_mask,
cache) -> logits (B, T, V)``, ``new_cache()`` (an object with ``reorder(index)``) and ``config.{bos_id, eos_id,
pad_id, max_len}``. With a cache, each step feeds only the newest token; without, the whole prefix (same tokens,
slower; kept as the reference path).

Both decoders take ``repetition_penalty`` (CTRL) and ``no_repeat_ngram_size``: applied to each step's logits
against the tokens generated so far in that hypothesis (before the log-softmax, so a beam scores a renormalised
distribution), as HF ``generate`` does for encoder-decoders.

Beam search keeps ``beam_size`` live hypotheses per source. Each step scores every (hypothesis, token)
extension by its summed log-probability, takes the best ``2 * beam_size``, moves those ending in <eos> (ranked
within the first ``beam_size``) to the finished list scored by ``logp / lp(length)`` with GNMT's
``lp(n) = ((5 + n) / 6) ** alpha`` (n counts generated tokens including <eos>), and keeps the best
``beam_size`` others alive. The KV cache follows the survivors with ``cache.reorder(parent_rows)``. A source
stops when it has ``beam_size`` finished hypotheses and either ``early_stopping`` is True (HF's ``True``) or no
live hypothesis can still beat the worst of them (an exact bound: with ``alpha > 0`` a live score can only rise
through the penalty, bounded at ``max_new_tokens``). Unfinished live hypotheses at the length limit compete too.

References:
    Wu et al., "Google's Neural Machine Translation System", 2016, section 7 (length penalty).
    HF transformers ``BeamSearchScorer`` / ``BeamHypotheses`` (2k candidates, finished-list rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from torchworks.transformer.common import ban_repeated_ngrams, penalize_repetition

__all__ = ["Hypothesis", "beam_search", "greedy_decode", "length_penalty"]


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty ``((5 + length) / 6) ** alpha`` (1 for alpha = 0; divides the summed log-prob)."""
    return ((5.0 + length) / 6.0) ** alpha


@dataclass(order=True)
class Hypothesis:
    """A decoded sequence: ``score`` = ``logprob / length_penalty(len(tokens), alpha)`` (sorts by score)."""

    score: float
    logprob: float = field(compare=False)
    tokens: list[int] = field(compare=False)  # generated ids (no <bos>), ending in <eos> if finished


def _setup(model: nn.Module, src: Tensor, src_key_padding_mask: Tensor | None, max_new_tokens: int | None):
    cfg = model.config
    mask = (src == cfg.pad_id) if src_key_padding_mask is None else src_key_padding_mask
    limit = cfg.max_len - 1 if max_new_tokens is None else max_new_tokens  # the <bos> takes one position
    if limit < 1 or limit + 1 > cfg.max_len:
        raise ValueError(f"max_new_tokens must be in [1, max_len - 1 = {cfg.max_len - 1}], got {max_new_tokens}")
    return cfg, mask, limit


def _pad(seqs: list[list[int]], pad_id: int, device) -> Tensor:
    width = max(1, max(len(s) for s in seqs))
    out = torch.full((len(seqs), width), pad_id, dtype=torch.long, device=device)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def _step_logits(model, tokens: Tensor, memory: Tensor, mask: Tensor, cache, penalty: float = 1.0,
                 ngram: int = 0) -> Tensor:
    """Logits (N, V) of the next token after each prefix (N, t) (<bos> first), repetition controls applied."""
    inp = tokens[:, -1:] if cache is not None else tokens
    logits = model.decode(inp, memory, mask, cache)[:, -1].float()
    if penalty != 1.0:
        logits = penalize_repetition(logits, tokens[:, 1:], penalty)
    if ngram:
        logits = ban_repeated_ngrams(logits, tokens[:, 1:], ngram)
        stuck = torch.isneginf(logits).all(dim=-1)  # every token banned: the hypothesis can only end
        if bool(stuck.any()):
            logits[stuck, model.config.eos_id] = 0.0
    return logits


def _check_repetition(penalty: float, ngram: int) -> None:
    if penalty <= 0:
        raise ValueError(f"repetition_penalty must be > 0, got {penalty}")
    if ngram < 0:
        raise ValueError(f"no_repeat_ngram_size must be >= 0, got {ngram}")


@torch.no_grad()
def greedy_decode(model: nn.Module, src: Tensor, src_key_padding_mask: Tensor | None = None, *,
                  max_new_tokens: int | None = None, use_cache: bool = True, repetition_penalty: float = 1.0,
                  no_repeat_ngram_size: int = 0) -> Tensor:
    """Most likely next token at every step, until every row has produced <eos> or the length limit.

    Args:
        model: An encoder-decoder with the interface in the module docstring (switched to eval while decoding).
        src: Source ids (B, S) int64.
        src_key_padding_mask: Optional bool (B, S), True = padding; default ``src == pad_id``.
        max_new_tokens: Longest output (default ``max_len - 1``).
        use_cache: Decode one token per step against a KV cache (same tokens, faster).
        repetition_penalty: CTRL penalty on tokens already generated in the row; 1 = off.
        no_repeat_ngram_size: Never complete an n-gram of this size already generated in the row; 0 = off.

    Returns:
        Generated ids (B, L) int64 without <bos>; each row ends at its first <eos>, then <pad>.
    """
    _check_repetition(repetition_penalty, no_repeat_ngram_size)
    cfg, mask, limit = _setup(model, src, src_key_padding_mask, max_new_tokens)
    was_training = model.training
    model.eval()
    try:
        memory = model.encode(src, mask)
        cache = model.new_cache() if use_cache else None
        tokens = torch.full((src.shape[0], 1), cfg.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        for _ in range(limit):
            logits = _step_logits(model, tokens, memory, mask, cache, repetition_penalty, no_repeat_ngram_size)
            nxt = logits.argmax(dim=-1)  # (B,)
            nxt = nxt.masked_fill(done, cfg.pad_id)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            done |= nxt == cfg.eos_id
            if bool(done.all()):
                break
        return tokens[:, 1:]
    finally:
        model.train(was_training)


@torch.no_grad()
def beam_search(model: nn.Module, src: Tensor, src_key_padding_mask: Tensor | None = None, *, beam_size: int = 4,
                alpha: float = 0.6, max_new_tokens: int | None = None, early_stopping: bool = True,
                use_cache: bool = True, return_hypotheses: bool = False, repetition_penalty: float = 1.0,
                no_repeat_ngram_size: int = 0) -> Tensor | list[list[Hypothesis]]:
    """Beam search with the GNMT length penalty (see the module docstring for the rules).

    Args:
        model: An encoder-decoder with the interface in the module docstring (switched to eval while decoding).
        src: Source ids (B, S) int64.
        src_key_padding_mask: Optional bool (B, S), True = padding; default ``src == pad_id``.
        beam_size: Live hypotheses per source K (1 gives greedy decoding).
        alpha: Length-penalty exponent (0 = raw log-probability; 0.6-1.0 favours longer outputs).
        max_new_tokens: Longest output (default ``max_len - 1``).
        early_stopping: Stop a source as soon as K hypotheses finished (else only when none can be beaten).
        use_cache: KV cache reused across steps and reordered with the beams (same result, faster).
        return_hypotheses: Return every source's finished hypotheses, best first, instead of a tensor.
        repetition_penalty, no_repeat_ngram_size: As in :func:`greedy_decode`, per hypothesis.

    Returns:
        Best sequences (B, L) int64 without <bos>, ending in <eos> then <pad>; or per source a list of
        :class:`Hypothesis`, best first.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    _check_repetition(repetition_penalty, no_repeat_ngram_size)
    cfg, mask, limit = _setup(model, src, src_key_padding_mask, max_new_tokens)
    was_training = model.training
    model.eval()
    try:
        hyps = _beam(model, src, mask, cfg, beam_size, alpha, limit, early_stopping, use_cache,
                     (repetition_penalty, no_repeat_ngram_size))
    finally:
        model.train(was_training)
    if return_hypotheses:
        return hyps
    return _pad([h[0].tokens for h in hyps], cfg.pad_id, src.device)


def _beam(model, src, mask, cfg, k, alpha, limit, early_stopping, use_cache,
          repetition=(1.0, 0)) -> list[list[Hypothesis]]:
    b, dev = src.shape[0], src.device
    memory = model.encode(src, mask).repeat_interleave(k, dim=0)  # (B*K, S, d), beams of a source adjacent
    mask = mask.repeat_interleave(k, dim=0)
    cache = model.new_cache() if use_cache else None
    tokens = torch.full((b * k, 1), cfg.bos_id, dtype=torch.long, device=dev)
    beam_logp = torch.full((b, k), float("-inf"), device=dev)
    beam_logp[:, 0] = 0.0  # one live start per source, so the first step does not pick K copies of one token
    finished: list[list[Hypothesis]] = [[] for _ in range(b)]
    done = [False] * b
    for step in range(1, limit + 1):
        logp = torch.log_softmax(_step_logits(model, tokens, memory, mask, cache, *repetition), dim=-1)  # (B*K, V)
        vocab = logp.shape[-1]
        total = (beam_logp.reshape(-1, 1) + logp).reshape(b, k * vocab)
        top_lp, top_idx = total.topk(min(2 * k, k * vocab), dim=-1)  # (B, 2K)
        parents = torch.arange(b * k, device=dev).reshape(b, k)  # default rows: keep everything in place
        new_tok = torch.full((b, k), cfg.pad_id, dtype=torch.long, device=dev)
        new_lp = torch.full((b, k), float("-inf"), device=dev)
        lp_list, idx_list = top_lp.tolist(), top_idx.tolist()
        for i in range(b):
            if done[i]:
                continue
            live = 0
            for rank, (score, flat) in enumerate(zip(lp_list[i], idx_list[i], strict=True)):
                beam, tok = divmod(flat, vocab)
                if score == float("-inf"):
                    break
                if tok == cfg.eos_id:
                    if rank < k:
                        seq = tokens[i * k + beam, 1:].tolist() + [tok]
                        _add(finished[i], Hypothesis(score / length_penalty(step, alpha), score, seq), k)
                    continue
                parents[i, live], new_tok[i, live], new_lp[i, live] = i * k + beam, tok, score
                live += 1
                if live == k:
                    break
            done[i] = _is_done(finished[i], new_lp[i], k, alpha, step, limit, early_stopping)
        rows = parents.reshape(-1)
        tokens = torch.cat([tokens.index_select(0, rows), new_tok.reshape(-1, 1)], dim=1)
        beam_logp = new_lp
        if cache is not None:
            cache.reorder(rows)
        if all(done):
            break
    for i in range(b):  # the length limit: live hypotheses compete with the finished ones
        if not done[i]:
            for j in range(k):
                score = float(beam_logp[i, j])
                if score > float("-inf"):
                    seq = tokens[i * k + j, 1:].tolist()
                    _add(finished[i], Hypothesis(score / length_penalty(len(seq), alpha), score, seq), k)
    return [sorted(h, reverse=True) for h in finished]


def _add(hyps: list[Hypothesis], hyp: Hypothesis, k: int) -> None:
    """Insert keeping only the k best."""
    hyps.append(hyp)
    if len(hyps) > k:
        hyps.remove(min(hyps))


def _is_done(hyps: list[Hypothesis], live_lp: Tensor, k: int, alpha: float, step: int, limit: int,
             early_stopping: bool) -> bool:
    if len(hyps) < k:
        return False
    if early_stopping:
        return True
    best_live = float(live_lp.max())
    if best_live == float("-inf"):
        return True
    # Log-probs only fall as tokens are added, so the best reachable score is the current one divided by the
    # largest penalty ahead (alpha > 0: the longest length; alpha <= 0: the next length).
    reach = length_penalty(limit if alpha > 0 else step + 1, alpha)
    return best_live / reach <= min(hyps).score

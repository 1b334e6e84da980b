"""What the transformer families share: token tick labels and the repetition controls of decoding (GPT sampling,
seq2seq greedy and beam search), and the engine's warm-up + cosine learning-rate multiplier under its old name here
(:class:`torchworks.engine.schedules.WarmupCosine`, the one schedule every task uses).

Everything else shared (attention, blocks, positional encodings, KV cache) lives in :mod:`torchworks.nn`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from torchworks.engine.schedules import WarmupCosine

__all__ = ["WarmupCosine", "ban_repeated_ngrams", "penalize_repetition", "token_label"]


def token_label(token: str) -> str:
    """Printable tick label for a token (newlines and spaces made visible, an empty token shown as a set sign)."""
    return token.replace("\n", "\\n").replace(" ", "\u2423") or "\u2205"


def penalize_repetition(logits: Tensor, seqs: Tensor, penalty: float) -> Tensor:
    """CTRL's repetition penalty: the logit of every token already in the sequence is divided by ``penalty`` when
    positive and multiplied by it when negative, so a seen token always becomes less likely (``penalty`` > 1).

    Args:
        logits: Next-token logits (B, V) float.
        seqs: The tokens so far (B, T) int64 (T may be 0); each row's distinct tokens are penalised once.
        penalty: >= 1 discourages repeats (1 = off); in (0, 1) encourages them.

    Returns:
        New logits (B, V).

    References:
        Keskar et al., "CTRL: A Conditional Transformer Language Model for Controllable Generation", 2019,
        section 4.1; HF transformers ``RepetitionPenaltyLogitsProcessor`` (same rule).
    """
    if penalty <= 0:
        raise ValueError(f"repetition penalty must be > 0, got {penalty}")
    if penalty == 1.0 or seqs.shape[1] == 0:
        return logits
    seen = logits.gather(1, seqs)  # (B, T): duplicates gather the same value and scatter it back identically
    seen = torch.where(seen > 0, seen / penalty, seen * penalty)
    return logits.scatter(1, seqs, seen)


def ban_repeated_ngrams(logits: Tensor, seqs: Tensor, n: int) -> Tensor:
    """Sets to -inf every token that would complete an n-gram already present in its row of ``seqs``.

    Args:
        logits: Next-token logits (B, V) float.
        seqs: The tokens so far (B, T) int64.
        n: n-gram size >= 1 (1 bans every token already present); 0 = off.

    Returns:
        New logits (B, V).

    References:
        Paulus et al., "A Deep Reinforced Model for Abstractive Summarization", ICLR 2018 (trigram blocking);
        fairseq / HF transformers ``NoRepeatNGramLogitsProcessor`` (same rule).
    """
    if n < 0:
        raise ValueError(f"no-repeat n-gram size must be >= 0, got {n}")
    t = seqs.shape[1]
    if n == 0 or t < n:  # no complete n-gram yet
        return logits
    grams = seqs.unfold(1, n, 1)  # (B, T - n + 1, n): every n-gram so far
    prefix = seqs[:, t - n + 1:] if n > 1 else seqs[:, :0]  # (B, n - 1): what the next token would complete
    hits = (grams[:, :, :-1] == prefix[:, None, :]).all(dim=-1)  # (B, T - n + 1)
    if not bool(hits.any()):
        return logits
    banned = torch.zeros_like(logits, dtype=torch.bool)
    rows, cols = hits.nonzero(as_tuple=True)
    banned[rows, grams[rows, cols, -1]] = True
    return logits.masked_fill(banned, float("-inf"))

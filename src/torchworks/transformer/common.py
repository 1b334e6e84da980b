"""What the transformer families share: token tick labels, the repetition controls of decoding (GPT sampling,
seq2seq greedy and beam search), and the checks of the learning-rate schedule keys the GPT, translation and BERT
tasks configure :class:`torchworks.engine.schedules.WarmupCosine` with (``warmup_steps``, ``total_steps``,
``min_lr_ratio``, as every engine task).

Everything else shared (attention, blocks, positional encodings, KV cache) lives in :mod:`torchworks.nn`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["SCHEDULE_RENAMED_KEYS", "ban_repeated_ngrams", "check_schedule", "penalize_repetition", "token_label"]

# The keys these tasks used before the one engine schedule; a config naming one gets a ConfigError naming its
# replacement (core.config.from_dict reads a config class's RENAMED_KEYS).
SCHEDULE_RENAMED_KEYS = {"decay_steps": "total_steps",
                         "min_lr": "min_lr_ratio (the floor as a fraction of the peak: old min_lr / lr)"}


def check_schedule(warmup_steps: int, total_steps: int, min_lr_ratio: float) -> None:
    """Raises ``ValueError`` unless W >= 0, T is 0 (no decay) or > W, and ``min_lr_ratio`` is in [0, 1]."""
    if warmup_steps < 0 or total_steps < 0 or 0 < total_steps <= warmup_steps:
        raise ValueError(f"need warmup_steps >= 0 and total_steps 0 (no decay) or > warmup_steps, got "
                         f"{warmup_steps}, {total_steps}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")


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

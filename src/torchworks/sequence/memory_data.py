"""Synthetic data of the seed note's memory experiments, as tensors drawn from a seeded generator.

Every generator returns ``{"x": (N, T, F) float, "y": targets, "score": which targets count}``:

* many-to-many experiments: ``y`` (N, T) (long class ids or float 0/1 / values), ``score`` (N, T) bool;
* many-to-one experiments: ``y`` (N,) (long or float), ``score`` (N,) bool (all True).

Unscored steps carry the target 0 and are left out of loss and accuracy (e.g. the ``a`` run of the counter,
whose length the network cannot know in advance, and padding).

References:
    E. Chen, "Exploring LSTMs" (2017): the a^n X b^n counter and its cell-state heat maps.
    Hochreiter & Schmidhuber, "Long Short-Term Memory" (1997): long time lags (the AxxxY task family) and the
    adding problem (an error above 0.04 counts as wrong).
    J. Brownlee, "Demonstration of Memory with a Long Short-Term Memory Network in Python" (the conflicting
    sequences 3,0,1,2,3 / 4,0,1,2,4) and "Long Short-Term Memory Networks With Python" (echo sequence
    prediction; the cumulative-sum classification used for Bidirectional LSTMs).
"""

from __future__ import annotations

import torch
from torch import Tensor

COUNTER_VOCAB = ("a", "X", "b", "E")  # E ends the string; it is predicted but never fed
AB_VOCAB = ("A", "B", "x", "Y")
CONFLICT_SEQUENCES = ((3, 0, 1, 2, 3), (4, 0, 1, 2, 4))


def one_hot(ids: Tensor, depth: int) -> Tensor:
    """ids (N, T) long, -1 = padding -> (N, T, depth) float with all-zero padding steps."""
    out = torch.zeros(*ids.shape, depth)
    valid = ids >= 0
    out[valid] = torch.nn.functional.one_hot(ids[valid], depth).float()
    return out


def counter(n: int, gen: torch.Generator, n_min: int = 1, n_max: int = 10, steps: int | None = None) -> dict:
    """Strings a^k X b^k E, k uniform in [n_min, n_max]; predict the next symbol at every step.

    Input is the string without E (one-hot over a, X, b; padding after it is all-zero), target the string
    shifted by one. Only the steps from X on are scored: after X the continuation is determined by k (k b's,
    then E), before it the next symbol is a coin flip the network cannot know.

    Args:
        steps: T; default 2 n_max + 1, the longest string (pass more to test longer counts).
    """
    T = steps or 2 * n_max + 1
    if T < 2 * n_max + 1:
        raise ValueError(f"steps={T} cannot hold a^{n_max} X b^{n_max}")
    k = torch.randint(n_min, n_max + 1, (n,), generator=gen)
    t = torch.arange(T).unsqueeze(0)  # (1, T)
    kk = k.unsqueeze(1)  # (N, 1)
    ids = torch.where(t < kk, 0, torch.where(t == kk, 1, torch.where(t <= 2 * kk, 2, -1)))  # (N, T) symbols fed
    nxt = torch.where(t + 1 < kk, 0, torch.where(t + 1 == kk, 1, torch.where(t + 1 <= 2 * kk, 2, 3)))  # next
    score = (t >= kk) & (t <= 2 * kk)  # from X through the last b, whose next symbol is E
    y = torch.where(score, nxt, torch.zeros_like(nxt))
    return {"x": one_hot(ids, 3), "y": y, "score": score, "k": k}


def count_signal(x: Tensor) -> Tensor:
    """The count the counter must keep: a's seen so far minus b's seen so far, (N, T) from one-hot x."""
    return (x[..., 0] - x[..., 2]).cumsum(dim=1)


def ab_memory(n: int, gen: torch.Generator, lag: int = 20) -> dict:
    """Sequences ``A x..x Y`` / ``B x..x Y`` (``lag`` x's); at Y, output a (class 0) or b (class 1).

    Many-to-one: the answer depends only on the first symbol, ``lag + 1`` steps back.
    """
    first = torch.randint(0, 2, (n,), generator=gen)
    ids = torch.full((n, lag + 2), 2)
    ids[:, 0] = first
    ids[:, -1] = 3
    return {"x": one_hot(ids, 4), "y": first, "score": torch.ones(n, dtype=torch.bool)}


def conflict(n: int, gen: torch.Generator) -> dict:
    """The two sequences 3,0,1,2,3 and 4,0,1,2,4 (``n`` samples, alternating); predict each next value.

    Input the first four values one-hot over 0..4, target the last four. Without memory the last step is a
    coin flip: after ``2`` comes 3 or 4 depending on the first value, three steps back.
    """
    seqs = torch.tensor(CONFLICT_SEQUENCES)[torch.arange(n) % 2]  # (N, 5)
    return {"x": one_hot(seqs[:, :-1], 5), "y": seqs[:, 1:], "score": torch.ones(n, 4, dtype=torch.bool)}


def echo(n: int, gen: torch.Generator, length: int = 10, vocab: int = 10, index: int = 2) -> dict:
    """Random integers in [0, vocab) of ``length`` steps; after reading all, output the one at ``index``."""
    if not 0 <= index < length:
        raise ValueError(f"index must lie in [0, {length}), got {index}")
    ids = torch.randint(0, vocab, (n, length), generator=gen)
    return {"x": one_hot(ids, vocab), "y": ids[:, index], "score": torch.ones(n, dtype=torch.bool)}


def adding(n: int, gen: torch.Generator, length: int = 20) -> dict:
    """The adding problem: channel 0 values U(0, 1), channel 1 marks two steps (one in each half);
    many-to-one regression of the sum of the two marked values (in [0, 2])."""
    values = torch.rand(n, length, generator=gen)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=gen)
    second = torch.randint(half, length, (n,), generator=gen)
    marks = torch.zeros(n, length)
    rows = torch.arange(n)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    y = values[rows, first] + values[rows, second]
    return {"x": torch.stack([values, marks], dim=-1), "y": y, "score": torch.ones(n, dtype=torch.bool)}


def cumsum(n: int, gen: torch.Generator, length: int = 10, reverse: bool = False) -> dict:
    """Values U(0, 1); at step t output 1 when the running sum exceeds ``length / 4``, else 0.

    With ``reverse`` the sum runs from t to the end: the answer depends on steps not seen yet, which a
    forward LSTM cannot know and a Bidirectional one can.
    """
    values = torch.rand(n, length, generator=gen)
    running = values.flip(1).cumsum(1).flip(1) if reverse else values.cumsum(1)
    y = (running > length / 4).float()
    return {"x": values.unsqueeze(-1), "y": y, "score": torch.ones(n, length, dtype=torch.bool)}

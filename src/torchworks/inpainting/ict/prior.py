"""ICT's appearance prior: a bidirectional transformer over palette tokens, and its pluralistic sampler.

The low-resolution image (``size`` x ``size`` tokens, see :mod:`.palette`) goes through learned token and
position embeddings and pre-LN encoder blocks (the project's :class:`~torchworks.nn.blocks.EncoderBlock`, no
causal mask) to logits over the palette at every position. As in ICT's BERT mode, a masked position's token
embedding is multiplied by 0 (no learned [MASK] token), and training is cross-entropy on masked positions only.

Sampling differs from the paper on purpose: ICT fills one token per forward pass in raster order (up to 1024
passes at 32x32); :func:`sample_tokens` uses MaskGIT's parallel decoding instead, committing the most confident
draws over ``steps`` iterations (a cosine schedule), which gives ICT's top-k diversity in ~8 passes on a CPU.

References:
    Wan et al., "High-Fidelity Pluralistic Image Completion with Transformers", ICCV 2021;
    raywzy/ICT ``Transformer/models/model.py`` (BERT mode) and ``utils/util.py`` (``sample_mask``);
    Chang et al., "MaskGIT: Masked Generative Image Transformer", CVPR 2022 (iterative parallel decoding).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.core.registry import MODELS
from torchworks.nn.blocks import EncoderBlock

__all__ = ["AppearancePrior", "PRIOR_VARIANTS", "masked_token_loss", "sample_tokens"]


class AppearancePrior(nn.Module):
    """Bidirectional transformer predicting palette tokens at masked positions.

    Args:
        vocab: palette size K.
        size: side of the token grid (T = size * size tokens).
        dim, depth, heads: width, number of blocks and attention heads.
        dropout: residual / attention dropout (ICT: 0).

    Attributes:
        palette: (K, 3) buffer of the token colours in [0, 1], saved with the weights.
    """

    def __init__(self, vocab: int = 128, size: int = 32, dim: int = 256, depth: int = 8, heads: int = 8,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.vocab, self.size = vocab, size
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.zeros(1, size * size, dim))
        self.blocks = nn.ModuleList(EncoderBlock(dim, heads, dropout=dropout, activation="gelu", norm_first=True)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        # the palette travels with the weights (fitted by the training task; grey ramp until then)
        self.register_buffer("palette", torch.linspace(0, 1, vocab).unsqueeze(1).repeat(1, 3))
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.tok.weight, std=0.02)

    def forward(self, tokens: Tensor, unknown: Tensor) -> Tensor:
        """Logits (B, T, K) for tokens (B, T) long in [0, K) and ``unknown`` (B, T) bool (True = masked).

        The value of a token at an unknown position is ignored (its embedding is zeroed).
        """
        if tokens.dim() != 2 or tokens.shape[1] != self.size * self.size or unknown.shape != tokens.shape:
            raise ShapeError(f"need tokens and unknown of shape (B, {self.size * self.size}), got "
                             f"{tuple(tokens.shape)} and {tuple(unknown.shape)}")
        x = self.tok(tokens.clamp(0, self.vocab - 1)) * (~unknown).unsqueeze(-1).to(self.pos.dtype) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def masked_token_loss(logits: Tensor, target: Tensor, unknown: Tensor) -> Tensor:
    """Cross-entropy at unknown positions only, averaged over them (ICT's ``--dynamic_weight``)."""
    if not unknown.any():
        return logits.sum() * 0.0
    return nn.functional.cross_entropy(logits[unknown], target[unknown])


@torch.no_grad()
def sample_tokens(prior: AppearancePrior, tokens: Tensor, unknown: Tensor, steps: int = 8, top_k: int = 40,
                  temperature: float = 1.0, generator: torch.Generator | None = None,
                  callback: Callable[[int, int], Any] | None = None) -> Tensor:
    """Fills the unknown tokens by iterative top-k sampling; known tokens are returned unchanged.

    Args:
        tokens: (B, T) long; values at unknown positions are ignored.
        unknown: (B, T) bool, True = to fill.
        steps: decoding iterations (each one forward pass); after step s a fraction cos(pi/2 * s / steps) of
            the hole is still open, the least confident draws being reopened.
        top_k: sample among the k most likely colours (1 = deterministic argmax).
        temperature: softmax temperature (> 0).
        generator: a seeded ``torch.Generator`` makes the samples reproducible.
        callback: called as ``callback(step, steps)`` after each decoding step (and with ``(steps, steps)`` when
            the hole closes early), for a progress bar.

    Returns:
        (B, T) long tokens.
    """
    if steps < 1 or top_k < 1 or temperature <= 0:
        raise ValueError(f"need steps >= 1, top_k >= 1, temperature > 0; got {steps}, {top_k}, {temperature}")
    tokens, unknown = tokens.clone(), unknown.clone()
    total = unknown.sum(1)  # (B,)
    reported = 0
    for s in range(1, steps + 1):
        if not unknown.any():
            break
        logits = prior(tokens, unknown).float() / temperature  # (B, T, K)
        k = min(top_k, logits.shape[-1])
        top, idx = logits.topk(k, dim=-1)  # (B, T, k)
        probs = top.softmax(-1)
        if k == 1:
            pick = torch.zeros(probs.shape[:-1], dtype=torch.long, device=probs.device)
        else:
            pick = torch.multinomial(probs.reshape(-1, k), 1, generator=generator).view(probs.shape[:-1])
        draw = idx.gather(-1, pick.unsqueeze(-1)).squeeze(-1)  # (B, T)
        conf = probs.gather(-1, pick.unsqueeze(-1)).squeeze(-1).masked_fill(~unknown, -1.0)
        still_open = (total.float() * math.cos(math.pi / 2 * s / steps)).floor().long() if s < steps \
            else torch.zeros_like(total)
        n_commit = (unknown.sum(1) - still_open).clamp_min(0)  # (B,)
        rank = conf.argsort(dim=1, descending=True).argsort(dim=1)  # rank 0 = most confident
        commit = unknown & (rank < n_commit.unsqueeze(1))
        tokens = torch.where(commit, draw, tokens)
        unknown &= ~commit
        if callback is not None:
            callback(s, steps)
            reported = s
    if callback is not None and reported < steps:  # the hole closed before the last step
        callback(steps, steps)
    return tokens


PRIOR_VARIANTS: dict[str, dict[str, Any]] = {
    "ict_prior_small": dict(vocab=128, size=32, dim=192, depth=6, heads=6),
    "ict_prior_tiny": dict(vocab=16, size=8, dim=32, depth=2, heads=2),
}
"""ICT's released priors are 30-35 layers of width 512-1024 (``run.py``); these are CPU-sized: ``ict_prior_small``
(2.9 M parameters) costs ~3.9 CPU-s per training step of batch 8 at 32x32 tokens on one core here (width 256 / 8
blocks, 6.6 M, costs 8.1 s), so a 5 CPU-hour budget buys ~4,600 steps."""


def _variant(defaults: dict[str, Any]):
    def factory(**overrides: Any) -> AppearancePrior:
        return AppearancePrior(**{**defaults, **overrides})

    return factory


for _name, _defaults in PRIOR_VARIANTS.items():
    MODELS.add(_name, _variant(_defaults), family="ict", kind="inpainting_prior")

"""Scaled dot-product attention: one readable reference path and one fast path, with the same masking rules.

Both paths compute ``softmax(Q K^T * scale) V`` with ``scale = 1/sqrt(d)`` by default. The scale keeps the
logits at unit variance: for q, k with independent unit-variance entries, Var(q.k) = d, so without it the
softmax saturates as d grows (tested in ``tests/nn/test_nn_sdpa.py``).

Masking conventions (shared by every attention layer in ``torchworks.nn``):

* ``attn_mask``: bool, **True = may attend** (the ``F.scaled_dot_product_attention`` convention; note that
  ``torch.nn.MultiheadAttention`` uses the opposite: True = blocked). Shape (Tq, Tk) or (B|1, H|1, Tq, Tk).
* ``key_padding_mask``: bool (B, Tk), **True = padding** (this key is ignored by every query).
* ``is_causal``: query i may attend key j iff ``j <= i + (Tk - Tq)``, i.e. the mask is aligned to the
  bottom-right corner. With Tq == Tk that is the usual lower triangle; with Tq < Tk (decoding with a KV cache,
  where the Tq queries are the *last* Tq positions) every query sees the whole past. This differs from
  ``F.scaled_dot_product_attention(is_causal=True)``, which aligns top-left.

The three are combined with logical AND. A query row whose keys are all masked returns **zeros** (and zero
attention weights) instead of the NaN that a softmax over only -inf gives; gradients through such rows are zero.

References:
    Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.2.1.
    PyTorch ``torch.nn.functional.scaled_dot_product_attention`` (the fast path).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from torchworks.core.errors import ShapeError

__all__ = [
    "attention_logits",
    "attention_reference",
    "attention_sdpa",
    "merge_masks",
    "scaled_dot_product_attention",
]


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ShapeError(
            f"q, k, v must be 4-D (B, H, T, D); got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if q.shape[:2] != k.shape[:2] or k.shape[:2] != v.shape[:2]:
        raise ShapeError(
            f"q, k, v must share (B, H); got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ShapeError(f"q and k must share the head dim D; got q {tuple(q.shape)}, k {tuple(k.shape)}")
    if k.shape[2] != v.shape[2]:
        raise ShapeError(f"k and v must share the key length Tk; got k {tuple(k.shape)}, v {tuple(v.shape)}")


def merge_masks(
    attn_mask: Tensor | None,
    key_padding_mask: Tensor | None,
    is_causal: bool,
    batch: int,
    heads: int,
    q_len: int,
    k_len: int,
    device: torch.device | None = None,
) -> Tensor | None:
    """Combine the three masking inputs into one bool mask, True = may attend.

    Args:
        attn_mask: Optional bool (Tq, Tk) or (B|1, H|1, Tq, Tk); True = query may attend key.
        key_padding_mask: Optional bool (B, Tk); True = this key is padding.
        is_causal: Apply the bottom-right aligned causal mask (see module docstring).
        batch: Batch size B, to validate the masks' shapes.
        heads: Number of heads H, to validate ``attn_mask``.
        q_len: Query length Tq.
        k_len: Key length Tk (including cached keys).
        device: Device of the causal mask when no other mask fixes it.

    Returns:
        None if nothing is masked, else a bool tensor broadcastable to (B, H, Tq, Tk).

    Raises:
        ShapeError: If a mask has a shape that does not fit (B, H, Tq, Tk); the message names both.
        ValueError: If a mask is not bool.
    """
    allowed: Tensor | None = None
    if attn_mask is not None:
        if attn_mask.dtype != torch.bool:
            raise ValueError(f"attn_mask must be bool (True = may attend), got dtype {attn_mask.dtype}")
        given = tuple(attn_mask.shape)
        if attn_mask.dim() == 2:
            attn_mask = attn_mask[None, None]
        expected = f"(Tq, Tk) or (B|1, H|1, Tq, Tk) with B={batch}, H={heads}, Tq={q_len}, Tk={k_len}"
        if attn_mask.dim() != 4:
            raise ShapeError(f"attn_mask must be {expected}; got {given}")
        b, h, tq, tk = attn_mask.shape
        if (tq, tk) != (q_len, k_len) or b not in (1, batch) or h not in (1, heads):
            raise ShapeError(f"attn_mask must be {expected}; got {given}")
        allowed = attn_mask
        device = attn_mask.device
    if key_padding_mask is not None:
        if key_padding_mask.dtype != torch.bool:
            raise ValueError(f"key_padding_mask must be bool (True = padding), got dtype {key_padding_mask.dtype}")
        if tuple(key_padding_mask.shape) != (batch, k_len):
            raise ShapeError(
                f"key_padding_mask must be (B, Tk) = ({batch}, {k_len}); got {tuple(key_padding_mask.shape)}"
            )
        keep = ~key_padding_mask[:, None, None, :]  # (B, 1, 1, Tk)
        allowed = keep if allowed is None else allowed & keep
        device = key_padding_mask.device
    # With one query and causal alignment at the bottom-right, the query is the newest position and sees all keys.
    if is_causal and not (q_len == 1 and k_len >= 1):
        causal = torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(diagonal=k_len - q_len)
        allowed = causal[None, None] if allowed is None else allowed & causal
    return allowed


def _safe(allowed: Tensor) -> tuple[Tensor, Tensor]:
    """Unmask fully masked rows (so softmax stays finite) and return which rows had at least one key."""
    row_ok = allowed.any(dim=-1, keepdim=True)  # (B|1, H|1, Tq, 1)
    return allowed | ~row_ok, row_ok


def attention_logits(q: Tensor, k: Tensor, scale: float | None = None) -> Tensor:
    """Scaled attention logits ``Q K^T * scale``.

    Args:
        q: Queries (..., Tq, D), float.
        k: Keys (..., Tk, D), same dtype.
        scale: Multiplier of the dot products; default ``1/sqrt(D)`` (unit-variance logits for unit-variance q, k).

    Returns:
        Logits (..., Tq, Tk).
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return (q @ k.transpose(-2, -1)) * scale


def attention_reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    attn_mask: Tensor | None = None,
    key_padding_mask: Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Readable attention: explicit ``softmax(Q K^T * scale) V`` that also returns the weights.

    Args:
        q: Queries (B, H, Tq, D), float.
        k: Keys (B, H, Tk, D), same dtype.
        v: Values (B, H, Tk, Dv), same dtype.
        attn_mask: Optional bool (Tq, Tk) or (B|1, H|1, Tq, Tk), True = may attend.
        key_padding_mask: Optional bool (B, Tk), True = padding.
        is_causal: Bottom-right aligned causal mask (query i sees keys j <= i + Tk - Tq).
        dropout_p: Dropout on the attention weights (pass 0.0 in eval mode).
        scale: Logit scale; default ``1/sqrt(D)``.

    Returns:
        ``(out, weights)``: out (B, H, Tq, Dv); weights (B, H, Tq, Tk), the softmax **before** dropout, rows sum
        to 1, or 0 for fully masked rows.
    """
    _check_qkv(q, k, v)
    b, h, tq, _ = q.shape
    allowed = merge_masks(attn_mask, key_padding_mask, is_causal, b, h, tq, k.shape[2], q.device)
    scores = attention_logits(q, k, scale)  # (B, H, Tq, Tk)
    row_ok = None
    if allowed is not None:
        allowed, row_ok = _safe(allowed)
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = scores.softmax(dim=-1)
    if row_ok is not None:
        weights = weights.masked_fill(~row_ok, 0.0)
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0.0 else weights
    return dropped @ v, weights


def attention_sdpa(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    attn_mask: Tensor | None = None,
    key_padding_mask: Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> Tensor:
    """Fast attention on ``F.scaled_dot_product_attention`` with the masking rules of this module.

    Same arguments and output ``out`` (B, H, Tq, Dv) as :func:`attention_reference` (no weights).
    When only ``is_causal`` is set and Tq == Tk, SDPA's own causal kernel runs without building a mask.

    bfloat16 on CPU (e.g. under the engine's ``bf16-mixed`` autocast) takes the explicit path instead:
    torch's CPU flash kernel is slow in low precision (forward + backward of (128, 4, 65, 32) measured at 125 ms
    in bfloat16 against 41 ms in float32), while two bfloat16 matmuls and a softmax take 21 ms
    (torch's CPU softmax accumulates bfloat16 in float32).
    """
    _check_qkv(q, k, v)
    if q.device.type == "cpu" and q.dtype == torch.bfloat16:
        return attention_reference(q, k, v, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                   is_causal=is_causal, dropout_p=dropout_p, scale=scale)[0]
    b, h, tq, _ = q.shape
    tk = k.shape[2]
    if attn_mask is None and key_padding_mask is None and (not is_causal or tq == tk):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=is_causal, scale=scale)
    allowed = merge_masks(attn_mask, key_padding_mask, is_causal, b, h, tq, tk, q.device)
    if allowed is None:  # causal with a single query: nothing is masked
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=scale)
    allowed, row_ok = _safe(allowed)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p, scale=scale)
    return out.masked_fill(~row_ok, 0.0)


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    attn_mask: Tensor | None = None,
    key_padding_mask: Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
    need_weights: bool = False,
    impl: str = "sdpa",
) -> tuple[Tensor, Tensor | None]:
    """Attention dispatcher: the fast path, or the reference path when weights are needed.

    Args:
        q, k, v, attn_mask, key_padding_mask, is_causal, dropout_p, scale: As in :func:`attention_reference`.
        need_weights: Also return the per-head weights (B, H, Tq, Tk); forces the reference path.
        impl: ``"sdpa"`` (default, fast) or ``"reference"``; both agree within 1e-6 in float32.

    Returns:
        ``(out, weights)``: out (B, H, Tq, Dv); weights (B, H, Tq, Tk) or None.
    """
    if impl not in ("sdpa", "reference"):
        raise ValueError(f"impl must be 'sdpa' or 'reference', got {impl!r}")
    kwargs = dict(attn_mask=attn_mask, key_padding_mask=key_padding_mask, is_causal=is_causal,
                  dropout_p=dropout_p, scale=scale)
    if need_weights or impl == "reference":
        out, weights = attention_reference(q, k, v, **kwargs)
        return out, (weights if need_weights else None)
    return attention_sdpa(q, k, v, **kwargs), None

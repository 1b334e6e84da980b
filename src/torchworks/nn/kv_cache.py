"""Key/value cache for incremental (token-by-token) decoding with :class:`~torchworks.nn.attention.MultiHeadAttention`.

One :class:`KVCache` per attention layer. In self-attention the cache grows by the new tokens' keys and values
at every call; in cross-attention it holds the projected encoder keys and values, computed once at the first
call and reused afterwards (``MultiHeadAttention`` decides which from the call).

Two storage modes, same results:

* growing (``max_len=None``): ``torch.cat`` at every step; simple, no length limit.
* preallocated (``max_len=N``): one (B, H, N, D) buffer per tensor, filled in place; no re-allocation per
  token, and an error when a step would exceed N.

References:
    Pope et al., "Efficiently Scaling Transformer Inference", MLSys 2023 (KV caching).
"""

from __future__ import annotations

import torch
from torch import Tensor

from torchworks.core.errors import ShapeError

__all__ = ["KVCache"]


class KVCache:
    """Per-layer cache of attention keys and values, batch-first (B, H, T, D).

    Args:
        max_len: Preallocate room for this many positions; ``None`` grows by concatenation.

    Example:
        >>> caches = [KVCache(max_len=256) for _ in range(n_layers)]  # one per layer
    """

    def __init__(self, max_len: int | None = None) -> None:
        if max_len is not None and max_len < 1:
            raise ValueError(f"max_len must be a positive int or None, got {max_len}")
        self.max_len = max_len
        self._k: Tensor | None = None
        self._v: Tensor | None = None
        self._len = 0

    def __len__(self) -> int:
        """Number of cached positions (the offset of the next token)."""
        return self._len

    def __repr__(self) -> str:
        return f"KVCache(len={self._len}, max_len={self.max_len})"

    @property
    def keys(self) -> Tensor | None:
        """Cached keys (B, H, len, D), or None when empty."""
        return None if self._k is None else self._k[:, :, : self._len]

    @property
    def values(self) -> Tensor | None:
        """Cached values (B, H, len, Dv), or None when empty."""
        return None if self._v is None else self._v[:, :, : self._len]

    def reset(self) -> None:
        """Forget every cached position (the preallocated buffers are kept for reuse)."""
        self._len = 0
        if self.max_len is None:
            self._k = self._v = None

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append new keys and values and return everything cached so far.

        Args:
            k: New keys (B, H, T_new, D).
            v: New values (B, H, T_new, Dv).

        Returns:
            ``(keys, values)`` of shapes (B, H, len + T_new, D) and (B, H, len + T_new, Dv). With preallocation
            these are views of the buffer: valid until the next ``update``.

        Raises:
            ShapeError: If k, v do not match each other or the cached (B, H, D); or the preallocated length
                would be exceeded.
        """
        if k.dim() != 4 or v.dim() != 4 or k.shape[:3] != v.shape[:3]:
            raise ShapeError(f"k, v must be (B, H, T_new, D) with equal B, H, T_new; got {tuple(k.shape)}, "
                             f"{tuple(v.shape)}")
        if self._k is not None and self._len > 0 and (
            k.shape[:2] != self._k.shape[:2] or k.shape[3] != self._k.shape[3] or v.shape[3] != self._v.shape[3]
        ):
            raise ShapeError(f"new k {tuple(k.shape)} / v {tuple(v.shape)} do not match the cache "
                             f"{tuple(self.keys.shape)} / {tuple(self.values.shape)} in (B, H, D)")
        new_len = self._len + k.shape[2]
        if self.max_len is None:
            if self._len == 0:
                self._k, self._v = k, v
            else:
                self._k = torch.cat([self._k, k], dim=2)
                self._v = torch.cat([self._v, v], dim=2)
        else:
            if new_len > self.max_len:
                raise ShapeError(f"KVCache overflow: {self._len} cached + {k.shape[2]} new > max_len {self.max_len}")
            if self._k is None or self._len == 0 and not self._fits(k, v):
                b, h, _, d = k.shape
                self._k = k.new_empty(b, h, self.max_len, d)
                self._v = v.new_empty(b, h, self.max_len, v.shape[3])
            self._k[:, :, self._len : new_len] = k
            self._v[:, :, self._len : new_len] = v
        self._len = new_len
        return self.keys, self.values

    def _fits(self, k: Tensor, v: Tensor) -> bool:
        """Whether the preallocated buffers can be reused for tensors like k, v (after a reset)."""
        return (
            self._k.shape[:2] == k.shape[:2] and self._k.shape[3] == k.shape[3] and self._v.shape[3] == v.shape[3]
            and self._k.dtype == k.dtype and self._k.device == k.device
        )

    def reorder(self, index: Tensor) -> None:
        """Select batch rows in place, e.g. to follow the surviving hypotheses of a beam search.

        Args:
            index: Long (B',) indices into the cached batch dimension; B' may differ from B.
        """
        if self._k is None:
            return
        self._k = self._k.index_select(0, index)
        self._v = self._v.index_select(0, index)

"""Position information for attention: sinusoidal and learned absolute encodings, and rotary embeddings (RoPE).

Absolute encodings are *added* to the token embeddings (B, T, C). RoPE instead *rotates* queries and keys
(B, H, T, D) inside attention, so that q_m . k_n depends only on the offset m - n.

Every module takes ``offset`` (first position of the input, e.g. the KV-cache length when decoding) or an
explicit ``positions`` tensor, so cached decoding sees the same positions as a full forward pass.

References:
    Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.5 (sinusoidal).
    Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding", 2021 (RoPE).
    GPT-J (interleaved pairs) and GPT-NeoX / HF LLaMA ``rotate_half`` (half layout) reference implementations.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from torchworks.core.errors import ShapeError

__all__ = [
    "LearnedPositionalEmbedding",
    "RotaryEmbedding",
    "SinusoidalPositionalEncoding",
    "apply_rotary",
    "rope_permutation",
    "sinusoidal_table",
]

ROPE_LAYOUTS = ("half", "interleaved")


def _positions(t: int, offset: int, positions: Tensor | None, device: torch.device) -> Tensor:
    """Integer positions (T,) or (B, T): ``offset + arange(T)`` unless given explicitly."""
    if positions is not None:
        if positions.shape[-1] != t:
            raise ShapeError(f"positions must end in T={t}; got {tuple(positions.shape)}")
        return positions.to(device)
    return torch.arange(offset, offset + t, device=device)


def sinusoidal_table(num_positions: int, dim: int, base: float = 10000.0) -> Tensor:
    """The paper's encoding: PE[pos, 2i] = sin(pos / base^(2i/dim)), PE[pos, 2i+1] = cos(pos / base^(2i/dim)).

    Args:
        num_positions: Number of rows (positions 0 .. num_positions-1).
        dim: Model width C; must be even.
        base: Wavelength base (10000 in the paper).

    Returns:
        Float32 table (num_positions, dim), values in [-1, 1]. Computed in float64 so large positions stay exact.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal encoding needs an even dim, got {dim}")
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]
    inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (dim/2,): 1 / base^(2i/dim)
    angles = pos * inv_freq  # (N, dim/2)
    table = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)  # (N, dim): sin, cos interleaved
    return table.float()


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal encoding to token embeddings (no parameters, not saved in the state dict).

    Args:
        dim: Model width C (even).
        max_len: Longest position + 1 supported.
        base: Wavelength base (10000 in the paper).
        dropout: Dropout on the sum, as in the paper (section 5.4).
    """

    def __init__(self, dim: int, max_len: int = 4096, base: float = 10000.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_table(max_len, dim, base), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, offset: int = 0, positions: Tensor | None = None) -> Tensor:
        """Return ``dropout(x + PE[positions])``.

        Args:
            x: Embeddings (B, T, C), float.
            offset: Position of ``x[:, 0]`` (e.g. the KV-cache length).
            positions: Optional long (T,) or (B, T) positions, overriding ``offset``.
        """
        return self.dropout(x + _lookup(self.table, x, offset, positions).to(x.dtype))


class LearnedPositionalEmbedding(nn.Module):
    """Adds a learned embedding per position (GPT-2, BERT, ViT). Initialised N(0, 0.02^2) as in GPT-2.

    Args:
        max_len: Number of positions (the block size).
        dim: Model width C.
        dropout: Dropout on the sum.
    """

    def __init__(self, max_len: int, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, offset: int = 0, positions: Tensor | None = None) -> Tensor:
        """Return ``dropout(x + weight[positions])``; x (B, T, C), positions as in the sinusoidal module."""
        return self.dropout(x + _lookup(self.weight, x, offset, positions))


def _lookup(table: Tensor, x: Tensor, offset: int, positions: Tensor | None) -> Tensor:
    if x.dim() != 3 or x.shape[-1] != table.shape[1]:
        raise ShapeError(f"x must be (B, T, C={table.shape[1]}); got {tuple(x.shape)}")
    pos = _positions(x.shape[1], offset, positions, x.device)
    if pos.numel() and (int(pos.max()) >= table.shape[0] or int(pos.min()) < 0):
        raise ValueError(f"positions up to {int(pos.max())} exceed the table of {table.shape[0]} positions "
                         "(raise max_len)")
    return table[pos]  # (T, C) or (B, T, C)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor, layout: str = "half") -> Tensor:
    """Rotate channel pairs of x by the angles whose cos/sin are given.

    ``layout="half"`` pairs channel i with i + R/2 (GPT-NeoX, HF LLaMA ``rotate_half``); ``"interleaved"``
    pairs 2i with 2i+1 (RoFormer paper, GPT-J). Pair i turns by angle ``pos * base^(-2i/R)`` in both layouts,
    so they are the same rotation up to a fixed permutation of channels. Channels beyond R = 2 * cos.shape[-1]
    pass through unchanged (partial rotary, as GPT-NeoX ``rotary_pct``).

    Args:
        x: (..., T, D) float, e.g. queries (B, H, T, D).
        cos, sin: (T, R/2) or broadcastable to (..., T, R/2), R <= D, same dtype as x.
        layout: ``"half"`` or ``"interleaved"``.

    Returns:
        Tensor like x.
    """
    if layout not in ROPE_LAYOUTS:
        raise ValueError(f"layout must be one of {ROPE_LAYOUTS}, got {layout!r}")
    r = 2 * cos.shape[-1]
    if r > x.shape[-1]:
        raise ShapeError(f"rotary dim {r} exceeds the head dim of x {tuple(x.shape)}")
    xr, rest = x[..., :r], x[..., r:]
    if layout == "half":
        x1, x2 = xr[..., : r // 2], xr[..., r // 2 :]
        out = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
    else:
        x1, x2 = xr[..., 0::2], xr[..., 1::2]
        out = torch.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).flatten(-2)  # re-interleave pairs
    return torch.cat([out, rest], dim=-1) if rest.shape[-1] else out


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE) for queries and keys of one attention layer (no parameters).

    Args:
        head_dim: Per-head width D.
        layout: ``"half"`` (default; GPT-NeoX / HF LLaMA weights) or ``"interleaved"`` (RoFormer paper, GPT-J).
        base: Frequency base theta (10000 in the paper).
        rotary_dim: Rotate only the first ``rotary_dim`` channels (even, <= D); default all of them.

    Angles are computed in float32 the same way as HF (``inv_freq = 1 / base^(arange(0, R, 2) / R)``, then
    ``pos * inv_freq``) so that weights trained with HF rotate identically.
    """

    def __init__(self, head_dim: int, layout: str = "half", base: float = 10000.0, rotary_dim: int | None = None):
        super().__init__()
        rotary_dim = head_dim if rotary_dim is None else rotary_dim
        if rotary_dim % 2 or not 0 < rotary_dim <= head_dim:
            raise ValueError(f"rotary_dim must be even and in (0, head_dim={head_dim}], got {rotary_dim}")
        if layout not in ROPE_LAYOUTS:
            raise ValueError(f"layout must be one of {ROPE_LAYOUTS}, got {layout!r}")
        self.head_dim, self.rotary_dim, self.layout, self.base = head_dim, rotary_dim, layout, base
        inv_freq = 1.0 / (base ** (torch.arange(0, rotary_dim, 2, dtype=torch.int64).float() / rotary_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, rotary_dim={self.rotary_dim}, layout={self.layout!r}, base={self.base}"

    def cos_sin(self, positions: Tensor, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
        """cos and sin of the angles, each (..., R/2) for integer positions (...,)."""
        angles = positions.to(torch.float32)[..., None] * self.inv_freq  # (..., R/2)
        return angles.cos().to(dtype), angles.sin().to(dtype)

    def forward(self, x: Tensor, offset: int = 0, positions: Tensor | None = None) -> Tensor:
        """Rotate x by its positions.

        Args:
            x: Queries or keys (B, H, T, D), float, D == head_dim.
            offset: Position of ``x[:, :, 0]`` (the KV-cache length when decoding).
            positions: Optional long (T,) or (B, T) positions, overriding ``offset``.

        Returns:
            Tensor like x.
        """
        if x.dim() != 4 or x.shape[-1] != self.head_dim:
            raise ShapeError(f"x must be (B, H, T, D={self.head_dim}); got {tuple(x.shape)}")
        pos = _positions(x.shape[2], offset, positions, x.device)
        cos, sin = self.cos_sin(pos, x.dtype)
        if cos.dim() == 3:  # per-sample positions (B, T, R/2) -> broadcast over heads
            cos, sin = cos[:, None], sin[:, None]
        return apply_rotary(x, cos, sin, self.layout)


def rope_permutation(dim: int) -> Tensor:
    """Channel order that maps the interleaved layout onto the half layout: [0, 2, 4, ..., 1, 3, 5, ...].

    ``apply_rotary(x[..., p], c, s, "half")[..., argsort(p)] == apply_rotary(x, c, s, "interleaved")``; use it
    to convert q/k projection weights between GPT-J-style and NeoX-style checkpoints (permute output rows).
    """
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    return torch.cat([torch.arange(0, dim, 2), torch.arange(1, dim, 2)])


"""Multi-head attention for self- and cross-attention, batch-first, with optional RoPE and a KV cache.

Each head attends in its own D = E / H dimensional subspace; the heads' outputs are concatenated and mixed by
an output projection. Masking follows :mod:`torchworks.nn.sdpa`: bool ``attn_mask`` True = may attend,
``key_padding_mask`` True = padding, ``is_causal`` aligned bottom-right (correct with a KV cache).

References:
    Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.2.2.
    ``torch.nn.MultiheadAttention`` (weights load with :meth:`MultiHeadAttention.from_torch`; note its bool
    ``attn_mask`` means True = *blocked*, see :func:`attn_mask_from_torch`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.nn.kv_cache import KVCache
from torchworks.nn.positional import RotaryEmbedding
from torchworks.nn.sdpa import scaled_dot_product_attention

__all__ = ["MultiHeadAttention", "attn_mask_from_torch"]


def attn_mask_from_torch(attn_mask: Tensor) -> Tensor:
    """Convert a ``torch.nn.MultiheadAttention``/``nn.Transformer`` mask to ours (bool, True = may attend).

    Args:
        attn_mask: torch's (Tq, Tk) mask: bool with True = blocked, or float additive with -inf = blocked
            (other float values are not representable as a bool mask and raise).
    """
    if attn_mask.dtype == torch.bool:
        return ~attn_mask
    finite = torch.isfinite(attn_mask)
    if not bool(((attn_mask == 0) | ~finite).all()):
        raise ValueError("only 0 / -inf float masks convert to bool; pass soft biases another way")
    return finite


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention (batch-first).

    Args:
        embed_dim: Model width E (queries and output).
        num_heads: Number of heads H; must divide E.
        kdim: Width of keys input (cross-attention); default E.
        vdim: Width of values input; default E.
        bias: Add biases to the q/k/v and output projections.
        dropout: Dropout probability on the attention weights (training mode only).
        fused_qkv: Store q/k/v projections as one (3E, E) ``in_proj`` (one matmul in self-attention, the
            ``torch.nn.MultiheadAttention`` layout); default True when kdim == vdim == E, else separate
            ``q_proj``/``k_proj``/``v_proj``.
        rope: Optional :class:`RotaryEmbedding` applied to queries and keys in self-attention (never to
            cross-attention, whose keys have no positions shared with the queries).
        impl: ``"sdpa"`` (fast, default) or ``"reference"`` (explicit softmax); weights requests use the latter.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        kdim: int | None = None,
        vdim: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        fused_qkv: bool | None = None,
        rope: RotaryEmbedding | None = None,
        impl: str = "sdpa",
    ) -> None:
        super().__init__()
        if impl not in ("sdpa", "reference"):
            raise ValueError(f"impl must be 'sdpa' or 'reference', got {impl!r}")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.kdim, self.vdim = kdim or embed_dim, vdim or embed_dim
        same = self.kdim == embed_dim and self.vdim == embed_dim
        self.fused_qkv = same if fused_qkv is None else fused_qkv
        if self.fused_qkv and not same:
            raise ValueError(f"fused_qkv needs kdim == vdim == embed_dim, got {self.kdim}, {self.vdim}, {embed_dim}")
        if self.fused_qkv:
            self.in_proj = nn.Linear(embed_dim, 3 * embed_dim, bias=bias)
        else:
            self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
            self.k_proj = nn.Linear(self.kdim, embed_dim, bias=bias)
            self.v_proj = nn.Linear(self.vdim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        if rope is not None and rope.head_dim != self.head_dim:
            raise ValueError(f"rope.head_dim {rope.head_dim} != embed_dim / num_heads = {self.head_dim}")
        self.rope = rope
        self.dropout, self.impl = dropout, impl

    def _project(self, x: Tensor, i: int) -> Tensor:
        """Projection i (0 = q, 1 = k, 2 = v) of x (B, T, E_in) -> (B, T, E)."""
        if self.fused_qkv:
            e = self.embed_dim
            b = None if self.in_proj.bias is None else self.in_proj.bias[i * e : (i + 1) * e]
            return F.linear(x, self.in_proj.weight[i * e : (i + 1) * e], b)
        return (self.q_proj, self.k_proj, self.v_proj)[i](x)

    def _heads(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        *,
        attn_mask: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
        kv_cache: KVCache | None = None,
        positions: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` to ``key``/``value``.

        Self-attention when ``key`` is None or ``query`` itself is passed as key (and value): then a
        ``kv_cache`` grows by the new tokens and RoPE positions start at its length. Otherwise cross-attention:
        a non-empty ``kv_cache`` holds the projected memory, computed at the first call; later calls skip
        projecting ``key``/``value``, so pass the same memory every step.

        Args:
            query: (B, Tq, E) float.
            key: (B, Tk, kdim) float, or None for self-attention.
            value: (B, Tk, vdim) float; defaults to ``key``.
            attn_mask: Optional bool (Tq, Tk) or (B|1, H|1, Tq, Tk), True = may attend. Tk counts cached keys.
            key_padding_mask: Optional bool (B, Tk), True = padding; Tk counts cached keys.
            is_causal: Causal mask aligned bottom-right: with a cache, new tokens see all cached ones.
            need_weights: Also return per-head attention weights (B, H, Tq, Tk) (uses the reference path).
            kv_cache: Optional per-layer :class:`KVCache` for incremental decoding.
            positions: Optional long (Tq,) or (B, Tq) RoPE positions (default: cache length + arange(Tq)).

        Returns:
            ``(out, weights)``: out (B, Tq, E); weights (B, H, Tq, Tk) or None. Fully masked query rows give
            zero attention output (so ``out`` there is the output-projection bias), never NaN.
        """
        self_attn = key is None or (key is query and (value is None or value is query))
        if query.dim() != 3 or query.shape[-1] != self.embed_dim:
            raise ShapeError(f"query must be (B, Tq, E={self.embed_dim}); got {tuple(query.shape)}")
        b, tq, _ = query.shape
        reuse = kv_cache is not None and not self_attn and len(kv_cache) > 0
        if self_attn:
            if self.fused_qkv:
                q, k, v = self.in_proj(query).split(self.embed_dim, dim=-1)  # 3 x (B, Tq, E)
            else:
                q, k, v = self._project(query, 0), self._project(query, 1), self._project(query, 2)
        else:
            q = self._project(query, 0)
            if not reuse:
                value = key if value is None else value
                self._check_kv(key, value, b)
                k, v = self._project(key, 1), self._project(value, 2)
        q = self._heads(q)
        if self_attn:
            k, v = self._heads(k), self._heads(v)
            if self.rope is not None:
                offset = len(kv_cache) if kv_cache is not None else 0
                q, k = self.rope(q, offset, positions), self.rope(k, offset, positions)
            if kv_cache is not None:
                k, v = kv_cache.update(k, v)
        elif reuse:
            k, v = kv_cache.keys, kv_cache.values
            if k.shape[0] != b:
                raise ShapeError(f"cached memory has batch {k.shape[0]}, query has {b}")
        else:
            k, v = self._heads(k), self._heads(v)
            if kv_cache is not None:
                kv_cache.update(k, v)
        out, weights = scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, key_padding_mask=key_padding_mask, is_causal=is_causal,
            dropout_p=self.dropout if self.training else 0.0, need_weights=need_weights, impl=self.impl,
        )
        out = out.transpose(1, 2).reshape(b, tq, self.embed_dim)  # (B, H, Tq, D) -> (B, Tq, E)
        return self.out_proj(out), weights

    def _check_kv(self, key: Tensor, value: Tensor, batch: int) -> None:
        if key.dim() != 3 or key.shape[-1] != self.kdim or key.shape[0] != batch:
            raise ShapeError(f"key must be (B={batch}, Tk, kdim={self.kdim}); got {tuple(key.shape)}")
        if value.dim() != 3 or value.shape[-1] != self.vdim or value.shape[:2] != key.shape[:2]:
            raise ShapeError(f"value must be (B, Tk, vdim={self.vdim}) = key's (B, Tk) {tuple(key.shape[:2])}; "
                             f"got {tuple(value.shape)}")

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention, **kwargs) -> MultiHeadAttention:
        """Build a module with the weights of a ``torch.nn.MultiheadAttention`` (any ``batch_first``).

        Our module is always batch-first; give it (B, T, E) inputs. Convert torch-style masks with
        :func:`attn_mask_from_torch`. Extra keyword arguments (``rope``, ``impl``) pass to the constructor.

        Raises:
            ValueError: If ``mha`` uses ``add_bias_kv`` or ``add_zero_attn`` (not supported here).
        """
        if mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("add_bias_kv / add_zero_attn are not supported by MultiHeadAttention.from_torch")
        fused = mha._qkv_same_embed_dim
        ref = mha.in_proj_weight if fused else mha.q_proj_weight
        module = cls(mha.embed_dim, mha.num_heads, kdim=mha.kdim, vdim=mha.vdim, bias=mha.in_proj_bias is not None,
                     dropout=mha.dropout, fused_qkv=fused, **kwargs).to(device=ref.device, dtype=ref.dtype)
        e = mha.embed_dim
        with torch.no_grad():
            if fused:
                module.in_proj.weight.copy_(mha.in_proj_weight)
            else:
                for i, name in enumerate(("q", "k", "v")):
                    proj = getattr(module, f"{name}_proj")
                    proj.weight.copy_(getattr(mha, f"{name}_proj_weight"))
                    if mha.in_proj_bias is not None:
                        proj.bias.copy_(mha.in_proj_bias[i * e : (i + 1) * e])
            if fused and mha.in_proj_bias is not None:
                module.in_proj.bias.copy_(mha.in_proj_bias)
            module.out_proj.weight.copy_(mha.out_proj.weight)
            if mha.out_proj.bias is not None:
                module.out_proj.bias.copy_(mha.out_proj.bias)
        return module

"""Transformer encoder and decoder blocks (attention + feed-forward with residual connections and LayerNorm).

``norm_first=False`` is the post-LN block of the paper (and of the note): ``x = LN(x + Sublayer(x))``.
``norm_first=True`` is pre-LN (GPT-2, ViT): ``x = x + Sublayer(LN(x))``; it trains stably without warmup at
depth, and a model built from it needs a final LayerNorm after the last block.

Residual dropout is applied to each sub-layer's output before it is added (paper section 5.4).

References:
    Vaswani et al., "Attention Is All You Need", NeurIPS 2017, sections 3.1 and 5.4.
    Xiong et al., "On Layer Normalization in the Transformer Architecture", ICML 2020 (pre-LN).
    ``torch.nn.TransformerEncoderLayer`` / ``TransformerDecoderLayer`` (load with ``from_torch``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.nn.attention import MultiHeadAttention
from torchworks.nn.feedforward import FeedForward
from torchworks.nn.kv_cache import KVCache
from torchworks.nn.positional import RotaryEmbedding

__all__ = ["DecoderBlock", "EncoderBlock", "tie_weights"]


class _Block(nn.Module):
    """Shared parts: self-attention, feed-forward, their norms and residual dropout."""

    def __init__(self, dim, num_heads, ff_dim, dropout, attn_dropout, activation, norm_first, bias, norm_eps, rope,
                 impl, norm_bias=True):
        super().__init__()
        attn_dropout = dropout if attn_dropout is None else attn_dropout
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(dim, num_heads, bias=bias, dropout=attn_dropout, rope=rope, impl=impl)
        self.self_attn_norm = nn.LayerNorm(dim, eps=norm_eps, bias=norm_bias)
        self.ff = FeedForward(dim, ff_dim, activation=activation, dropout=dropout, bias=bias)
        self.ff_norm = nn.LayerNorm(dim, eps=norm_eps, bias=norm_bias)
        self.dropout = nn.Dropout(dropout)

    def _sublayer(self, x: Tensor, norm: nn.LayerNorm, fn) -> tuple[Tensor, Tensor | None]:
        """Residual + norm around ``fn(x) -> (y, weights)`` in the configured (pre/post-LN) order."""
        if self.norm_first:
            y, w = fn(norm(x))
            return x + self.dropout(y), w
        y, w = fn(x)
        return norm(x + self.dropout(y)), w

    def _load_torch(self, layer: nn.Module, pairs: dict[str, str]) -> None:
        with torch.no_grad():
            self.ff.fc1.load_state_dict(layer.linear1.state_dict())
            self.ff.fc2.load_state_dict(layer.linear2.state_dict())
            for ours, theirs in pairs.items():
                getattr(self, ours).load_state_dict(getattr(layer, theirs).state_dict())


def _torch_config(layer: nn.Module) -> dict:
    act = layer.activation
    if act is F.relu or isinstance(act, nn.ReLU):
        activation = "relu"
    elif act is F.gelu or (isinstance(act, nn.GELU) and act.approximate == "none"):
        activation = "gelu"
    else:
        raise ValueError(f"unsupported activation in torch layer: {act}")
    return dict(dim=layer.linear1.in_features, num_heads=layer.self_attn.num_heads, ff_dim=layer.linear1.out_features,
                dropout=layer.dropout.p, attn_dropout=layer.self_attn.dropout, activation=activation,
                norm_first=layer.norm_first, bias=layer.linear1.bias is not None, norm_eps=layer.norm1.eps)


class EncoderBlock(_Block):
    """Self-attention + feed-forward block (bidirectional unless ``is_causal``).

    Args:
        dim: Model width C.
        num_heads: Attention heads (divides C).
        ff_dim: Feed-forward inner width; default 4 * C.
        dropout: Residual and FFN dropout (0.1 in the paper).
        attn_dropout: Dropout on attention weights; default ``dropout``.
        activation: FFN activation: ``"relu"`` (paper), ``"gelu"``, ``"gelu_tanh"``, ``"swiglu"``.
        norm_first: False = post-LN (paper), True = pre-LN.
        bias: Biases in the linear maps.
        norm_eps: LayerNorm epsilon.
        rope: Optional :class:`RotaryEmbedding` for the self-attention.
        impl: Attention implementation, ``"sdpa"`` or ``"reference"``.
        norm_bias: Biases (shifts) in the LayerNorms; False with ``bias=False`` is nanoGPT's bias-free block.
    """

    def __init__(self, dim: int, num_heads: int, ff_dim: int | None = None, *, dropout: float = 0.1,
                 attn_dropout: float | None = None, activation: str = "relu", norm_first: bool = False,
                 bias: bool = True, norm_eps: float = 1e-5, rope: RotaryEmbedding | None = None, impl: str = "sdpa",
                 norm_bias: bool = True):
        super().__init__(dim, num_heads, ff_dim, dropout, attn_dropout, activation, norm_first, bias, norm_eps, rope,
                         impl, norm_bias)

    def forward(self, x: Tensor, *, attn_mask: Tensor | None = None, key_padding_mask: Tensor | None = None,
                is_causal: bool = False, need_weights: bool = False, kv_cache: KVCache | None = None,
                positions: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """Run the block.

        Args:
            x: (B, T, C) float.
            attn_mask: Optional bool (T, T) or (B|1, H|1, T, T), True = may attend.
            key_padding_mask: Optional bool (B, T), True = padding.
            is_causal: Causal self-attention (then this is a GPT-style decoder block without cross-attention).
            need_weights: Also return the self-attention weights (B, H, T, T).
            kv_cache: Optional :class:`KVCache` for incremental decoding (with ``is_causal``).
            positions: Optional RoPE positions (T,) or (B, T).

        Returns:
            (B, T, C), or ``(out, weights)`` when ``need_weights``.
        """
        x, w = self._sublayer(x, self.self_attn_norm, lambda h: self.self_attn(
            h, attn_mask=attn_mask, key_padding_mask=key_padding_mask, is_causal=is_causal,
            need_weights=need_weights, kv_cache=kv_cache, positions=positions))
        x, _ = self._sublayer(x, self.ff_norm, lambda h: (self.ff(h), None))
        return (x, w) if need_weights else x

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer, **kwargs) -> EncoderBlock:
        """Copy a ``torch.nn.TransformerEncoderLayer`` (relu or exact gelu); kwargs (rope, impl) go to __init__."""
        block = cls(**_torch_config(layer), **kwargs).to(layer.linear1.weight)  # same device and dtype
        block.self_attn = MultiHeadAttention.from_torch(layer.self_attn, **kwargs)
        block._load_torch(layer, {"self_attn_norm": "norm1", "ff_norm": "norm2"})
        return block


class DecoderBlock(_Block):
    """Causal self-attention + (optional) cross-attention to an encoder memory + feed-forward.

    Args:
        dim, num_heads, ff_dim, dropout, attn_dropout, activation, norm_first, bias, norm_eps, rope, impl, norm_bias:
            As in :class:`EncoderBlock` (RoPE applies to the self-attention only).
        cross_attention: Include the cross-attention sub-layer (False gives a GPT-style block).
        memory_dim: Width of the encoder memory; default C.
    """

    def __init__(self, dim: int, num_heads: int, ff_dim: int | None = None, *, cross_attention: bool = True,
                 memory_dim: int | None = None, dropout: float = 0.1, attn_dropout: float | None = None,
                 activation: str = "relu", norm_first: bool = False, bias: bool = True, norm_eps: float = 1e-5,
                 rope: RotaryEmbedding | None = None, impl: str = "sdpa", norm_bias: bool = True):
        super().__init__(dim, num_heads, ff_dim, dropout, attn_dropout, activation, norm_first, bias, norm_eps, rope,
                         impl, norm_bias)
        self.cross_attn = self.cross_attn_norm = None
        if cross_attention:
            self.cross_attn = MultiHeadAttention(dim, num_heads, kdim=memory_dim, vdim=memory_dim, bias=bias,
                                                 dropout=self.self_attn.dropout, impl=impl)
            self.cross_attn_norm = nn.LayerNorm(dim, eps=norm_eps, bias=norm_bias)

    def forward(self, x: Tensor, memory: Tensor | None = None, *, attn_mask: Tensor | None = None,
                key_padding_mask: Tensor | None = None, is_causal: bool = True,
                memory_attn_mask: Tensor | None = None, memory_key_padding_mask: Tensor | None = None,
                kv_cache: KVCache | None = None, memory_kv_cache: KVCache | None = None,
                positions: Tensor | None = None, need_weights: bool = False):
        """Run the block.

        Args:
            x: Target sequence (B, T, C) float (only the new tokens when decoding with ``kv_cache``).
            memory: Encoder output (B, S, memory_dim); required with cross-attention (with a filled
                ``memory_kv_cache`` its projection is skipped, so pass the same memory at every step).
            attn_mask: Optional bool self-attention mask (T, Tk) or (B|1, H|1, T, Tk), True = may attend.
            key_padding_mask: Optional bool (B, Tk) target padding, True = padding (Tk includes cached tokens).
            is_causal: Causal self-attention (default True).
            memory_attn_mask: Optional bool cross-attention mask (T, S) or (B|1, H|1, T, S).
            memory_key_padding_mask: Optional bool (B, S), True = padded source token.
            kv_cache: Optional self-attention :class:`KVCache`.
            memory_kv_cache: Optional cross-attention :class:`KVCache` (memory projected once, then reused).
            positions: Optional RoPE positions (T,) or (B, T).
            need_weights: Also return self- and cross-attention weights.

        Returns:
            (B, T, C), or ``(out, self_weights (B, H, T, Tk), cross_weights (B, H, T, S) or None)``.
        """
        x, w_self = self._sublayer(x, self.self_attn_norm, lambda h: self.self_attn(
            h, attn_mask=attn_mask, key_padding_mask=key_padding_mask, is_causal=is_causal,
            need_weights=need_weights, kv_cache=kv_cache, positions=positions))
        w_cross = None
        if self.cross_attn is not None:
            if memory is None:
                raise ValueError("DecoderBlock with cross_attention needs memory (B, S, memory_dim)")
            x, w_cross = self._sublayer(x, self.cross_attn_norm, lambda h: self.cross_attn(
                h, memory, memory, attn_mask=memory_attn_mask, key_padding_mask=memory_key_padding_mask,
                need_weights=need_weights, kv_cache=memory_kv_cache))
        elif memory is not None:
            raise ValueError("memory given to a DecoderBlock built with cross_attention=False")
        x, _ = self._sublayer(x, self.ff_norm, lambda h: (self.ff(h), None))
        return (x, w_self, w_cross) if need_weights else x

    @classmethod
    def from_torch(cls, layer: nn.TransformerDecoderLayer, **kwargs) -> DecoderBlock:
        """Copy a ``torch.nn.TransformerDecoderLayer``; kwargs (rope, impl) go to __init__."""
        block = cls(**_torch_config(layer), memory_dim=layer.multihead_attn.kdim, **kwargs).to(layer.linear1.weight)
        block.self_attn = MultiHeadAttention.from_torch(layer.self_attn, **kwargs)
        block.cross_attn = MultiHeadAttention.from_torch(layer.multihead_attn, impl=kwargs.get("impl", "sdpa"))
        block._load_torch(layer, {"self_attn_norm": "norm1", "cross_attn_norm": "norm2", "ff_norm": "norm3"})
        return block


def tie_weights(head: nn.Linear, embedding: nn.Embedding) -> None:
    """Share one matrix between the token embedding and the output head (Press and Wolf, 2017; GPT-2, BERT MLM).

    After the call ``head.weight is embedding.weight``: one parameter, updated by both uses, saved once by
    ``state_dict`` deduplication-aware savers. The head's bias (if any) stays separate.

    Args:
        head: Output projection with weight (V, C).
        embedding: Token embedding with weight (V, C).

    Raises:
        ShapeError: If the two weights differ in shape.
    """
    if head.weight.shape != embedding.weight.shape:
        raise ShapeError(f"cannot tie head weight {tuple(head.weight.shape)} to embedding weight "
                         f"{tuple(embedding.weight.shape)}; both must be (vocab, dim)")
    head.weight = embedding.weight

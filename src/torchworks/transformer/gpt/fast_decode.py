"""One-token decoding step of a :class:`~torchworks.transformer.gpt.model.GPT` without module-call overhead.

A cached generation step moves one token through every block: about 20 small tensor operations per layer. For the
CPU-sized models here (C = 128, 4 layers) each operation takes microseconds and the time goes to Python: module
``__call__`` hooks, shape checks, dropout calls at p = 0, RoPE angles recomputed from the position every call.
:class:`StepDecoder` runs the same operations in the same order on the model's own parameters (no copies: it
sees later weight updates), with the RoPE cos/sin and the position table indexed from tables made once. It
reads and writes the same :class:`~torchworks.nn.kv_cache.KVCache` objects as ``GPT.forward``, so a prompt is
prefilled by the model and continued here.

It serves inference only: eval mode, float32/float64 on the SDPA attention path. :func:`step_decoder` returns None
for anything else (training mode, bfloat16 on CPU, the reference attention implementation) and generation then
uses ``GPT.forward``. ``tests/transformer/gpt/test_tf_fast_decode.py`` pins its logits to ``GPT.forward``'s.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.nn.kv_cache import KVCache
from torchworks.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding, apply_rotary

__all__ = ["StepDecoder", "step_decoder"]

_ACT = {"relu": F.relu, "gelu": F.gelu, "gelu_tanh": lambda h: F.gelu(h, approximate="tanh")}


def step_decoder(model: nn.Module) -> StepDecoder | None:
    """A :class:`StepDecoder` for ``model``, or None when the fast step does not apply (see the module docstring)."""
    from torchworks.transformer.gpt.model import GPT

    if type(model) is not GPT or model.training:
        return None
    ref = model.tok_emb.weight
    if ref.dtype not in (torch.float32, torch.float64):
        return None
    if any(block.self_attn.impl != "sdpa" or not block.self_attn.fused_qkv for block in model.blocks):
        return None
    return StepDecoder(model)


class StepDecoder:
    """``decoder(ids, caches) -> logits``: what ``GPT.forward(ids, kv_caches=caches)`` returns for one new token.

    Args:
        model: A :class:`GPT` in eval mode (see :func:`step_decoder`).
    """

    def __init__(self, model: nn.Module) -> None:
        cfg = model.config
        self.model, self.cfg = model, cfg
        self.heads, self.head_dim = cfg.n_head, cfg.n_embd // cfg.n_head
        self.act = _ACT.get(cfg.activation)
        ref = model.tok_emb.weight
        self.pos_table: Tensor | None = None
        if isinstance(model.pos_emb, LearnedPositionalEmbedding):
            self.pos_table = model.pos_emb.weight
        elif isinstance(model.pos_emb, SinusoidalPositionalEncoding):
            self.pos_table = model.pos_emb.table.to(ref.dtype)
        rope = model.blocks[0].self_attn.rope
        self.rope_cos = self.rope_sin = None
        if rope is not None:
            positions = torch.arange(cfg.block_size, device=ref.device)
            self.rope_cos, self.rope_sin = rope.cos_sin(positions, ref.dtype)  # (block_size, R/2) each
            self.rope_layout = rope.layout

    def _norm(self, x: Tensor, norm: nn.LayerNorm) -> Tensor:
        return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)

    def _attention(self, h: Tensor, block: nn.Module, cache: KVCache, pos: int) -> Tensor:
        attn = block.self_attn
        b = h.shape[0]
        q, k, v = F.linear(h, attn.in_proj.weight, attn.in_proj.bias).view(b, 1, 3, self.heads, self.head_dim) \
            .permute(2, 0, 3, 1, 4)  # 3 x (B, H, 1, D)
        if self.rope_cos is not None:
            cos, sin = self.rope_cos[pos : pos + 1], self.rope_sin[pos : pos + 1]  # (1, R/2)
            q, k = apply_rotary(q, cos, sin, self.rope_layout), apply_rotary(k, cos, sin, self.rope_layout)
        k, v = cache.update(k, v)
        out = F.scaled_dot_product_attention(q, k, v)  # one query sees every cached key: no mask needed
        return F.linear(out.transpose(1, 2).reshape(b, 1, -1), attn.out_proj.weight, attn.out_proj.bias)

    def _ffn(self, h: Tensor, ff: nn.Module) -> Tensor:
        hidden = F.linear(h, ff.fc1.weight, ff.fc1.bias)
        hidden = F.silu(F.linear(h, ff.gate.weight, ff.gate.bias)) * hidden if self.act is None else self.act(hidden)
        return F.linear(hidden, ff.fc2.weight, ff.fc2.bias)

    @torch.no_grad()
    def __call__(self, ids: Tensor, caches: list[KVCache]) -> Tensor:
        """Logits (B, 1, V) for the next token after ``ids`` (B, 1) int64; every cache grows by one position.

        Raises:
            ValueError: the caches are full (block_size positions).
        """
        model, pos = self.model, len(caches[0])
        if pos >= self.cfg.block_size:
            raise ValueError(f"{pos} cached + 1 new positions exceed block_size {self.cfg.block_size}")
        x = F.embedding(ids, model.tok_emb.weight)  # (B, 1, C)
        if self.pos_table is not None:
            x = x + self.pos_table[pos : pos + 1]
        pre = self.cfg.norm_first
        for block, cache in zip(model.blocks, caches, strict=True):
            if pre:
                x = x + self._attention(self._norm(x, block.self_attn_norm), block, cache, pos)
                x = x + self._ffn(self._norm(x, block.ff_norm), block.ff)
            else:
                x = self._norm(x + self._attention(x, block, cache, pos), block.self_attn_norm)
                x = self._norm(x + self._ffn(x, block.ff), block.ff_norm)
        if pre:
            x = self._norm(x, model.ln_f)
        return F.linear(x, model.lm_head.weight, model.lm_head.bias)

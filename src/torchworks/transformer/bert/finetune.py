"""BERT fine-tuning on the shared engine: [CLS] classification and token tagging, and their simple baselines.

Two tasks, registered in ``TASKS`` (pre-training, ``bert_pretrain``, is in :mod:`torchworks.transformer.bert.task`):

* ``bert_classify``: language identification of Multi30k captions (de / en / fr / cs) from the pooled [CLS];
  training sentences come from disjoint line ranges per language, so no caption is seen in two languages.
* ``bert_tag``: capitalisation restoration: the encoder sees lower-cased WikiText and tags every word as
  lower / Title / UPPER / mIxed, predicted on the word's first piece; same article split as pre-training.

Both start from a ``bert_pretrain`` checkpoint (``init_from``: encoder weights, model size and vocabulary all come
from it) or from scratch. The baselines they are judged against live here too: character n-gram Naive Bayes
(:class:`CharNgramNaiveBayes`) and most-frequent-tag-per-word (:class:`MostFrequentTag`).
"""

from __future__ import annotations

import gzip
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from torchworks.core.checkpoint import build_model, load_checkpoint
from torchworks.core.errors import CheckpointError
from torchworks.core.registry import TASKS
from torchworks.transformer.bert.data import (
    _collate,
    _Items,
    _tokenizer_bytes,
    _tokenizer_for,
    _tokenizer_from_bytes,
    load_wikitext_articles,
    split_documents,
)
from torchworks.transformer.bert.model import IGNORE
from torchworks.transformer.bert.task import _BertTask, _Optim, _wikitext_files

__all__ = ["CLASSIFY_KINDS", "LANGUAGES", "TAGS", "BertClassifyConfig", "BertClassifyTask", "BertTagConfig",
           "BertTagTask", "CharNgramNaiveBayes", "MostFrequentTag", "OverlapThreshold", "case_tag",
           "read_multi30k_langid", "read_multi30k_pairs"]

TAGS = ("lower", "title", "upper", "mixed")
LANGUAGES = ("de", "en", "fr", "cs")
CLASSIFY_KINDS = ("langid", "translation_pair")


# ---- fine-tuning ---------------------------------------------------------------------------------------------


def _init_encoder(task: _BertTask, cfg: Any, head: str, num_labels: int,
                  train_text: Sequence[str] | None) -> None:
    """Tokenizer + model for a fine-tuning task: from a ``bert_pretrain`` checkpoint, from the installed
    all-MiniLM-L6-v2 (``init_from: minilm``; its vocabulary, 512 positions and weights, a fresh head) or from
    scratch."""
    if cfg.init_from == "minilm":  # the real all-MiniLM-L6-v2 encoder and its own WordPiece vocabulary
        task.tokenizer = _tokenizer_for("minilm", None, 0)
        task.model_name, weights = "bert_minilm_l6", None
        kwargs = {"pretrained": True}
    elif cfg.init_from:
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
    min_lr_ratio: float = 0.02  # a floor of 1e-5
    warmup_steps: int = 50
    total_steps: int = 500


@dataclass
class BertClassifyConfig(_FineTuneConfig):
    """Settings of ``bert_classify`` ([CLS] classification of Multi30k text).

    Two tasks (``kind``): ``langid``, the language of one caption (classes = ``languages``); and
    ``translation_pair``, a sentence-pair task like MRPC: segment A is a caption in ``languages[0]``, segment B a
    caption in ``languages[1]``, label 1 when B is A's translation (the same line of the parallel files) and 0
    when B is the translation of another, randomly drawn line. Every A appears once with its translation and once
    with a random partner, and every B once as a translation and on average once as a distractor, so neither
    segment alone tells the label.

    Attributes:
        init_from: A ``bert_pretrain`` checkpoint (encoder, size and vocabulary), ``"minilm"`` (the installed
            all-MiniLM-L6-v2 encoder with its vocabulary), or None to train from scratch with
            ``model``/``model_args``/``vocab`` (``vocab: train`` learns it on the training sentences).
        dataset: Registered Multi30k data set; ``languages`` the classes (files ``raw/<split>.<lang>.gz``).
        data_root: A folder with that ``raw/`` layout to use instead of the registered data set (tests).
        train_per_language: Training sentences per language, from disjoint line ranges of ``train``.
        val_split, test_split: Multi30k splits used for validation and test (all lines, every language).
        kind: ``"langid"`` or ``"translation_pair"``.
        train_pairs: translation_pair: parallel lines taken from ``train`` (2 examples each).
        pair_seed: translation_pair: seed of the distractor draw (per split, so splits differ).
        max_len: Truncation length in pieces (of the pair, for translation_pair).
    """

    dataset: str = "multi30k"
    data_root: str | None = None
    kind: str = "langid"
    languages: list[str] = field(default_factory=lambda: list(LANGUAGES))
    train_per_language: int = 2500
    train_pairs: int = 10000
    pair_seed: int = 0
    val_split: str = "val"
    test_split: str = "test_2016_flickr"
    max_len: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind not in CLASSIFY_KINDS:
            raise ValueError(f"kind must be one of {CLASSIFY_KINDS}, got {self.kind!r}")
        if self.kind == "translation_pair" and len(self.languages) != 2:
            raise ValueError(f"translation_pair takes exactly 2 languages (segment A, segment B), got "
                             f"{self.languages}")


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


def read_multi30k_pairs(root: Path, languages: Sequence[str], split: str, limit: int | None = None,
                        seed: int = 0) -> tuple[list[tuple[str, str]], list[int]]:
    """Translation-pair examples of one Multi30k split: ``((a, b), label)`` with label 1 for a line and its
    translation, 0 for a line and the translation of another line (drawn with ``random.Random(seed)``).

    Lines ``[0, limit)`` are used (all when ``limit`` is None); the order alternates positive and negative.
    """
    import random

    cols = []
    for lang in languages:
        path = Path(root) / "raw" / f"{split}.{lang}.gz"
        if not path.is_file():
            raise FileNotFoundError(f"Multi30k file not found: {path}")
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            cols.append([ln.strip() for ln in fh])
    a, b = cols
    if len(a) != len(b):
        raise ValueError(f"{split}: {languages[0]} has {len(a)} lines, {languages[1]} {len(b)}; not parallel")
    n = len(a) if limit is None else limit
    if n > len(a) or n < 2:
        raise ValueError(f"{split} has {len(a)} parallel lines; need {n} (and at least 2)")
    rng = random.Random(seed)
    pairs, labels = [], []
    for i in range(n):
        j = rng.randrange(n - 1)
        j += j >= i  # any other line
        pairs += [(a[i], b[i]), (a[i], b[j])]
        labels += [1, 0]
    return pairs, labels


class BertClassifyTask(_BertTask):
    """[CLS] sequence (pair) classification on Multi30k (see :class:`BertClassifyConfig`)."""

    monitor, monitor_mode = "val/acc", "max"

    def __init__(self, cfg: BertClassifyConfig, data_dir: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.data_root is not None:
            root = Path(cfg.data_root)
        else:
            from torchworks.data import dataset_path

            root = Path(dataset_path(cfg.dataset, data_dir=data_dir))
        if cfg.kind == "langid":
            train = read_multi30k_langid(root, cfg.languages, "train", cfg.train_per_language, disjoint=True)
            self.data = {"train": train, "val": read_multi30k_langid(root, cfg.languages, cfg.val_split),
                         "test": read_multi30k_langid(root, cfg.languages, cfg.test_split)}
            num_labels, vocab_text = len(cfg.languages), train[0]
        else:
            self.data = {name: read_multi30k_pairs(root, cfg.languages, split, limit, cfg.pair_seed + k)
                         for k, (name, split, limit) in enumerate((("train", "train", cfg.train_pairs),
                                                                  ("val", cfg.val_split, None),
                                                                  ("test", cfg.test_split, None)))}
            num_labels = 2
            vocab_text = [t for a, b in self.data["train"][0][::2] for t in (a, b)]
        _init_encoder(self, cfg, "classification", num_labels, vocab_text)
        self.tokenizer.enable_truncation(cfg.max_len)
        self._sets = {name: _Items([self._item(t, y) for t, y in zip(*pair, strict=True)])
                      for name, pair in self.data.items()}

    def _item(self, text: str | tuple[str, str], label: int) -> dict[str, Any]:
        enc = self.tokenizer.encode(*text) if isinstance(text, tuple) else self.tokenizer.encode(text)
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
    """[CLS] fine-tuning on Multi30k: language identification (de/en/fr/cs) or translation-pair detection."""
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


class OverlapThreshold:
    """Pair baseline: "same" (label 1) when the character n-gram Jaccard overlap of the two texts (lower-cased,
    accents kept) is at least a threshold fitted to maximise training accuracy. Cognates, names and numbers
    ("Ball", "Frisbee", "2") carry across languages, so this is the lexical-overlap rule a pair model must beat.

    Args:
        n: n-gram length.
    """

    def __init__(self, n: int = 3) -> None:
        self.n = n

    def score(self, a: str, b: str) -> float:
        ga, gb = ({f" {t.lower()} "[j:j + self.n] for j in range(len(t) + 3 - self.n)} for t in (a, b))
        return len(ga & gb) / max(1, len(ga | gb))

    def fit(self, pairs: Sequence[tuple[str, str]], labels: Sequence[int]) -> OverlapThreshold:
        if len(pairs) != len(labels) or not pairs:
            raise ValueError(f"need as many labels as pairs (and at least one), got {len(pairs)}, {len(labels)}")
        scored = sorted(zip((self.score(a, b) for a, b in pairs), labels, strict=True))
        # threshold between consecutive scores: predict 1 for score >= t; accuracy = ones above + zeros below
        ones_above, zeros_below = sum(labels), 0
        best, self.threshold = ones_above, scored[0][0]
        for k, (score, label) in enumerate(scored):
            ones_above -= label
            zeros_below += 1 - label
            nxt = scored[k + 1][0] if k + 1 < len(scored) else score + 1.0
            if nxt > score and ones_above + zeros_below > best:
                best, self.threshold = ones_above + zeros_below, (score + nxt) / 2
        return self

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        return [int(self.score(a, b) >= self.threshold) for a, b in pairs]


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

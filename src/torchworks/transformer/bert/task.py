"""BERT on the shared engine: MLM + NSP pre-training from scratch (fine-tuning: :mod:`.bert_finetune`).

Three tasks, registered in ``TASKS`` (``bert_pretrain`` here, the other two in
:mod:`torchworks.transformer.bert.finetune`):

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
vocabulary all come from it) or from scratch.

Vocabulary: by default a WordPiece vocabulary is trained with HF ``tokenizers`` on the *training* articles only
(``vocab: train``, 8,000 pieces) and read by our :class:`~torchworks.transformer.bert.wordpiece.WordPieceTokenizer`.
MiniLM's 30,522-piece uncased vocabulary (``vocab: minilm``) also works, but for a 128-wide model it would put
3.9M of ~4.4M parameters into the embedding, most rows seen a handful of times in 0.45M words, and make the MLM
softmax four times as expensive. The tokenizer travels inside every checkpoint (buffer ``tokenizer_json``).

The data side (articles, split, vocabulary, pairs, masking) lives in :mod:`torchworks.transformer.bert.data`.

References:
    Devlin et al., BERT, NAACL 2019, sections 3.1 and A.1; google-research/bert ``create_pretraining_data.py``
    (pairs from documents, random-document negatives, longest-first random-end truncation, 80/10/10 masking).
    Liu et al., RoBERTa, 2019 (dynamic masking). Merity et al., WikiText, 2016.
"""

from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from torchworks.core.checkpoint import build_model
from torchworks.core.errors import CheckpointError
from torchworks.core.registry import TASKS
from torchworks.engine.schedules import WarmupCosine
from torchworks.engine.task import Task
from torchworks.transformer.bert.data import (  # noqa: F401  (re-exported: the data helpers lived here)
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
from torchworks.transformer.bert.model import IGNORE
from torchworks.transformer.common import SCHEDULE_RENAMED_KEYS, check_schedule

__all__ = ["BertPretrainConfig", "BertPretrainTask", "load_wikitext_articles", "make_nsp_pairs", "mask_tokens",
           "split_documents", "train_wordpiece"]


# ---- shared optimisation settings -------------------------------------------------------------------------------


@dataclass
class _Optim:
    lr: float = 1e-3
    min_lr_ratio: float = 0.01
    warmup_steps: int = 100
    total_steps: int = 1000
    weight_decay: float = 0.01
    RENAMED_KEYS: ClassVar[dict[str, str]] = SCHEDULE_RENAMED_KEYS

    def __post_init__(self) -> None:
        check_schedule(self.warmup_steps, self.total_steps, self.min_lr_ratio)

    def for_checkpoint(self, ckpt: str | os.PathLike[str]) -> _Optim:
        """This config as it rebuilds the run saved in ``ckpt`` (``train(resume=...)``, ``evaluate``): a vocabulary
        learned at start-up (``vocab: train``) is read from the checkpoint instead, since ``tokenizers`` breaks ties
        between equally frequent merges differently in every process."""
        if getattr(self, "vocab", None) == "train":
            return dataclasses.replace(self, vocab=str(ckpt))  # type: ignore[type-var]
        return self


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
        schedule = WarmupCosine(cfg.warmup_steps, cfg.total_steps, cfg.min_lr_ratio)
        return [torch.optim.lr_scheduler.LambdaLR(optimizers[0], schedule)]

    def trainable_modules(self):
        return [self.model]

    def training_step(self, batch, opt=None):
        return self._step(batch)

    @torch.no_grad()
    def validation_step(self, batch):
        return self._step(batch)

    def export_model(self):
        return self.model, {"name": self.model_name, "kwargs": dict(self.model_kwargs)}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "tokenizer_json"
        if key in state_dict and not torch.equal(state_dict[key], self.tokenizer_json):
            raise CheckpointError("the checkpoint's WordPiece vocabulary differs from the one this config builds "
                                  "(`tokenizers` breaks ties between equally frequent merges differently from run "
                                  "to run); rebuild with --set task.vocab=<that checkpoint> (train --resume and "
                                  "evaluate do this themselves)")
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
        lr, min_lr_ratio, warmup_steps, total_steps, weight_decay: AdamW with the engine's WarmupCosine (linear
            warm-up over ``warmup_steps``, cosine to ``min_lr_ratio * lr`` at ``total_steps``; 0: no decay).
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
        super().__post_init__()
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

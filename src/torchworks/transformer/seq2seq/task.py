"""``translation``: Multi30k German -> English with :class:`~torchworks.transformer.seq2seq.Seq2SeqTransformer`
as an engine task.

Recipe (the paper's, scaled to a 2-core CPU): one joint byte-level BPE over both languages of the training
split, shared source/target embeddings tied to the output projection, label-smoothed cross-entropy (eps 0.1,
section 5.4), Adam(0.9, 0.98, eps 1e-9) with a linear warm-up and a cosine decay to a floor (instead of the
paper's inverse square root: the run length is fixed in advance, so the learning rate can reach its floor when
the budget ends), gradient clipping from the trainer, source padding masks from the pad id.

Batches are built once from length buckets (:class:`~torchworks.transformer.seq2seq.data.LengthBucketSampler`
with a fixed seed) and the engine sees each *batch* as one example (``trainer.batch_size: 1``): its sampler then
shuffles the order of batches every epoch and resumes mid-epoch exactly, while rows inside a batch have similar
lengths (about a third of the padding of random batches on Multi30k). fairseq also fixes its batches and
shuffles their order.

Each checkpoint records the training wall time so far (buffer ``train_seconds``: the time between consecutive
training steps, evaluations included, resumes excluded), which is what a BLEU-against-time curve needs. The
tokenizer travels inside checkpoints as JSON bytes (buffer ``tokenizer_json``), so a checkpoint alone rebuilds
model and tokenizer offline (:func:`~torchworks.transformer.seq2seq.data.load_translator`).

References:
    Vaswani et al., "Attention Is All You Need", NeurIPS 2017 (sections 5.3-5.4).
    Ott et al., "fairseq: A Fast, Extensible Toolkit for Sequence Modeling", NAACL 2019 (token-bucketed batches).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.utils.data import Dataset

from torchworks.core.checkpoint import build_model
from torchworks.core.registry import TASKS
from torchworks.engine.schedules import WarmupCosine
from torchworks.engine.task import Task
from torchworks.transformer.common import SCHEDULE_RENAMED_KEYS, check_schedule
from torchworks.transformer.seq2seq.data import (
    LengthBucketSampler,
    TranslationDataset,
    TranslationTokenizer,
    collate_translation,
    load_multi30k,
)
from torchworks.transformer.seq2seq.model import label_smoothed_loss

__all__ = ["BucketedBatches", "TranslationConfig", "TranslationTask"]


@dataclass
class TranslationConfig:
    """Settings of the ``translation`` task.

    Attributes:
        model: Registered encoder-decoder (``transformer_multi30k_small``, ``transformer_multi30k_base``, ...).
        model_args: Seq2SeqConfig overrides (vocabulary sizes and special ids are set from the tokenizer).
        src_lang, tgt_lang: Multi30k language codes.
        train_split, val_split: Multi30k splits (``val`` is the 1,014-pair development set).
        max_train_pairs, max_val_pairs: Use only the first this many pairs (tests); None: all.
        vocab_size: Joint BPE vocabulary size, specials included.
        max_len: Longest source/target sequence in tokens (specials included); longer ones are cut.
        batch_sentences: Most sentence pairs per batch; ``batch_tokens`` the most padded tokens per batch.
        label_smoothing: eps of the smoothed targets.
        lr: Peak learning rate; ``min_lr_ratio`` the floor as a fraction of it, reached at ``total_steps`` after
            ``warmup_steps`` of linear warm-up (the engine's WarmupCosine; ``total_steps`` 0: no decay).
        weight_decay: AdamW decoupled decay on matrices (embeddings, norms and biases are not decayed).
        beta1, beta2, eps: Adam constants (the paper's 0.9, 0.98, 1e-9).
        bucket_seed: Seed of the fixed batch composition.
    """

    model: str = "transformer_multi30k_small"
    model_args: dict[str, Any] = field(default_factory=dict)
    src_lang: str = "de"
    tgt_lang: str = "en"
    train_split: str = "train"
    val_split: str = "val"
    max_train_pairs: int | None = None
    max_val_pairs: int | None = None
    vocab_size: int = 8000
    max_len: int = 128
    batch_sentences: int = 128
    batch_tokens: int | None = None
    label_smoothing: float = 0.1
    lr: float = 7e-4
    min_lr_ratio: float = 1e-5 / 7e-4  # a floor of 1e-5
    warmup_steps: int = 300
    total_steps: int = 3000
    weight_decay: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-9
    bucket_seed: int = 0

    RENAMED_KEYS: ClassVar[dict[str, str]] = SCHEDULE_RENAMED_KEYS

    def __post_init__(self) -> None:
        check_schedule(self.warmup_steps, self.total_steps, self.min_lr_ratio)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.batch_sentences < 1:
            raise ValueError(f"batch_sentences must be >= 1, got {self.batch_sentences}")
        for name in ("max_train_pairs", "max_val_pairs"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 or null, got {getattr(self, name)}")
        taken = {"src_vocab_size", "tgt_vocab_size", "pad_id", "bos_id", "eos_id", "max_len"} & set(self.model_args)
        if taken:
            raise ValueError(f"model_args {sorted(taken)} are set from the tokenizer/max_len; remove them")


class BucketedBatches(Dataset):
    """Pre-composed batches of a :class:`TranslationDataset`: item ``i`` is the list of pairs of batch ``i``.

    Args:
        data: The tokenised pairs.
        batch_sentences, batch_tokens, seed: As :class:`LengthBucketSampler` (``batch_size``, ``max_tokens``).
        shuffle: Random pools (training); False sorts all pairs by length (evaluation).
    """

    def __init__(self, data: TranslationDataset, batch_sentences: int, batch_tokens: int | None = None,
                 seed: int = 0, shuffle: bool = True) -> None:
        self.data = data
        sampler = LengthBucketSampler(data.lengths, batch_size=batch_sentences, max_tokens=batch_tokens,
                                      shuffle=shuffle, seed=seed)
        self.batches = list(sampler)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> list[tuple[Tensor, Tensor]]:
        return [self.data[j] for j in self.batches[i]]

    def padding_fraction(self) -> float:
        """Share of padded positions over all batches (source and target sides together)."""
        real = padded = 0
        for batch in self.batches:
            src = [len(self.data.src[j]) for j in batch]
            tgt = [len(self.data.tgt[j]) for j in batch]
            real += sum(src) + sum(tgt)
            padded += len(batch) * (max(src) + max(tgt))
        return 1.0 - real / padded


def _tensor_of(text: str) -> Tensor:
    return torch.tensor(list(text.encode("utf-8")), dtype=torch.uint8)


class TranslationTask(Task):
    """Trains a registered encoder-decoder on Multi30k; validation reports label-smoothed loss, NLL and PPL.

    Args:
        cfg: The task settings.
        data_dir: Where the Multi30k files are looked for first (``--data-dir``).
    """

    def __init__(self, cfg: TranslationConfig, data_dir: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        root = None
        if data_dir is not None:
            from torchworks.data import dataset_path

            root = dataset_path("multi30k", data_dir=data_dir)
        self.train_pairs = load_multi30k(cfg.train_split, cfg.src_lang, cfg.tgt_lang, root=root)[: cfg.max_train_pairs]
        self.val_pairs = load_multi30k(cfg.val_split, cfg.src_lang, cfg.tgt_lang, root=root)[: cfg.max_val_pairs]
        texts = [s for pair in self.train_pairs for s in pair]
        self.tokenizer = TranslationTokenizer.train(texts, vocab_size=cfg.vocab_size)
        self._build_model()
        self.register_buffer("tokenizer_json", _tensor_of(self.tokenizer.tokenizer.to_str()))
        self.register_buffer("train_seconds", torch.zeros((), dtype=torch.float64))
        self._last_step_time: float | None = None

    def _build_model(self) -> None:
        tok = self.tokenizer
        self.model_kwargs = {**self.cfg.model_args, "src_vocab_size": tok.vocab_size, "tgt_vocab_size": tok.vocab_size,
                             "pad_id": tok.pad_id, "bos_id": tok.bos_id, "eos_id": tok.eos_id,
                             "max_len": self.cfg.max_len}
        self.model = build_model(self.cfg.model, **self.model_kwargs)

    def _batches(self, pairs, shuffle: bool) -> BucketedBatches:
        data = TranslationDataset(pairs, self.tokenizer, max_len=self.cfg.max_len)
        return BucketedBatches(data, self.cfg.batch_sentences, self.cfg.batch_tokens, seed=self.cfg.bucket_seed,
                               shuffle=shuffle)

    def train_dataset(self) -> BucketedBatches:
        return self._batches(self.train_pairs, shuffle=True)

    def val_dataset(self) -> BucketedBatches:
        return self._batches(self.val_pairs, shuffle=False)

    def collate_fn(self):
        pad = self.tokenizer.pad_id

        def collate(items: list[list[tuple[Tensor, Tensor]]]) -> dict[str, Tensor]:
            return collate_translation([pair for batch in items for pair in batch], pad)

        return collate

    def _losses(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        tgt = batch["tgt"]
        logits = self.model(batch["src"], tgt[:, :-1], batch["src_key_padding_mask"])
        pad = self.tokenizer.pad_id
        loss, nll = label_smoothed_loss(logits, tgt[:, 1:], self.cfg.label_smoothing, ignore_index=pad)
        return loss, nll, (tgt[:, 1:] != pad).sum()

    def training_step(self, batch, opt=None):
        now = time.perf_counter()
        if self._last_step_time is not None:
            self.train_seconds += now - self._last_step_time
        self._last_step_time = now
        loss, nll, tokens = self._losses(batch)
        return {"loss": loss, "nll": nll, "tokens": tokens.float(), "train_seconds": self.train_seconds.item()}

    @torch.no_grad()
    def validation_step(self, batch):
        loss, nll, _ = self._losses(batch)
        return {"loss": loss, "nll": nll, "ppl": nll.exp()}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        cfg = self.cfg
        decay, plain = [], []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (decay if p.dim() >= 2 and "emb" not in name else plain).append(p)
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": plain, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)

    def configure_schedulers(self, optimizers):
        cfg = self.cfg
        return [torch.optim.lr_scheduler.LambdaLR(optimizers[0],
                                                  WarmupCosine(cfg.warmup_steps, cfg.total_steps, cfg.min_lr_ratio))]

    def trainable_modules(self):
        return [self.model]

    def export_model(self):
        return self.model, {"name": self.cfg.model, "kwargs": dict(self.model_kwargs)}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The saved tokenizer wins over the one rebuilt from the config: adopt it (and a model sized for it).
        key = prefix + "tokenizer_json"
        if key in state_dict:
            from tokenizers import Tokenizer

            raw = bytes(state_dict[key].tolist()).decode("utf-8")
            self.tokenizer_json = torch.empty_like(state_dict[key])
            if raw != self.tokenizer.tokenizer.to_str():
                self.tokenizer = TranslationTokenizer(Tokenizer.from_str(raw))
                self._build_model()
        self._last_step_time = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@TASKS.register("translation", config=TranslationConfig)
def translation(cfg: TranslationConfig, data_dir: str | None = None) -> TranslationTask:
    """Builds the Multi30k translation task from its config."""
    return TranslationTask(cfg, data_dir=data_dir)

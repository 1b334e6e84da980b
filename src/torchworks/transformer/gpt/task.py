"""``gpt_lm``: next-token language modelling with :class:`~torchworks.transformer.gpt.GPT` as an engine task.

The corpus (tinyshakespeare by default) is tokenised once, at character level or with a byte-level BPE trained
offline by ``tokenizers``, and split by position (first 90 % train, last 10 % validation, see
:func:`~torchworks.transformer.gpt.data.split_tokens`). Training examples are windows of ``block_size + 1`` tokens at
every offset; the engine's shuffling sampler therefore draws nanoGPT's random windows (without replacement within
an epoch). Validation uses non-overlapping windows, so an un-capped evaluation is exactly
:func:`~torchworks.transformer.gpt.data.full_val_loss` on the whole split (cap periodic evaluations with the
trainer's ``limit_val_batches``; a final number must come from the full split).

Optimisation follows nanoGPT: AdamW with weight decay on matrices only, a learning rate that rises linearly over
``warmup_steps`` and then follows a cosine to ``min_lr_ratio * lr`` at ``total_steps`` (held there afterwards), the
engine's :class:`~torchworks.engine.schedules.WarmupCosine` stepped once per optimisation step; gradient clipping is
the trainer's ``grad_clip``.

``init_from`` fine-tunes a pretrained model instead of training a registered variant from scratch, as nanoGPT's
``init_from='gpt2'`` does: a Hugging Face GPT-2 folder, a nanoGPT ``ckpt.pt`` or a ``gpt_lm`` checkpoint gives the
architecture, the weights and the tokenizer the corpus is encoded with (``model``, ``tokenizer`` and
``bpe_vocab_size`` are then unused); ``model_args`` may still set ``dropout`` and a smaller ``block_size`` (the
position table is cropped, as nanoGPT's ``crop_block_size``).

The tokenizer travels inside every checkpoint as the UTF-8 bytes of its JSON (buffer ``tokenizer_json``), so a
checkpoint alone rebuilds model and tokenizer offline (:func:`load_lm`).

References:
    Karpathy, nanoGPT ``train.py`` (``get_lr``, ``configure_optimizers``) and
    ``config/train_shakespeare_char.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from torchworks.core.checkpoint import build_model, load_weights
from torchworks.core.registry import TASKS
from torchworks.engine.schedules import WarmupCosine
from torchworks.engine.task import Task
from torchworks.transformer.common import SCHEDULE_RENAMED_KEYS, check_schedule
from torchworks.transformer.gpt.data import TokenWindows, load_text, split_tokens
from torchworks.transformer.gpt.sources import load_lm, load_lm_source  # load_lm re-exported: it lived here
from torchworks.transformer.gpt.tokenizers import BPETokenizer, CharTokenizer, tokenizer_from_json

_FINE_TUNE_ARGS = {"dropout", "block_size"}  # what init_from may still change

__all__ = ["GPTLMConfig", "GPTLMTask", "load_lm", "tokenizer_bytes"]


@dataclass
class GPTLMConfig:
    """Settings of the ``gpt_lm`` task.

    Attributes:
        model: Registered GPT variant (``gpt_char_small``, ``gpt_char_small_rope``, ``gpt_mini``, ...).
        model_args: GPTConfig overrides (``vocab_size`` is always set from the tokenizer).
        init_from: Start from this pretrained model (see the module docstring): an HF GPT-2 folder, a nanoGPT
            ``ckpt.pt``, or a ``gpt_lm`` checkpoint / export; None trains ``model`` from scratch.
        dataset: Registered text data set read when ``text_file`` is not given.
        text_file: A UTF-8 text file to train on instead (tiny corpora in tests).
        max_chars: Use only the first this many characters of the text (tiny recipes); None: all.
        tokenizer: ``"char"`` (vocabulary = distinct characters) or ``"bpe"`` (byte-level BPE).
        bpe_vocab_size: BPE vocabulary size (256 bytes + merges).
        val_fraction: Last fraction of the token stream held out for validation.
        lr: Peak learning rate; ``min_lr_ratio`` the floor the cosine decays to, as a fraction of ``lr``.
        warmup_steps: Linear warm-up steps (lr * (k + 1) / (warmup_steps + 1) at step k, as nanoGPT).
        total_steps: Step at which the cosine reaches the floor (usually the trainer's max_steps); 0: no decay.
        weight_decay: AdamW decoupled decay on matrices; ``beta1``/``beta2`` its moment decays.
        decay_embeddings: Decay the embedding tables too (nanoGPT does; default False).
        train_stride: Distance between training window starts (1 = every offset).
    """

    model: str = "gpt_char_small"
    model_args: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    dataset: str = "tinyshakespeare"
    text_file: str | None = None
    max_chars: int | None = None
    tokenizer: Literal["char", "bpe"] = "char"
    bpe_vocab_size: int = 1024
    val_fraction: float = 0.1
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    total_steps: int = 2000
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    decay_embeddings: bool = False
    train_stride: int = 1
    RENAMED_KEYS: ClassVar[dict[str, str]] = SCHEDULE_RENAMED_KEYS

    def __post_init__(self) -> None:
        check_schedule(self.warmup_steps, self.total_steps, self.min_lr_ratio)
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.max_chars is not None and self.max_chars < 2:
            raise ValueError(f"max_chars must be >= 2 or null, got {self.max_chars}")
        if self.train_stride < 1:
            raise ValueError(f"train_stride must be >= 1, got {self.train_stride}")
        if "vocab_size" in self.model_args:
            raise ValueError("model_args.vocab_size is set from the tokenizer; remove it")
        if self.init_from is not None and set(self.model_args) - _FINE_TUNE_ARGS:
            raise ValueError(f"with init_from the architecture comes from the checkpoint; model_args may only set "
                             f"{sorted(_FINE_TUNE_ARGS)}, got {sorted(set(self.model_args) - _FINE_TUNE_ARGS)}")


def tokenizer_bytes(tokenizer: CharTokenizer | BPETokenizer) -> Tensor:
    """The tokenizer's JSON as a (N,) uint8 tensor (how checkpoints carry it)."""
    return torch.tensor(list(tokenizer.to_json().encode("utf-8")), dtype=torch.uint8)


class GPTLMTask(Task):
    """Trains a registered GPT on a tokenised corpus; validation reports the mean next-token loss (nats).

    Args:
        cfg: The task settings.
        data_dir: Where the data set is looked for first (``--data-dir``).
    """

    def __init__(self, cfg: GPTLMConfig, data_dir: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        text = self._read(cfg, data_dir)[: cfg.max_chars]
        if cfg.init_from is not None:
            self.model_name, self.model, self.tokenizer = "gpt", *_pretrained(cfg.init_from, cfg.model_args)
            self.model_kwargs = asdict(self.model.config)
        else:
            if cfg.tokenizer == "char":
                self.tokenizer: CharTokenizer | BPETokenizer = CharTokenizer.from_text(text)
            else:
                self.tokenizer = BPETokenizer.train(text, vocab_size=cfg.bpe_vocab_size)
            self.model_name = cfg.model
            self.model_kwargs = {**cfg.model_args, "vocab_size": self.tokenizer.vocab_size}
            self.model = build_model(cfg.model, **self.model_kwargs)
        self.train_tokens, self.val_tokens = split_tokens(self.tokenizer.encode(text), cfg.val_fraction)
        self.block_size = self.model.config.block_size
        if len(self.val_tokens) <= self.block_size:
            raise ValueError(f"the validation split has {len(self.val_tokens)} tokens, not more than one block of "
                             f"{self.block_size}; use more text or a larger val_fraction")
        self.register_buffer("tokenizer_json", tokenizer_bytes(self.tokenizer))

    @staticmethod
    def _read(cfg: GPTLMConfig, data_dir: str | None) -> str:
        if cfg.text_file is None:
            if data_dir is None:
                return load_text(cfg.dataset)
            from torchworks.data import dataset_path

            return (Path(dataset_path(cfg.dataset, data_dir=data_dir)) / "input.txt").read_text(encoding="utf-8")
        path = Path(cfg.text_file)
        if not path.is_file():
            raise FileNotFoundError(f"task.text_file not found: {path}")
        return path.read_text(encoding="utf-8")

    def train_dataset(self) -> TokenWindows:
        return TokenWindows(self.train_tokens, self.block_size, stride=self.cfg.train_stride)

    def val_dataset(self) -> TokenWindows:
        return TokenWindows(self.val_tokens, self.block_size, stride=self.block_size)  # = full_val_loss windows

    def training_step(self, batch, opt=None):
        x, y = batch
        _, loss = self.model(x, y)
        return {"loss": loss}

    @torch.no_grad()
    def validation_step(self, batch):
        x, y = batch
        _, loss = self.model(x, y)
        return {"loss": loss}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        cfg = self.cfg
        groups = self.model.configure_optimizer_groups(cfg.weight_decay, decay_embeddings=cfg.decay_embeddings)
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))

    def configure_schedulers(self, optimizers):
        cfg = self.cfg
        schedule = WarmupCosine(cfg.warmup_steps, cfg.total_steps, cfg.min_lr_ratio)
        return [torch.optim.lr_scheduler.LambdaLR(optimizers[0], schedule)]

    def trainable_modules(self):
        return [self.model]

    def export_model(self):
        return self.model, {"name": self.model_name, "kwargs": dict(self.model_kwargs)}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The saved tokenizer wins over the one rebuilt from the config: adopt its bytes before the copy.
        key = prefix + "tokenizer_json"
        if key in state_dict:
            self.tokenizer_json = torch.empty_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if key in state_dict:
            self.tokenizer = tokenizer_from_json(bytes(state_dict[key].tolist()).decode("utf-8"))


def _pretrained(source: str, overrides: dict[str, Any]):
    """``(GPT in train mode, tokenizer)`` of ``init_from``, with ``dropout`` / a smaller ``block_size`` applied."""
    model, tokenizer = load_lm_source(source)
    cfg = asdict(model.config)
    block = int(overrides.get("block_size", cfg["block_size"]))
    if not 1 <= block <= cfg["block_size"]:
        raise ValueError(f"model_args.block_size must be in [1, {cfg['block_size']}] (the pretrained context), "
                         f"got {block}")
    state = model.state_dict()
    if block < cfg["block_size"] and "pos_emb.weight" in state:
        state["pos_emb.weight"] = state["pos_emb.weight"][:block]
    tuned = build_model("gpt", **{**cfg, **overrides})
    with torch.no_grad():
        load_weights(tuned, state, source=source)
    return tuned.train(), tokenizer


@TASKS.register("gpt_lm", config=GPTLMConfig)
def gpt_lm(cfg: GPTLMConfig, data_dir: str | None = None) -> GPTLMTask:
    """Builds the language-modelling task from its config."""
    return GPTLMTask(cfg, data_dir=data_dir)

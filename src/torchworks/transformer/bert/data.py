"""BERT pre-training data: WikiText articles, the article split, a WordPiece vocabulary, NSP pairs, MLM masks.

Used by the BERT engine tasks (:mod:`torchworks.transformer.bert.task`). Pairs follow google-research/bert's
``create_pretraining_data.py``: segment A is a run of consecutive sentences of one article, B its real
continuation (label 0) or sentences of a random *other* article (label 1), truncated longest-first at a random
end; 15 % of the pieces are chosen for MLM with the 80/10/10 rule.

References:
    Devlin et al., BERT, NAACL 2019, sections 3.1 and A.1. Merity et al., WikiText, 2016.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from torchworks.core.checkpoint import load_checkpoint
from torchworks.core.errors import CheckpointError
from torchworks.transformer.bert.model import IGNORE
from torchworks.transformer.bert.wordpiece import WordPieceTokenizer

__all__ = ["SPECIAL_TOKENS", "load_wikitext_articles", "make_nsp_pairs", "mask_tokens", "split_documents",
           "train_wordpiece"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


# ---- text ------------------------------------------------------------------------------------------------------

_TITLE = re.compile(r"^ = [^=].* = $")
_SENTENCE_END = re.compile(r"(?<= [.!?]) (?=\S)")  # WikiText is tokenised: a sentence ends with a " ." token


def load_wikitext_articles(paths: Sequence[str | Path]) -> list[list[str]]:
    """Articles of WikiText files as lists of sentences.

    A line `` = Title = `` starts an article; section headings (`` = = ... = = ``) are dropped; paragraphs are
    split after each ``.``/``!``/``?`` token. WikiText's number markers (``@-@``, ``@,@``, ``@.@``) are undone
    and its ``<unk>`` becomes ``[UNK]`` so the tokenizer maps it to the unknown token.
    """
    articles: list[list[str]] = []
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if _TITLE.match(line):
                articles.append([])
                continue
            line = line.strip()
            if not line or line.startswith("= "):
                continue
            if not articles:
                articles.append([])
            line = line.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".").replace("<unk>", "[UNK]")
            articles[-1].extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
    return [a for a in articles if a]


def split_documents(n: int, val_fraction: float, test_fraction: float, seed: int) -> tuple[list[int], ...]:
    """Indices of ``n`` documents shuffled with ``seed`` and cut into (train, val, test), each non-empty.

    Raises:
        ValueError: Fractions outside [0, 1) or too few documents for three non-empty parts.
    """
    if not (0 < val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"need 0 < val_fraction, 0 <= test_fraction, sum < 1; got {val_fraction}, {test_fraction}")
    n_val, n_test = max(1, round(n * val_fraction)), (max(1, round(n * test_fraction)) if test_fraction else 0)
    if n - n_val - n_test < 2:
        raise ValueError(f"{n} documents are too few to hold out {n_val} + {n_test} and train on at least 2")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return sorted(order[n_val + n_test:]), sorted(order[:n_val]), sorted(order[n_val:n_val + n_test])


def train_wordpiece(sentences: Sequence[str], vocab_size: int = 8000, min_frequency: int = 2) -> WordPieceTokenizer:
    """A BERT-uncased WordPiece vocabulary learned with HF ``tokenizers`` (its ``WordPieceTrainer``), returned as
    our tokenizer (no padding, no truncation)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tok.train_from_iterator(list(sentences), trainer=trainer)
    return WordPieceTokenizer.from_json(tok.to_str(), max_length=None, padding=None)


def _tokenizer_for(vocab: str, train_sentences: Sequence[str] | None, vocab_size: int) -> WordPieceTokenizer:
    if vocab == "train":
        if train_sentences is None:
            raise ValueError("vocab: train needs training text")
        return train_wordpiece(train_sentences, vocab_size)
    if vocab.endswith(".ckpt"):  # the vocabulary a training checkpoint carries (reproduces that run exactly)
        raw = (load_checkpoint(vocab).get("task") or {}).get("tokenizer_json")
        if raw is None:
            raise CheckpointError(f"{vocab}: no tokenizer_json inside (not a bert_* training checkpoint)")
        return _tokenizer_from_bytes(raw)
    if vocab == "minilm":
        from torchworks.transformer.bert.hf import minilm_dir

        return WordPieceTokenizer.from_file(minilm_dir() / "tokenizer.json", max_length=None, padding=None)
    return WordPieceTokenizer.from_file(vocab, max_length=None, padding=None)


def _tokenizer_bytes(tok: WordPieceTokenizer) -> Tensor:
    return torch.tensor(list(tok.to_json().encode("utf-8")), dtype=torch.uint8)


def _tokenizer_from_bytes(raw: Tensor) -> WordPieceTokenizer:
    return WordPieceTokenizer.from_json(bytes(raw.tolist()).decode("utf-8"), max_length=None, padding=None)


# ---- NSP pairs and MLM masking ------------------------------------------------------------------------------


def _truncate_pair(a: list[int], b: list[int], max_tokens: int, rng: random.Random) -> None:
    """Trim the longer segment one piece at a time, from its front or back at random, to ``max_tokens`` total."""
    while len(a) + len(b) > max_tokens:
        longer = a if len(a) > len(b) else b
        del longer[0 if rng.random() < 0.5 else -1]


def make_nsp_pairs(docs: Sequence[Sequence[Sequence[int]]], max_len: int, rng: random.Random,
                   short_seq_prob: float = 0.1) -> list[tuple[list[int], list[int], int]]:
    """Sentence pairs for next-sentence prediction, built from tokenised documents.

    Consecutive sentences are gathered until they fill a target length (``max_len - 3``, or with probability
    ``short_seq_prob`` a shorter random one); A is a random-length prefix of that run. With probability 0.5, B is
    the rest of the run (label 0, "is next"); otherwise B is taken from a random position of a random other
    document (label 1, "random") and the unused sentences of the run go back to the pool. A run of one sentence
    takes the following sentence as its continuation (and a last single sentence that drew "is next" is dropped),
    so both labels stay equally likely.

    Args:
        docs: Documents -> sentences -> token ids (no special tokens).
        max_len: Sequence length including [CLS] A [SEP] B [SEP].
        rng: Source of every random choice (seed it for reproducible pairs).
        short_seq_prob: Probability of a shorter target length (so the model also sees short inputs).

    Returns:
        ``(a_ids, b_ids, label)`` triples, ``len(a) + len(b) <= max_len - 3``, both non-empty.

    Raises:
        ValueError: Fewer than two non-empty documents (random negatives need another document) or
            ``max_len < 5``.
    """
    docs = [[s for s in d if s] for d in docs]
    docs = [d for d in docs if d]
    if len(docs) < 2:
        raise ValueError(f"NSP needs at least 2 non-empty documents, got {len(docs)}")
    if max_len < 5:
        raise ValueError(f"max_len must be >= 5 ([CLS] a [SEP] b [SEP]), got {max_len}")
    max_tokens = max_len - 3
    pairs = []
    for d, doc in enumerate(docs):
        target = max_tokens if rng.random() >= short_seq_prob else rng.randint(2, max_tokens)
        chunk: list[Sequence[int]] = []
        size, i = 0, 0
        while i < len(doc):
            chunk.append(doc[i])
            size += len(doc[i])
            if i == len(doc) - 1 or size >= target:
                want_next = rng.random() >= 0.5
                if len(chunk) == 1 and want_next:  # one long sentence: B is the next one, if there is one
                    if i + 1 == len(doc):
                        break  # the article's last sentence has no continuation; drop it, keeping labels 50/50
                    i += 1
                    chunk.append(doc[i])
                a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                a = [t for s in chunk[:a_end] for t in s]
                if len(chunk) == 1 or not want_next:
                    label, b = 1, []
                    other = docs[rng.choice([k for k in range(len(docs)) if k != d])]
                    for s in other[rng.randrange(len(other)):]:
                        b.extend(s)
                        if len(b) >= max(1, target - len(a)):
                            break
                    i -= len(chunk) - a_end  # those sentences were not used: they start the next run
                else:
                    label, b = 0, [t for s in chunk[a_end:] for t in s]
                _truncate_pair(a, b, max_tokens, rng)
                if a and b:
                    pairs.append((a, b, label))
                chunk, size = [], 0
                target = max_tokens if rng.random() >= short_seq_prob else rng.randint(2, max_tokens)
            i += 1
    return pairs


def mask_tokens(input_ids: Tensor, candidates: Tensor, mask_id: int, replacement_ids: Tensor, *,
                mask_prob: float = 0.15, mask_frac: float = 0.8, random_frac: float = 0.1,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """BERT's masked-LM corruption.

    In every row, ``max(1, round(mask_prob * n))`` of its ``n`` candidate positions are chosen uniformly without
    replacement; a chosen token becomes [MASK] with probability ``mask_frac``, a uniformly drawn token from
    ``replacement_ids`` with probability ``random_frac``, and stays itself otherwise.

    Args:
        input_ids: Token ids (B, T) int64.
        candidates: Bool (B, T), True where a token may be chosen (not [CLS]/[SEP]/[PAD]/[UNK]).
        mask_id: Id of [MASK].
        replacement_ids: (K,) int64 ids random replacements are drawn from (the non-special vocabulary).
        mask_prob, mask_frac, random_frac: The 15 % / 80 % / 10 % of the paper.
        generator: Optional random generator (default: torch's global one).

    Returns:
        ``(corrupted ids (B, T), labels (B, T))``: labels hold the original id at chosen positions, -100 elsewhere.

    Raises:
        ValueError: Shapes differ or fractions are outside [0, 1].
    """
    if input_ids.shape != candidates.shape or input_ids.dim() != 2:
        raise ValueError(f"input_ids {tuple(input_ids.shape)} and candidates {tuple(candidates.shape)} must be "
                         "the same (B, T)")
    if not (0 < mask_prob <= 1 and 0 <= mask_frac and 0 <= random_frac and mask_frac + random_frac <= 1):
        raise ValueError(f"bad masking fractions: mask_prob={mask_prob}, mask_frac={mask_frac}, "
                         f"random_frac={random_frac}")
    dev = input_ids.device
    n = candidates.sum(dim=1)  # (B,)
    k = torch.where(n > 0, (n.float() * mask_prob).round().clamp_min(1), torch.zeros_like(n, dtype=torch.float))
    scores = torch.rand(input_ids.shape, generator=generator, device=dev).masked_fill(~candidates, 2.0)
    ranks = scores.argsort(dim=1).argsort(dim=1)  # rank of each position's score within its row
    chosen = (ranks < k.long().unsqueeze(1)) & candidates
    branch = torch.rand(input_ids.shape, generator=generator, device=dev)
    to_mask = chosen & (branch < mask_frac)
    to_random = chosen & (branch >= mask_frac) & (branch < mask_frac + random_frac)
    pick = torch.randint(len(replacement_ids), input_ids.shape, generator=generator, device=dev)
    out = torch.where(to_mask, torch.full_like(input_ids, mask_id), input_ids)
    out = torch.where(to_random, replacement_ids.to(dev)[pick], out)
    labels = input_ids.masked_fill(~chosen, IGNORE)
    return out, labels


def _pad(rows: Sequence[Sequence[int]], value: int) -> Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([list(r) + [value] * (width - len(r)) for r in rows], dtype=torch.long)


class _Items(torch.utils.data.Dataset):
    """A list of dict items (lists of ints and ints); the task's collate pads them."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


def _collate(pad_id: int):
    def collate(items: list[dict[str, Any]]) -> dict[str, Tensor]:
        out = {"input_ids": _pad([it["input_ids"] for it in items], pad_id),
               "token_type_ids": _pad([it["token_type_ids"] for it in items], 0)}
        out["key_padding_mask"] = _pad([[0] * len(it["input_ids"]) for it in items], 1).bool()
        for key in items[0]:
            if key in out:
                continue
            value = items[0][key]
            out[key] = (_pad([it[key] for it in items], IGNORE) if isinstance(value, list)
                        else torch.tensor([it[key] for it in items], dtype=torch.long))
        return out
    return collate


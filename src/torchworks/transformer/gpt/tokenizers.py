"""Tokenizers for the language models: characters, and byte-level BPE trained offline with ``tokenizers``.

Both share one small interface: ``encode(str) -> list[int]``, ``decode(list[int]) -> str``, ``vocab_size``,
``save(path)`` and ``load(path)``; :func:`load_tokenizer` opens either kind from its JSON file.

* :class:`CharTokenizer`: one id per distinct character of a training text (sorted, so the ids of
  tinyshakespeare match nanoGPT's ``shakespeare_char``). Unknown characters raise ``ValueError``.
* :class:`BPETokenizer`: GPT-2-style byte-level BPE: text -> UTF-8 bytes mapped to printable symbols, split by
  GPT-2's regex, then merges learned from the corpus. Every string encodes (no unknown token), and
  ``decode(encode(s)) == s`` exactly.

References:
    Sennrich et al., "Neural Machine Translation of Rare Words with Subword Units", ACL 2016 (BPE).
    Radford et al., GPT-2, 2019, section 2.2 (byte-level BPE); HF ``tokenizers`` (``models.BPE``,
    ``pre_tokenizers.ByteLevel``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from torchworks.core.errors import TorchworksError

__all__ = ["BPETokenizer", "CharTokenizer", "UnknownCharacterError", "load_tokenizer", "tokenizer_from_json"]


class UnknownCharacterError(TorchworksError, ValueError):
    """Text holds characters outside a character vocabulary (the message names them and where they are)."""


class CharTokenizer:
    """Character-level tokenizer with a fixed vocabulary.

    Args:
        chars: The vocabulary, id i = ``chars[i]``; characters must be distinct.
    """

    kind = "char"

    def __init__(self, chars: Sequence[str]) -> None:
        chars = list(chars)
        if any(len(c) != 1 for c in chars):
            raise ValueError(f"every vocabulary entry must be one character, got {[c for c in chars if len(c) != 1]}")
        if len(set(chars)) != len(chars):
            raise ValueError("vocabulary characters must be distinct")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """Vocabulary = the sorted distinct characters of ``text``."""
        if not text:
            raise ValueError("cannot build a character vocabulary from empty text")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text``.

        Raises:
            ValueError: Naming each unknown character with its positions (first 5 per character).
        """
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            bad: dict[str, list[int]] = {}
            for i, c in enumerate(text):
                if c not in self.stoi:
                    bad.setdefault(c, []).append(i)
            detail = "; ".join(f"{c!r} at {pos[:5]}{' ...' if len(pos) > 5 else ''}" for c, pos in bad.items())
            raise UnknownCharacterError(f"{len(bad)} character(s) not in the vocabulary of {self.vocab_size}: "
                                        f"{detail}") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the ids (each in [0, vocab_size); negative ids are rejected, not read from the end)."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token ids {bad[:10]} outside [0, {self.vocab_size})")
        return "".join(self.chars[i] for i in ids)

    def to_json(self) -> str:
        """``{"type": "char", "chars": [...]}`` as a JSON string (what :meth:`save` writes)."""
        return json.dumps({"type": self.kind, "chars": self.chars}, ensure_ascii=False)

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` as UTF-8."""
        path = Path(path)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        data = _read_json(path)
        if data.get("type") != cls.kind or not isinstance(data.get("chars"), list):
            raise ValueError(f"{path} is not a character tokenizer file (no type 'char' with a chars list)")
        return cls(data["chars"])

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


class BPETokenizer:
    """Byte-level BPE tokenizer (wraps a ``tokenizers.Tokenizer``); train with :meth:`train`.

    Args:
        tokenizer: A ``tokenizers.Tokenizer`` with a BPE model and byte-level pre-tokenizer and decoder.
    """

    kind = "bpe"

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    @classmethod
    def train(cls, texts: str | Iterable[str], vocab_size: int = 1024, min_frequency: int = 2,
              special_tokens: Sequence[str] = ()) -> BPETokenizer:
        """Learn merges from text (offline, a second or two for tinyshakespeare).

        Args:
            texts: The corpus: one string or an iterable of strings (e.g. lines or documents).
            vocab_size: Final vocabulary size: 256 byte symbols + specials + merges.
            min_frequency: Pairs seen fewer times are never merged.
            special_tokens: Tokens kept whole (e.g. ``"<|endoftext|>"``), ids from 0.
        """
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if vocab_size < 256 + len(special_tokens):
            raise ValueError(f"vocab_size {vocab_size} cannot hold the 256 byte symbols and {len(special_tokens)} "
                             "special tokens")
        tok = Tokenizer(models.BPE())
        # No prefix space: "ROMEO" at the start of a prompt must encode the same as inside the corpus and decode
        # back without an added space.
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                      special_tokens=list(special_tokens),
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator([texts] if isinstance(texts, str) else texts, trainer=trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token ids {bad[:10]} outside [0, {self.vocab_size})")
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def to_json(self) -> str:
        """The ``tokenizers`` JSON as a string (what :meth:`save` writes)."""
        return self.tokenizer.to_str()

    def save(self, path: str | Path) -> Path:
        """Write the ``tokenizers`` JSON (loadable by ``tokenizers.Tokenizer.from_file`` too)."""
        path = Path(path)
        self.tokenizer.save(str(path))
        return path

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        from tokenizers import Tokenizer

        _read_json(path)  # same error for a missing or broken file as CharTokenizer
        return cls(Tokenizer.from_file(str(path)))

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


def _read_json(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a JSON tokenizer file ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a tokenizer file (top level is not an object)")
    return data


def load_tokenizer(path: str | Path) -> CharTokenizer | BPETokenizer:
    """Open a file written by :meth:`CharTokenizer.save` or :meth:`BPETokenizer.save`."""
    data = _read_json(path)
    if data.get("type") == CharTokenizer.kind:
        return CharTokenizer.load(path)
    if isinstance(data.get("model"), dict) and data["model"].get("type") == "BPE":
        return BPETokenizer.load(path)
    raise ValueError(f"{path}: unknown tokenizer format (neither a char vocabulary nor a tokenizers BPE file)")


def tokenizer_from_json(text: str) -> CharTokenizer | BPETokenizer:
    """Rebuild a tokenizer from its :meth:`~CharTokenizer.to_json` string (e.g. one stored in a checkpoint).

    Raises:
        ValueError: Not JSON, or neither a char vocabulary nor a ``tokenizers`` BPE file.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"tokenizer JSON is unreadable ({exc})") from None
    if isinstance(data, dict) and data.get("type") == CharTokenizer.kind and isinstance(data.get("chars"), list):
        return CharTokenizer(data["chars"])
    if isinstance(data, dict) and isinstance(data.get("model"), dict) and data["model"].get("type") == "BPE":
        from tokenizers import Tokenizer

        return BPETokenizer(Tokenizer.from_str(text))
    raise ValueError("unknown tokenizer JSON (neither a char vocabulary nor a tokenizers BPE file)")

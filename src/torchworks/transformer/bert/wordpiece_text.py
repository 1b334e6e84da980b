"""BERT's text pipeline before the vocabulary: normalisation, pre-tokenization and the WordPiece split of one word.

The steps 2-4 of :mod:`torchworks.transformer.bert.wordpiece` (which holds the tokenizer object, the special tokens and
the post-processing), in the order and with the character classes of HF ``tokenizers``' ``BertNormalizer``,
``BertPreTokenizer`` and ``WordPiece`` model, so that ids match a ``tokenizer.json`` read by that library.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache

__all__ = ["bert_normalize", "bert_pre_tokenize", "wordpiece_split"]

# Rust's char::is_whitespace (Unicode White_Space); Python's str.isspace also accepts U+001C..U+001F.
_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
              "\u2028\u2029\u202f\u205f\u3000"
_WS_SPLIT = re.compile("[" + re.escape(_WHITESPACE) + "]+")
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+")
_ASCII_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
# CJK Unified Ideographs blocks that BERT surrounds with spaces (Hangul, kana etc. are not included).
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
               (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
# ASCII cleaning: C0 controls and DEL vanish, tab/newline/CR become spaces.
_ASCII_CLEAN = {i: None for i in (*range(32), 127)} | {9: " ", 10: " ", 13: " "}


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


@lru_cache(maxsize=65536)
def _is_punct(ch: str) -> bool:
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


def bert_normalize(text: str, *, clean_text: bool = True, handle_chinese_chars: bool = True,
                   strip_accents: bool | None = None, lowercase: bool = True) -> str:
    """BERT's text normalisation (step 2 of the module docstring).

    Args:
        text: Raw text.
        clean_text: Remove NUL, U+FFFD and control characters; map white space to " ".
        handle_chinese_chars: Surround CJK ideographs with spaces (each becomes its own word).
        strip_accents: Decompose (NFD) and drop non-spacing marks; None follows ``lowercase``.
        lowercase: Lower-case (Unicode full case mapping, e.g. "İ" -> "i" + U+0307 before accent stripping).
    """
    if strip_accents is None:
        strip_accents = lowercase
    if text.isascii():  # fast path: no CJK, no accents, controls are C0/DEL only
        if clean_text:
            text = text.translate(_ASCII_CLEAN)
        return text.lower() if lowercase else text
    if clean_text:
        out = []
        for ch in text:
            if ch == "\x00" or ch == "\ufffd":
                continue
            if ch in _WHITESPACE:
                out.append(" " if ch in "\t\n\r" or unicodedata.category(ch)[0] != "C" else "")
            elif unicodedata.category(ch)[0] == "C":  # Cc, Cf, Cn, Co, Cs
                continue
            else:
                out.append(ch)
        text = "".join(out)
    if handle_chinese_chars:
        text = "".join(f" {ch} " if _is_cjk(ch) else ch for ch in text)
    if strip_accents:
        text = "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")
    return text.lower() if lowercase else text


def bert_pre_tokenize(text: str) -> list[str]:
    """Split normalised text into words: on white space, and around every punctuation character."""
    words: list[str] = []
    for chunk in _WS_SPLIT.split(text):
        if not chunk:
            continue
        if _ASCII_WORD.fullmatch(chunk):
            words.append(chunk)
            continue
        start = 0
        for i, ch in enumerate(chunk):
            if _is_punct(ch):
                if i > start:
                    words.append(chunk[start:i])
                words.append(ch)
                start = i + 1
        if start < len(chunk):
            words.append(chunk[start:])
    return words


def wordpiece_split(word: str, vocab: Mapping[str, int], *, unk_token: str = "[UNK]", prefix: str = "##",
                    max_input_chars_per_word: int = 100) -> list[str]:
    """Greedy longest-match-first WordPiece of one pre-tokenized word.

    Returns:
        The pieces (continuations carry ``prefix``), or ``[unk_token]`` when the word is longer than
        ``max_input_chars_per_word`` characters or cannot be covered by vocabulary entries.
    """
    if len(word) > max_input_chars_per_word:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else prefix + word[start:end]
            if piece in vocab:
                break
            end -= 1
        else:
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces

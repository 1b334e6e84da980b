"""BERT's WordPiece tokenizer in pure Python: basic tokenization, greedy longest-match WordPiece, [CLS]/[SEP].

Pipeline (the order of HF ``tokenizers``' ``BertNormalizer`` -> ``BertPreTokenizer`` -> ``WordPiece``, so the
ids equal those of a ``tokenizer.json`` read by that library):

1. Special tokens ([CLS], [SEP], [MASK], ...) written in the raw text are matched first, case-sensitively, and
   kept whole.
2. Normalisation: drop NUL, U+FFFD and control characters (Unicode C*, except tab/newline/CR, which become
   spaces like every other white space); put spaces around CJK ideographs; strip accents (NFD, drop
   non-spacing marks, category Mn) when ``strip_accents`` (default: follows ``lowercase``); lower-case.
3. Pre-tokenization: split on white space (Unicode White_Space) and isolate every punctuation character
   (ASCII punctuation, which includes ``$+<=>^`|~``, and Unicode categories P*).
4. WordPiece: a word longer than ``max_input_chars_per_word`` characters becomes [UNK]; otherwise take the
   longest vocabulary entry that prefixes the rest of the word (``##`` marking continuations) until the word
   is consumed; if some rest has no matching entry the *whole word* becomes one [UNK].
5. Post-processing: ``[CLS] A [SEP]`` (type ids 0) or ``[CLS] A [SEP] B [SEP]`` (B and its [SEP] type 1);
   optional truncation ("longest first", the HF rule) and padding (to the batch's longest or a fixed length).

The vocabulary comes from a ``tokenizer.json`` (HF format, e.g. all-MiniLM-L6-v2's) or a ``vocab.txt`` (one token
per line, id = line number); :meth:`WordPieceTokenizer.to_json` writes the HF format back, so either library reads
the other's file. The object mimics the parts of ``tokenizers.Tokenizer`` that the BERT code uses
(``encode``, ``encode_batch``, ``token_to_id``, ``enable_truncation``/``enable_padding``), so
:func:`~torchworks.transformer.bert.hf.embed_sentences` takes either.

References:
    Devlin et al., BERT, NAACL 2019, section 3 and google-research/bert ``tokenization.py`` (basic + WordPiece
    tokenizers). Wu et al., "Google's Neural Machine Translation System", 2016 (WordPiece). HF ``tokenizers``
    ``normalizers/bert.rs``, ``pre_tokenizers/bert.rs``, ``models/wordpiece``, ``utils/truncation.rs``: where
    they differ from the original (strip accents *before* lower-casing, control characters removed before
    white space is mapped), this module follows ``tokenizers``, since parity is tested against it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchworks.transformer.bert.wordpiece_text import bert_normalize, bert_pre_tokenize, wordpiece_split

__all__ = ["Encoding", "WordPieceTokenizer", "bert_normalize", "bert_pre_tokenize", "wordpiece_split"]

_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


@dataclass
class Encoding:
    """One encoded input (field names as ``tokenizers.Encoding``); lists have equal length T.

    Attributes:
        ids: Token ids.
        tokens: Token strings.
        type_ids: Segment ids: 0 for [CLS], sentence A and its [SEP]; 1 for sentence B and its [SEP].
        attention_mask: 1 for real tokens, 0 for padding.
        special_tokens_mask: 1 for [CLS]/[SEP]/padding, 0 for text tokens.
        word_ids: Index of the word (pre-token, or input word when pre-tokenized) each token came from, counted
            per sentence; None for added [CLS]/[SEP] and padding.
        sequence_ids: 0 or 1 for tokens of sentence A or B; None for added special tokens and padding.
    """

    ids: list[int]
    tokens: list[str]
    type_ids: list[int]
    attention_mask: list[int]
    special_tokens_mask: list[int]
    word_ids: list[int | None]
    sequence_ids: list[int | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


class WordPieceTokenizer:
    """BERT WordPiece tokenizer (see the module docstring for the exact pipeline).

    Args:
        vocab: Token -> id mapping, or a list of tokens (id = position). Ids must be distinct.
        lowercase, strip_accents, clean_text, handle_chinese_chars: Normalisation options
            (:func:`bert_normalize`); defaults are BERT-uncased's.
        unk_token, cls_token, sep_token, pad_token, mask_token: Special tokens; each must be in ``vocab``.
        continuing_subword_prefix: Marker of word-internal pieces.
        max_input_chars_per_word: Longer words become [UNK].
        max_length: Truncate encodings to this many tokens including [CLS]/[SEP] (None: never truncate).
        padding: ``"longest"`` pads a batch to its longest encoding, an int pads to that fixed length (longer
            encodings are left as they are), None disables padding.

    Raises:
        ValueError: Duplicate ids or tokens, a special token missing from the vocabulary, bad options.
    """

    def __init__(self, vocab: Mapping[str, int] | Sequence[str], *, lowercase: bool = True,
                 strip_accents: bool | None = None, clean_text: bool = True, handle_chinese_chars: bool = True,
                 unk_token: str = "[UNK]", cls_token: str = "[CLS]", sep_token: str = "[SEP]",
                 pad_token: str = "[PAD]", mask_token: str = "[MASK]", continuing_subword_prefix: str = "##",
                 max_input_chars_per_word: int = 100, max_length: int | None = None,
                 padding: str | int | None = "longest") -> None:
        if isinstance(vocab, Mapping):
            vocab = dict(vocab)
        else:
            tokens = list(vocab)
            if len(set(tokens)) != len(tokens):
                dupes = sorted({t for t in tokens if tokens.count(t) > 1})[:5]
                raise ValueError(f"vocabulary has duplicate tokens, e.g. {dupes}")
            vocab = {t: i for i, t in enumerate(tokens)}
        if not vocab:
            raise ValueError("vocabulary is empty")
        if len(set(vocab.values())) != len(vocab):
            raise ValueError("vocabulary ids must be distinct")
        self.vocab: dict[str, int] = vocab
        self.inverse = {i: t for t, i in vocab.items()}
        self.options = dict(lowercase=lowercase, strip_accents=strip_accents, clean_text=clean_text,
                            handle_chinese_chars=handle_chinese_chars)
        self.specials = dict(unk=unk_token, cls=cls_token, sep=sep_token, pad=pad_token, mask=mask_token)
        missing = [t for t in self.specials.values() if t not in vocab]
        if missing:
            raise ValueError(f"special tokens {missing} are not in the vocabulary ({len(vocab)} tokens)")
        self.prefix = continuing_subword_prefix
        if max_input_chars_per_word < 1:
            raise ValueError(f"max_input_chars_per_word must be >= 1, got {max_input_chars_per_word}")
        self.max_input_chars_per_word = max_input_chars_per_word
        names = sorted(set(self.specials.values()), key=len, reverse=True)
        self._special_re = re.compile("(" + "|".join(map(re.escape, names)) + ")")
        self._special_set = frozenset(names)
        self.max_length: int | None = None
        self.padding: str | int | None = None
        self.enable_truncation(max_length) if max_length is not None else None
        self.enable_padding(padding) if padding is not None else None
        self._cache: dict[str, tuple[str, ...]] = {}

    # -- construction -------------------------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> WordPieceTokenizer:
        """Read a ``tokenizer.json`` (HF format) or a ``vocab.txt``; ``kwargs`` override the file's options.

        Raises:
            FileNotFoundError: No such file.
            ValueError: The JSON is not a BERT WordPiece tokenizer (names what it found instead).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json" or text.lstrip().startswith("{"):
            return cls.from_json(text, source=str(path), **kwargs)
        tokens = text.split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        return cls([t.rstrip("\r") for t in tokens], **kwargs)

    @classmethod
    def from_json(cls, text: str | Mapping, source: str = "tokenizer JSON", **kwargs: Any) -> WordPieceTokenizer:
        """Build from an HF ``tokenizer.json`` string or dict (model WordPiece, BertNormalizer, BertPreTokenizer)."""
        spec = json.loads(text) if isinstance(text, str) else dict(text)
        model = spec.get("model") or {}
        if model.get("type") != "WordPiece":
            raise ValueError(f"{source}: model type is {model.get('type')!r}, expected 'WordPiece'")
        norm = spec.get("normalizer") or {}
        if norm and norm.get("type") != "BertNormalizer":
            raise ValueError(f"{source}: normalizer {norm.get('type')!r} is not supported (only BertNormalizer)")
        pre = spec.get("pre_tokenizer") or {}
        if pre.get("type") != "BertPreTokenizer":
            raise ValueError(f"{source}: pre_tokenizer {pre.get('type')!r} is not supported (only BertPreTokenizer)")
        opts: dict[str, Any] = dict(unk_token=model.get("unk_token", "[UNK]"),
                                    continuing_subword_prefix=model.get("continuing_subword_prefix", "##"),
                                    max_input_chars_per_word=model.get("max_input_chars_per_word", 100))
        if norm:
            opts.update(lowercase=norm.get("lowercase", True), strip_accents=norm.get("strip_accents"),
                        clean_text=norm.get("clean_text", True),
                        handle_chinese_chars=norm.get("handle_chinese_chars", True))
        else:
            opts.update(lowercase=False, strip_accents=False, clean_text=False, handle_chinese_chars=False)
        trunc, pad = spec.get("truncation"), spec.get("padding")
        opts["max_length"] = trunc.get("max_length") if trunc else None
        if pad:
            strategy = pad.get("strategy")
            opts["padding"] = strategy["Fixed"] if isinstance(strategy, dict) else "longest"
            opts["pad_token"] = pad.get("pad_token", "[PAD]")
        else:
            opts["padding"] = None
        return cls(model["vocab"], **{**opts, **kwargs})

    def to_json(self) -> str:
        """This tokenizer as an HF ``tokenizer.json`` string (readable by ``tokenizers.Tokenizer.from_str``)."""
        cls_t, sep_t = self.specials["cls"], self.specials["sep"]
        specials = sorted({self.vocab[t] for t in self.specials.values()})
        template = {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": cls_t, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": sep_t, "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": cls_t, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": sep_t, "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": sep_t, "type_id": 1}}],
            "special_tokens": {t: {"id": t, "ids": [self.vocab[t]], "tokens": [t]} for t in (cls_t, sep_t)},
        }
        pad = None
        if self.padding is not None:
            strategy = "BatchLongest" if self.padding == "longest" else {"Fixed": self.padding}
            pad = {"strategy": strategy, "direction": "Right", "pad_to_multiple_of": None,
                   "pad_id": self.vocab[self.specials["pad"]], "pad_type_id": 0, "pad_token": self.specials["pad"]}
        spec = {
            "version": "1.0",
            "truncation": None if self.max_length is None else {
                "direction": "Right", "max_length": self.max_length, "strategy": "LongestFirst", "stride": 0},
            "padding": pad,
            "added_tokens": [{"id": i, "content": self.inverse[i], "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": True} for i in specials],
            "normalizer": {"type": "BertNormalizer", **self.options},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": template,
            "decoder": {"type": "WordPiece", "prefix": self.prefix, "cleanup": True},
            "model": {"type": "WordPiece", "unk_token": self.specials["unk"],
                      "continuing_subword_prefix": self.prefix,
                      "max_input_chars_per_word": self.max_input_chars_per_word,
                      "vocab": dict(sorted(self.vocab.items(), key=lambda kv: kv[1]))},
        }
        return json.dumps(spec, ensure_ascii=False)

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path`` (a ``tokenizer.json``)."""
        path = Path(path)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    # -- settings (the names of tokenizers.Tokenizer) -----------------------------------------------------------

    def enable_truncation(self, max_length: int) -> None:
        """Truncate every encoding to ``max_length`` tokens including [CLS]/[SEP] (longest sentence first)."""
        if not isinstance(max_length, int) or max_length < 3:
            raise ValueError(f"max_length must be an int >= 3 (room for [CLS] x [SEP]), got {max_length!r}")
        self.max_length = max_length

    def no_truncation(self) -> None:
        self.max_length = None

    def enable_padding(self, length: str | int | None = "longest", **_ignored: Any) -> None:
        """Pad batches to their longest encoding (``"longest"`` or None) or to a fixed ``length``."""
        if length is None:
            length = "longest"
        if length != "longest" and not (isinstance(length, int) and length >= 1):
            raise ValueError(f"padding must be 'longest' or a positive int, got {length!r}")
        self.padding = length

    def no_padding(self) -> None:
        self.padding = None

    # -- vocabulary ---------------------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def get_vocab_size(self) -> int:
        return len(self.vocab)

    def token_to_id(self, token: str) -> int | None:
        return self.vocab.get(token)

    def id_to_token(self, index: int) -> str | None:
        return self.inverse.get(index)

    def special_id(self, kind: str) -> int:
        """Id of a special token by role: ``"pad"``, ``"unk"``, ``"cls"``, ``"sep"`` or ``"mask"``."""
        if kind not in self.specials:
            raise ValueError(f"unknown special token role {kind!r}; known: {sorted(self.specials)}")
        return self.vocab[self.specials[kind]]

    @property
    def special_ids(self) -> frozenset[int]:
        return frozenset(self.vocab[t] for t in self.specials.values())

    # -- tokenization -------------------------------------------------------------------------------------------

    def _pieces(self, word: str) -> tuple[str, ...]:
        hit = self._cache.get(word)
        if hit is None:
            hit = tuple(wordpiece_split(word, self.vocab, unk_token=self.specials["unk"], prefix=self.prefix,
                                        max_input_chars_per_word=self.max_input_chars_per_word))
            if len(self._cache) < 500_000:
                self._cache[word] = hit
        return hit

    def _words(self, text: str) -> list[str]:
        """Words of raw text: special tokens kept whole, the rest normalised and pre-tokenized."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}: {text!r:.80}")
        words: list[str] = []
        for i, part in enumerate(self._special_re.split(text)):
            if i % 2:  # odd parts are the special tokens the split captured
                words.append(part)
            elif part:
                words.extend(bert_pre_tokenize(bert_normalize(part, **self.options)))
        return words

    def tokenize(self, text: str) -> list[str]:
        """WordPiece tokens of one text, without [CLS]/[SEP]."""
        return [p for w in self._words(text) for p in self._word_pieces(w)]

    def _word_pieces(self, word: str) -> tuple[str, ...]:
        return (word,) if word in self._special_set else self._pieces(word)

    def _sequence(self, text: str | Sequence[str], is_pretokenized: bool) -> tuple[list[str], list[int]]:
        """Tokens of one sentence and the word index of each."""
        if is_pretokenized:
            if isinstance(text, str) or not isinstance(text, Sequence):
                raise TypeError(f"is_pretokenized=True needs a list of words, got {type(text).__name__}")
            groups = [[p for w in self._words(word) for p in self._word_pieces(w)] for word in text]
        else:
            groups = [list(self._word_pieces(w)) for w in self._words(text)]
        tokens = [p for g in groups for p in g]
        word_ids = [i for i, g in enumerate(groups) for _ in g]
        return tokens, word_ids

    def _budgets(self, n_a: int, n_b: int | None) -> tuple[int, int]:
        """Lengths to keep of A and B under ``max_length`` (HF "longest first" rule)."""
        if self.max_length is None:
            return n_a, n_b or 0
        room = self.max_length - (2 if n_b is None else 3)
        if room < 0:
            raise ValueError(f"max_length {self.max_length} leaves no room for the special tokens of a pair")
        if n_b is None:
            return min(n_a, room), 0
        if n_a + n_b <= room:
            return n_a, n_b
        short, long_, swap = (n_a, n_b, False) if n_a <= n_b else (n_b, n_a, True)
        long_ = short if short > room else max(short, room - short)
        if short + long_ > room:
            short, long_ = room // 2, room // 2 + room % 2
        return (long_, short) if swap else (short, long_)

    def encode(self, sequence: str | Sequence[str], pair: str | Sequence[str] | None = None, *,
               is_pretokenized: bool = False, add_special_tokens: bool = True) -> Encoding:
        """Encode one sentence or a pair (truncated when enabled; padded only to a fixed padding length).

        Args:
            sequence: Text (or a list of words with ``is_pretokenized``).
            pair: Optional second sentence (segment B).
            is_pretokenized: Inputs are lists of words; each word is normalised and split on its own, and
                ``word_ids`` index the given words.
            add_special_tokens: Add [CLS]/[SEP] (False: just the pieces; truncation then keeps the first
                ``max_length`` pieces of each sentence in the same way).

        Raises:
            TypeError: An input is not a str (or not a list of str when pre-tokenized).
        """
        a_tok, a_wid = self._sequence(sequence, is_pretokenized)
        b = self._sequence(pair, is_pretokenized) if pair is not None else None
        n_a, n_b = self._budgets(len(a_tok), len(b[0]) if b else None)
        cls_t, sep_t = self.specials["cls"], self.specials["sep"]
        tokens, word_ids, seq_ids, types, special = [], [], [], [], []

        def add(toks: list[str], wids: list[Any], seq: int | None, typ: int, is_special: int) -> None:
            tokens.extend(toks)
            word_ids.extend(wids)
            seq_ids.extend([seq] * len(toks))
            types.extend([typ] * len(toks))
            special.extend([is_special] * len(toks))

        if add_special_tokens:
            add([cls_t], [None], None, 0, 1)
        add(a_tok[:n_a], a_wid[:n_a], 0, 0, 0)
        if add_special_tokens:
            add([sep_t], [None], None, 0, 1)
        if b is not None:
            add(b[0][:n_b], b[1][:n_b], 1, 1, 0)
            if add_special_tokens:
                add([sep_t], [None], None, 1, 1)
        ids = [self.vocab[t] for t in tokens]
        enc = Encoding(ids, tokens, types, [1] * len(ids), special, word_ids, seq_ids)
        if isinstance(self.padding, int):  # a fixed length pads single encodings too, as tokenizers does
            self.pad([enc], self.padding)
        return enc

    def encode_batch(self, inputs: Sequence[str | tuple[str, str] | Sequence[str]], *,
                     is_pretokenized: bool = False, add_special_tokens: bool = True) -> list[Encoding]:
        """Encode many inputs (texts, or ``(a, b)`` tuples for pairs) and pad them as configured.

        Raises:
            TypeError: ``inputs`` is a single string, or an item has the wrong type.
        """
        if isinstance(inputs, str):
            raise TypeError("encode_batch needs a list of inputs, got a single str (use encode)")
        out = []
        for item in inputs:
            if isinstance(item, tuple):
                if len(item) != 2:
                    raise ValueError(f"a pair must be a 2-tuple (a, b), got {len(item)} items")
                out.append(self.encode(item[0], item[1], is_pretokenized=is_pretokenized,
                                       add_special_tokens=add_special_tokens))
            else:
                out.append(self.encode(item, is_pretokenized=is_pretokenized, add_special_tokens=add_special_tokens))
        if self.padding is not None and out:
            self.pad(out, self.padding)
        return out

    def pad(self, encodings: list[Encoding], length: str | int = "longest") -> list[Encoding]:
        """Right-pad encodings in place to ``length`` (``"longest"``: the longest of them) and return them."""
        target = max(len(e) for e in encodings) if length == "longest" else int(length)
        pad_t = self.specials["pad"]
        pad_id = self.vocab[pad_t]
        for e in encodings:
            n = target - len(e)
            if n > 0:
                e.ids += [pad_id] * n
                e.tokens += [pad_t] * n
                e.type_ids += [0] * n
                e.attention_mask += [0] * n
                e.special_tokens_mask += [1] * n
                e.word_ids += [None] * n
                e.sequence_ids += [None] * n
        return encodings

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Text of ids: pieces joined by spaces, ``##`` continuations glued, space before . ? ! , removed.

        Raises:
            ValueError: An id is not in the vocabulary.
        """
        bad = [i for i in ids if i not in self.inverse]
        if bad:
            raise ValueError(f"ids {bad[:5]} are not in the vocabulary of {len(self.vocab)} tokens")
        skip = self.special_ids if skip_special_tokens else frozenset()
        parts = []
        for i in ids:
            if i in skip:
                continue
            tok = self.inverse[i]
            piece = tok[len(self.prefix):] if tok.startswith(self.prefix) else (" " if parts else "") + tok
            for a, b in _CLEANUP:  # per piece, as tokenizers' WordPiece decoder: " ." -> "." but "do not" stays
                piece = piece.replace(a, b)
            parts.append(piece)
        return "".join(parts)

    def __repr__(self) -> str:
        return (f"WordPieceTokenizer(vocab_size={self.vocab_size}, lowercase={self.options['lowercase']}, "
                f"max_length={self.max_length}, padding={self.padding!r})")

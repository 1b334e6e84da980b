"""Our WordPiece tokenizer: unit behaviour on a toy vocabulary, errors, and exact parity with HF ``tokenizers``."""

from __future__ import annotations

import gzip
import json

import pytest

from torchworks.transformer.bert.wordpiece import (
    WordPieceTokenizer,
    bert_normalize,
    bert_pre_tokenize,
    wordpiece_split,
)

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TOY = SPECIALS + ["un", "##aff", "##able", "want", "##ed", "wa", "runn", "##ing", ",", ".", "!", "the", "a", "cafe",
                  "日", "x", "##x"]


@pytest.fixture()
def toy() -> WordPieceTokenizer:
    return WordPieceTokenizer(TOY, padding=None)


def test_basic_normalisation():
    assert bert_normalize("Héllo  WÖRLD") == "hello  world"
    assert bert_normalize("Héllo", lowercase=False) == "Héllo"  # strip_accents follows lowercase
    assert bert_normalize("Héllo", lowercase=False, strip_accents=True) == "Hello"
    assert bert_normalize("a\tb\nc\r\x00d\x07e\ufffdf") == "a b c def"  # controls vanish, tab/newline -> space
    assert bert_normalize("a\x0bb\x85c\u200bd\xa0e") == "abcd e"  # Cc/Cf dropped (even white-space ones), NBSP -> " "
    assert bert_normalize("日本語abc") == " 日  本  語 abc"
    assert bert_normalize("한국어", lowercase=False) == "한국어"  # Hangul is not a CJK ideograph block


def test_pre_tokenize_splits_white_space_and_every_punctuation_mark():
    assert bert_pre_tokenize("hello, world!! (u.s.) $5+3=8") == [
        "hello", ",", "world", "!", "!", "(", "u", ".", "s", ".", ")", "$", "5", "+", "3", "=", "8"]
    assert bert_pre_tokenize("«ok» — fin…\u3000x") == ["«", "ok", "»", "—", "fin", "…", "x"]
    assert bert_pre_tokenize("   ") == []


def test_wordpiece_greedy_longest_match_and_unknowns(toy):
    vocab = toy.vocab
    assert wordpiece_split("unaffable", vocab) == ["un", "##aff", "##able"]
    assert wordpiece_split("wanted", vocab) == ["want", "##ed"]  # longest first: "want", not "wa"
    assert wordpiece_split("running", vocab) == ["runn", "##ing"]
    assert wordpiece_split("unwanted", vocab) == ["[UNK]"]  # "##want" missing: the whole word is unknown
    assert wordpiece_split("x" * 100, vocab) == ["x"] + ["##x"] * 99
    assert wordpiece_split("x" * 101, vocab) == ["[UNK]"]  # over max_input_chars_per_word
    assert wordpiece_split("xxx", vocab, max_input_chars_per_word=2) == ["[UNK]"]


def test_encode_single_and_pair(toy):
    enc = toy.encode("UnAffable, wanted!")
    assert enc.tokens == ["[CLS]", "un", "##aff", "##able", ",", "want", "##ed", "!", "[SEP]"]
    assert enc.ids == [TOY.index(t) for t in enc.tokens]
    assert enc.type_ids == [0] * 9 and enc.attention_mask == [1] * 9
    assert enc.word_ids == [None, 0, 0, 0, 1, 2, 2, 3, None]
    assert enc.special_tokens_mask == [1, 0, 0, 0, 0, 0, 0, 0, 1]
    pair = toy.encode("the cafe", "a Café [MASK].")
    assert pair.tokens == ["[CLS]", "the", "cafe", "[SEP]", "a", "cafe", "[MASK]", ".", "[SEP]"]
    assert pair.type_ids == [0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert pair.sequence_ids == [None, 0, 0, None, 1, 1, 1, 1, None]
    assert toy.tokenize("wanted [mask]") == ["want", "##ed", "[UNK]", "[UNK]", "[UNK]"]  # only exact "[MASK]"


def test_truncation_longest_first_and_padding(toy):
    toy.enable_truncation(7)
    pair = toy.encode("the the the the", "a")  # 4 + 1 tokens, room 4: A keeps 3, B keeps 1
    assert pair.tokens == ["[CLS]", "the", "the", "the", "[SEP]", "a", "[SEP]"]
    pair = toy.encode("the the the", "a a a")  # both too long: half each
    assert pair.tokens == ["[CLS]", "the", "the", "[SEP]", "a", "a", "[SEP]"]
    assert len(toy.encode("x " * 50)) == 7
    toy.no_truncation()
    toy.enable_padding("longest")
    batch = toy.encode_batch(["the", ("a", "the cafe")])
    assert [len(e) for e in batch] == [6, 6]
    assert batch[0].ids[3:] == [0, 0, 0] and batch[0].attention_mask == [1, 1, 1, 0, 0, 0]
    assert batch[0].word_ids[3:] == [None] * 3 and batch[0].special_tokens_mask[3:] == [1, 1, 1]
    toy.enable_padding(8)
    assert len(toy.encode("the")) == 8  # fixed length pads single encodings too


def test_decode_glues_continuations(toy):
    ids = toy.encode("UnAffable, wanted!").ids
    assert toy.decode(ids) == "unaffable, wanted!"
    assert toy.decode(ids, skip_special_tokens=False).startswith("[CLS] unaffable")


def test_errors(toy, tmp_path):
    with pytest.raises(TypeError, match="must be a str"):
        toy.encode(123)
    with pytest.raises(TypeError, match="list of words"):
        toy.encode("the cafe", is_pretokenized=True)
    with pytest.raises(TypeError, match="single str"):
        toy.encode_batch("the cafe")
    with pytest.raises(ValueError, match="2-tuple"):
        toy.encode_batch([("a", "b", "c")])
    with pytest.raises(ValueError, match="max_length must be an int >= 3"):
        toy.enable_truncation(2)
    with pytest.raises(ValueError, match="padding must be"):
        toy.enable_padding(0)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        toy.decode([0, 999])
    with pytest.raises(ValueError, match=r"special tokens \['\[MASK\]'\] are not in the vocabulary"):
        WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"])
    with pytest.raises(ValueError, match="duplicate tokens"):
        WordPieceTokenizer(TOY + ["the"])
    with pytest.raises(ValueError, match="unknown special token role"):
        toy.special_id("bos")
    with pytest.raises(FileNotFoundError, match="tokenizer file not found"):
        WordPieceTokenizer.from_file(tmp_path / "missing.json")
    bpe = tmp_path / "bpe.json"
    bpe.write_text(json.dumps({"model": {"type": "BPE", "vocab": {}}}))
    with pytest.raises(ValueError, match="model type is 'BPE', expected 'WordPiece'"):
        WordPieceTokenizer.from_file(bpe)
    spec = json.loads(toy.to_json())
    spec["pre_tokenizer"] = {"type": "Whitespace"}
    with pytest.raises(ValueError, match="pre_tokenizer 'Whitespace' is not supported"):
        WordPieceTokenizer.from_json(json.dumps(spec))


def test_json_and_vocab_txt_round_trip(toy, tmp_path):
    toy.enable_truncation(16)
    again = WordPieceTokenizer.from_file(toy.save(tmp_path / "tokenizer.json"))
    assert again.vocab == toy.vocab and again.max_length == 16 and again.options == toy.options
    (tmp_path / "vocab.txt").write_text("\n".join(TOY) + "\n", encoding="utf-8")
    txt = WordPieceTokenizer.from_file(tmp_path / "vocab.txt", padding=None)
    assert txt.encode("unaffable wanted").ids == toy.encode("unaffable wanted").ids


# ---- parity with HF tokenizers on MiniLM's real tokenizer.json ------------------------------------------------

def _minilm_json():
    pytest.importorskip("tokenizers")
    from torchworks.transformer.bert.hf import minilm_dir

    try:
        return minilm_dir() / "tokenizer.json"
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def pair_of_tokenizers():
    from tokenizers import Tokenizer

    path = _minilm_json()
    hf = Tokenizer.from_file(str(path))
    hf.no_padding()
    hf.no_truncation()
    return hf, WordPieceTokenizer.from_file(path, max_length=None, padding=None)


def _real_lines(per_source: int) -> list[str]:
    from torchworks.data import dataset_path

    lines: list[str] = []
    try:
        wiki = dataset_path("wikitext2")
        m30k = dataset_path("multi30k")
    except Exception as exc:  # the shared data folder is not on this machine
        pytest.skip(f"real text not available: {exc}")
    text = (wiki / "valid.txt").read_text(encoding="utf-8").splitlines()
    lines += [ln for ln in text if ln.strip()][:per_source]
    for lang in ("en", "de", "fr", "cs"):
        with gzip.open(m30k / "raw" / f"train.{lang}.gz", "rt", encoding="utf-8") as fh:
            lines += [next(fh).rstrip("\n") for _ in range(per_source)]
    return lines


def _check(hf, ours, lines, **kw):
    for line in lines:
        a, b = hf.encode(line, **kw), ours.encode(line, **kw)
        assert (a.ids, a.word_ids) == (b.ids, b.word_ids), (line, a.tokens, b.tokens)


def test_ids_equal_hf_tokenizers_on_real_lines(pair_of_tokenizers):
    """5,000 real lines: WikiText-2 paragraphs (numbers, @-@, accents) and Multi30k en/de/fr/cs captions."""
    hf, ours = pair_of_tokenizers
    lines = _real_lines(1000)
    assert len(lines) == 5000 and any("ü" in ln for ln in lines) and any("é" in ln for ln in lines)
    _check(hf, ours, lines)


@pytest.mark.slow
def test_ids_equal_hf_tokenizers_on_more_real_lines(pair_of_tokenizers):
    hf, ours = pair_of_tokenizers
    _check(hf, ours, _real_lines(6000))


HARD = ["İstanbul Ünïcödé 日本語 😀 naïve", "a\x0bb\x0cc\x85d\x1ce\x7f f\u200bg\u2028h\xa0i\u3000j",
        "Hello [MASK] world.[SEP][sep]", "x" * 101, "x" * 100, "Привет, мир! ¿Qué tal? — «ok» 1,234.5 $5 +7 <a> 3^2",
        "한국어 テスト ﬁ ß Σίσυφος", "\ufffd\x00zero", "", "   ", "ǅ ǈ Å Ω K", "don't , it 's fine . do not"]


def test_hard_unicode_pairs_truncation_and_decode_match_hf(pair_of_tokenizers):
    hf, ours = pair_of_tokenizers
    _check(hf, ours, HARD)
    for text in HARD:
        ids = hf.encode(text).ids
        assert ours.decode(ids) == hf.decode(ids)
        assert ours.decode(ids, skip_special_tokens=False) == hf.decode(ids, skip_special_tokens=False)
    words = ["The", "naïve", "U.S.", "[MASK]", "café's", "1,234"]
    a, b = hf.encode(words, is_pretokenized=True), ours.encode(words, is_pretokenized=True)
    assert (a.ids, a.word_ids) == (b.ids, b.word_ids)
    lines = _real_lines(60)
    for max_length in (8, 11, 32):
        hf.enable_truncation(max_length)
        ours.enable_truncation(max_length)
        try:
            for x, y in zip(lines[::2], lines[1::2], strict=False):
                a, b = hf.encode(x, y), ours.encode(x, y)
                assert (a.ids, a.type_ids, a.word_ids, a.sequence_ids) == (
                    b.ids, b.type_ids, b.word_ids, b.sequence_ids), (max_length, x, y)
        finally:
            hf.no_truncation()
            ours.no_truncation()


def test_hf_reads_our_json_and_file_settings_are_honoured(pair_of_tokenizers):
    from tokenizers import Tokenizer

    hf, ours = pair_of_tokenizers
    back = Tokenizer.from_str(ours.to_json())
    for text in HARD[:3] + ["A man rides a bike.", "Ein Mann fährt Fahrrad."]:
        assert back.encode(text).ids == hf.encode(text).ids
    as_shipped = WordPieceTokenizer.from_file(_minilm_json())  # the file pads and truncates at 128
    shipped = Tokenizer.from_file(str(_minilm_json()))
    assert (as_shipped.max_length, as_shipped.padding) == (128, 128)
    assert as_shipped.encode("hi " * 300).ids == shipped.encode("hi " * 300).ids
    assert as_shipped.encode("short").ids == shipped.encode("short").ids


def test_minilm_vocab_txt_and_tokenizer_json_agree():
    path = _minilm_json()
    a = WordPieceTokenizer.from_file(path, max_length=None, padding=None)
    b = WordPieceTokenizer.from_file(path.with_name("vocab.txt"), padding=None)
    assert a.vocab == b.vocab
    assert a.encode("The weather is lovely today.").ids == [101, 1996, 4633, 2003, 8403, 2651, 1012, 102]

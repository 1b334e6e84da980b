"""BERT pre-training data: 80/10/10 masking statistics, NSP pair construction and balance, article split,
WikiText reading, case tags and the simple baselines."""

from __future__ import annotations

import random

import pytest
import torch

from torchworks.transformer.bert.data import load_wikitext_articles, make_nsp_pairs, mask_tokens, split_documents
from torchworks.transformer.bert.finetune import TAGS, CharNgramNaiveBayes, MostFrequentTag, case_tag
from torchworks.transformer.bert.model import IGNORE

MASK, VOCAB = 4, 1000
REPLACE = torch.arange(5, VOCAB)  # ids 0..4 are the special tokens


def test_masking_counts_and_80_10_10_rule():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, VOCAB, (1000, 128), generator=gen)
    candidates = torch.ones_like(ids, dtype=torch.bool)
    candidates[:, 0] = candidates[:, -1] = False  # [CLS] / [SEP]
    lengths = torch.randint(20, 127, (1000,), generator=gen)
    candidates &= torch.arange(128) < lengths.unsqueeze(1)  # padding is never a candidate
    out, labels = mask_tokens(ids, candidates, MASK, REPLACE, generator=gen)
    chosen = labels != IGNORE
    n = candidates.sum(1)
    assert torch.equal(chosen.sum(1), (n.float() * 0.15).round().clamp_min(1).long())  # exact count per row
    assert not (chosen & ~candidates).any()
    assert torch.equal(out[~chosen], ids[~chosen]) and torch.equal(labels[chosen], ids[chosen])
    total = chosen.sum().item()
    masked = (out[chosen] == MASK).float().mean().item()
    kept = (out[chosen] == ids[chosen]).float().mean().item()
    replaced = 1 - masked - kept
    assert total > 10000
    assert abs(masked - 0.8) < 0.015 and abs(kept - 0.1) < 0.012 and abs(replaced - 0.1) < 0.012
    assert (out[chosen & (out != MASK)] >= 5).all()  # random replacements are never special tokens
    # positions are chosen uniformly: every candidate column is picked about 15 % of the time
    rate = (chosen.sum(0).float() / candidates.sum(0).clamp_min(1))[1:20]
    assert (rate - 0.15).abs().max() < 0.06


def test_masking_is_reproducible_and_validates_input():
    ids = torch.randint(5, VOCAB, (4, 16))
    cand = torch.ones_like(ids, dtype=torch.bool)
    a = mask_tokens(ids, cand, MASK, REPLACE, generator=torch.Generator().manual_seed(3))
    b = mask_tokens(ids, cand, MASK, REPLACE, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    none = torch.zeros_like(cand)
    out, labels = mask_tokens(ids, none, MASK, REPLACE)
    assert torch.equal(out, ids) and (labels == IGNORE).all()  # a row without candidates is left alone
    with pytest.raises(ValueError, match="must be the same"):
        mask_tokens(ids, cand[:, :3], MASK, REPLACE)
    with pytest.raises(ValueError, match="bad masking fractions"):
        mask_tokens(ids, cand, MASK, REPLACE, mask_frac=0.8, random_frac=0.3)


def _docs(n_docs: int, rng: random.Random) -> list[list[list[int]]]:
    """Token = doc * 10_000 + sentence * 100 + position, so every piece says where it came from."""
    return [[[d * 10_000 + s * 100 + k for k in range(rng.randint(3, 30))] for s in range(rng.randint(2, 40))]
            for d in range(n_docs)]


def _where(token: int) -> tuple[int, int]:
    return token // 10_000, token % 10_000 // 100


def test_nsp_pairs_are_real_continuations_or_other_documents_and_balanced():
    rng = random.Random(0)
    docs = _docs(300, rng)
    pairs = make_nsp_pairs(docs, max_len=64, rng=random.Random(1))
    assert len(pairs) > 2000
    share = sum(label for _, _, label in pairs) / len(pairs)
    assert abs(share - 0.5) < 0.03, share
    for a, b, label in pairs:
        assert a and b and len(a) + len(b) <= 61
        (da, sa), (db, sb) = _where(a[-1]), _where(b[0])
        assert all(_where(t)[0] == da for t in a)  # A is one run of one document
        if label == 0:
            assert db == da and sb >= sa and all(_where(t)[0] == da for t in b)
            assert sb - sa <= 1 or _where(b[0])[1] > _where(a[0])[1]  # B continues A (ends may be trimmed)
        else:
            assert db != da
    # every sentence is used: pieces of 90 % of the sentences appear in some A or "next" B
    seen = {_where(t) for a, b, label in pairs for t in (a + (b if label == 0 else []))}
    assert len(seen) / sum(len(d) for d in docs) > 0.9


def test_nsp_pairs_errors_and_short_targets():
    with pytest.raises(ValueError, match="at least 2 non-empty documents"):
        make_nsp_pairs([[[1, 2]], [[]]], 16, random.Random(0))
    with pytest.raises(ValueError, match="max_len must be >= 5"):
        make_nsp_pairs(_docs(3, random.Random(0)), 4, random.Random(0))
    pairs = make_nsp_pairs(_docs(100, random.Random(2)), 128, random.Random(0), short_seq_prob=1.0)
    full = make_nsp_pairs(_docs(100, random.Random(2)), 128, random.Random(0), short_seq_prob=0.0)
    mean = lambda ps: sum(len(a) + len(b) for a, b, _ in ps) / len(ps)  # noqa: E731
    assert mean(pairs) < 0.8 * mean(full)


def test_split_documents_is_a_seeded_partition():
    train, val, test = split_documents(120, 0.1, 0.1, seed=0)
    assert (len(train), len(val), len(test)) == (96, 12, 12)
    assert sorted(train + val + test) == list(range(120))
    assert split_documents(120, 0.1, 0.1, seed=0) == (train, val, test)
    assert split_documents(120, 0.1, 0.1, seed=1) != (train, val, test)
    assert split_documents(10, 0.2, 0.0, seed=0)[2] == []
    with pytest.raises(ValueError, match="too few"):
        split_documents(3, 0.3, 0.3, seed=0)
    with pytest.raises(ValueError, match="val_fraction"):
        split_documents(10, 0.0, 0.1, seed=0)


def test_wikitext_articles(tmp_path):
    path = tmp_path / "wiki.txt"
    path.write_text(" \n = Homarus = \n \n Homarus is a lobster . It lives in the sea ! Is it red ? \n"
                    " = = Description = = \n It weighs 0 @.@ 7 kg , or 5 @,@ 000 g ; a <unk> one . \n"
                    " = Second @-@ article = \n One sentence only \n", encoding="utf-8")
    arts = load_wikitext_articles([path])
    assert arts == [["Homarus is a lobster .", "It lives in the sea !", "Is it red ?",
                     "It weighs 0.7 kg , or 5,000 g ; a [UNK] one ."], ["One sentence only"]]


def test_case_tags():
    assert [case_tag(w) for w in ("the", "The", "NASA", "McDonald", "I", "A", "iPhone", "1990", ",", "[UNK]")] == [
        0, 1, 2, 3, 1, 1, 3, None, None, None]
    assert TAGS[2] == "upper" and case_tag("Ökonomie") == 1 and case_tag("U.S.") == 2


def test_char_ngram_naive_bayes_and_most_frequent_tag():
    texts = ["ein mann", "der hund", "eine frau", "a man", "the dog", "a woman"]
    nb = CharNgramNaiveBayes().fit(texts, [0, 0, 0, 1, 1, 1])
    assert nb.predict(["ein hund", "the man", "der mann"]) == [0, 1, 0]
    with pytest.raises(ValueError, match="as many labels"):
        CharNgramNaiveBayes().fit(texts, [0])
    mft = MostFrequentTag().fit(["The", "the", "the", "Paris", "Paris", "paris"], [1, 0, 0, 1, 1, 0])
    assert mft.predict(["the", "THE", "paris", "unseen"]) == [0, 0, 1, 0]
    with pytest.raises(ValueError, match="as many tags"):
        MostFrequentTag().fit([], [])

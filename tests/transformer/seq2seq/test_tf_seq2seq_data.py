"""Multi30k data for the encoder-decoder: split sizes, joint BPE round trip, bucketing, collate, sacrebleu BLEU."""

from __future__ import annotations

import gzip

import pytest
import torch

from torchworks.transformer.seq2seq.data import (
    SPECIALS,
    LengthBucketSampler,
    TranslationDataset,
    TranslationTokenizer,
    collate_translation,
    corpus_bleu,
    load_multi30k,
    translate,
)


def multi30k_or_skip():
    try:
        from torchworks.data import dataset_path

        root = dataset_path("multi30k")
        load_multi30k("val", root=root)
        return root
    except Exception as exc:  # not downloaded / not mounted on this machine
        pytest.skip(f"Multi30k not available: {exc}")


@pytest.fixture(scope="module")
def data():
    root = multi30k_or_skip()
    return {split: load_multi30k(split, root=root) for split in ("train", "val", "test2016")}


@pytest.fixture(scope="module")
def tok(data):
    return TranslationTokenizer.train((s for pair in data["train"] for s in pair), vocab_size=8000)


def test_split_sizes_and_alignment(data):
    assert [len(data[s]) for s in ("train", "val", "test2016")] == [29000, 1014, 1000]
    assert data["train"][0] == ("Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche.",
                                "Two young, White males are outside near many bushes.")
    assert all(src and tgt for src, tgt in data["test2016"])


def test_joint_bpe_round_trips_and_has_specials(data, tok):
    assert tok.vocab_size == 8000
    assert [tok.tokenizer.token_to_id(t) for t in SPECIALS] == [0, 1, 2, 3]
    held_out = [s for split in ("val", "test2016") for pair in data[split] for s in pair]
    for text in held_out + [s for pair in data["train"][:500] for s in pair]:
        assert tok.decode(tok.encode(text)) == text
    ids = [i for text in held_out for i in tok.encode(text)]
    assert tok.unk_id not in ids  # byte-level: nothing is unknown
    assert len(ids) / len(held_out) < 20  # subwords, not bytes: ~13 words per sentence
    assert tok.decode([tok.bos_id] + tok.encode("Ein Hund.") + [tok.eos_id, 99, tok.pad_id]) == "Ein Hund."


def test_tokenizer_save_load(tok, tmp_path):
    again = TranslationTokenizer.load(tok.save(tmp_path / "bpe.json"))
    assert again.encode("Ein Mann fährt Fahrrad.") == tok.encode("Ein Mann fährt Fahrrad.")
    with pytest.raises(FileNotFoundError):
        TranslationTokenizer.load(tmp_path / "missing.json")


def test_dataset_and_bucketed_batches(data, tok):
    ds = TranslationDataset(data["val"], tok, max_len=40)
    src, tgt = ds[0]
    assert src[-1] == tok.eos_id and tgt[0] == tok.bos_id and tgt[-1] == tok.eos_id
    assert tok.decode(tgt) == data["val"][0][1] and tok.decode(src) == data["val"][0][0]
    assert max(ds.lengths) <= 40
    sampler = LengthBucketSampler(ds.lengths, batch_size=64, max_tokens=1200, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(ds)))
    assert all(len(b) * max(ds.lengths[i] for i in b) <= 1200 and len(b) <= 64 for b in batches)
    padded = sum(len(b) * max(ds.lengths[i] for i in b) for b in batches)
    assert padded < 1.25 * sum(ds.lengths)  # bucketing keeps padding low
    batch = collate_translation([ds[i] for i in batches[0]], pad_id=tok.pad_id)
    assert batch["src"].shape[0] == len(batches[0]) and torch.equal(batch["src_key_padding_mask"], batch["src"] == 0)


def test_translate_batches_like_single_sentences(data, tok):
    """End to end (tokenise, pad, decode, detokenise): a batch gives each sentence what it gets alone."""
    from torchworks.transformer.seq2seq.model import Seq2SeqTransformer

    torch.manual_seed(0)
    model = Seq2SeqTransformer(dict(src_vocab_size=tok.vocab_size, tgt_vocab_size=tok.vocab_size, dim=32,
                                    num_encoder_layers=1, num_decoder_layers=1, num_heads=2, ff_dim=64, dropout=0.0,
                                    share_embeddings=True, pos="learned", tie_output=False)).eval()
    with torch.no_grad():
        model.tgt_pos.weight.mul_(30.0)  # outputs that vary with position (see test_tf_beam.trained_looking)
    sentences = [s for s, _ in data["val"][:6]]
    batch = translate(model, tok, sentences, max_new_tokens=12)
    assert batch == [translate(model, tok, [s], max_new_tokens=12)[0] for s in sentences]
    assert len(set(batch)) > 1 and all(isinstance(t, str) for t in batch)
    beam = translate(model, tok, sentences, beam_size=3, max_new_tokens=12, batch_size=4)
    assert beam == translate(model, tok, sentences, beam_size=3, max_new_tokens=12, use_cache=False)


def test_bleu_of_references_is_100(data):
    refs = [t for _, t in data["test2016"]]
    assert corpus_bleu(refs, refs) == pytest.approx(100.0)
    worse = [" ".join(r.split()[:-2]) for r in refs]
    assert 0 < corpus_bleu(worse, refs) < 100


def test_sampler_is_seeded_and_reshuffles():
    lengths = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10] * 5
    a = LengthBucketSampler(lengths, batch_size=4, pool_batches=2, seed=0)
    first = list(a)
    assert first == list(LengthBucketSampler(lengths, batch_size=4, pool_batches=2, seed=0))
    a.set_epoch(1)
    assert list(a) != first and len(a) == len(first)
    ordered = list(LengthBucketSampler(lengths, batch_size=4, shuffle=False))
    flat = [lengths[i] for b in ordered for i in b]
    assert flat == sorted(lengths)
    with pytest.raises(ValueError):
        LengthBucketSampler(lengths, max_tokens=3)


def test_bad_split_and_mismatched_files(tmp_path):
    with pytest.raises(ValueError, match="unknown Multi30k split"):
        load_multi30k("dev", root=tmp_path)
    with pytest.raises(FileNotFoundError):
        load_multi30k("val", root=tmp_path)
    for lang, lines in (("de", "a\nb\n"), ("en", "a\n")):
        with gzip.open(tmp_path / f"val.{lang}.gz", "wt", encoding="utf-8") as f:
            f.write(lines)
    with pytest.raises(ValueError, match="2 de lines but 1 en"):
        load_multi30k("val", root=tmp_path)
    with pytest.raises(ValueError, match="hypotheses"):
        corpus_bleu(["a"], ["a", "b"])

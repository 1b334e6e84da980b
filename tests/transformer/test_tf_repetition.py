"""Repetition controls of decoding (CTRL penalty, no-repeat n-grams): the rules against hand-computed values and HF
transformers' processors, then inside GPT sampling, greedy and beam search, and ``torchworks translate``."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from torchworks.cli.main import main
from torchworks.transformer.common import ban_repeated_ngrams, penalize_repetition
from torchworks.transformer.gpt.generate import generate
from torchworks.transformer.gpt.model import GPT, GPTConfig
from torchworks.transformer.seq2seq.beam import beam_search, greedy_decode

INF = float("inf")


def test_penalty_by_hand():
    logits = torch.tensor([[2.0, -1.0, 0.5, -3.0], [2.0, -1.0, 0.5, -3.0]])
    seqs = torch.tensor([[0, 1, 1], [3, 3, 3]])  # a repeated id is penalised once
    out = penalize_repetition(logits, seqs, 2.0)
    assert out.tolist() == [[1.0, -2.0, 0.5, -3.0], [2.0, -1.0, 0.5, -6.0]]
    assert torch.equal(penalize_repetition(logits, seqs, 1.0), logits)
    assert torch.equal(penalize_repetition(logits, seqs[:, :0], 3.0), logits)
    with pytest.raises(ValueError, match="> 0"):
        penalize_repetition(logits, seqs, 0.0)


@pytest.mark.parametrize(("n", "banned"), [(1, {1, 2, 3}), (2, {3}), (3, {3}), (4, set()), (6, set()), (0, set())])
def test_ngram_ban_by_hand(n, banned):
    seqs = torch.tensor([[1, 2, 3, 1, 2]])  # the next token after "1 2" would repeat "1 2 3"
    out = ban_repeated_ngrams(torch.zeros(1, 5), seqs, n)
    assert {i for i in range(5) if out[0, i] == -INF} == banned


def test_ngram_ban_rows_are_independent():
    seqs = torch.tensor([[4, 4, 4], [1, 4, 2]])
    out = ban_repeated_ngrams(torch.zeros(2, 5), seqs, 2)
    assert out[0].tolist() == [0, 0, 0, 0, -INF] and out[1].tolist() == [0] * 5
    with pytest.raises(ValueError, match=">= 0"):
        ban_repeated_ngrams(torch.zeros(1, 5), seqs[:1], -1)


def test_rules_match_hf_processors():
    transformers = pytest.importorskip("transformers")
    g = torch.Generator().manual_seed(0)
    seqs = torch.randint(0, 7, (6, 30), generator=g)
    logits = torch.randn(6, 7, generator=g) * 3
    for penalty in (0.5, 1.3, 4.0):
        ref = transformers.RepetitionPenaltyLogitsProcessor(penalty)(seqs, logits.clone())
        assert torch.allclose(penalize_repetition(logits, seqs, penalty), ref)
    for n in (1, 2, 3, 4):
        ref = transformers.NoRepeatNGramLogitsProcessor(n)(seqs, logits.clone())
        assert torch.equal(torch.isneginf(ban_repeated_ngrams(logits, seqs, n)), torch.isneginf(ref))


def _gpt(vocab: int = 6) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab, block_size=16, n_layer=1, n_head=2, n_embd=16)).eval()


def test_gpt_greedy_with_penalty_follows_the_rule_step_by_step():
    model, prompt = _gpt(), torch.tensor([[1, 2]])
    out = generate(model, prompt, 10, greedy=True, repetition_penalty=1.7)
    seq = prompt
    for _ in range(10):  # the rule applied by hand to the model's logits
        logits, _ = model(seq)
        nxt = penalize_repetition(logits[:, -1], seq, 1.7).argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], dim=1)
    assert torch.equal(out, seq)


@pytest.mark.parametrize("use_cache", [False, True])
def test_gpt_no_repeat_ngram_never_repeats(use_cache):
    model = _gpt()
    # 30 tokens from 6 ids hold 29 bigrams of at most 36 kinds: greedy decoding of a random model repeats some.
    plain = generate(model, torch.tensor([[0]]), 29, greedy=True, use_cache=use_cache)[0].tolist()
    bigrams = list(zip(plain, plain[1:], strict=False))
    assert len(set(bigrams)) < len(bigrams)
    out = generate(model, torch.tensor([[0]]), 29, greedy=True, use_cache=use_cache, no_repeat_ngram_size=2)
    seq = out[0].tolist()
    bigrams = list(zip(seq, seq[1:], strict=False))
    assert len(set(bigrams)) == len(bigrams) == 29
    sampled = generate(model, torch.tensor([[0], [3]]), 20, temperature=1.5, no_repeat_ngram_size=3,
                       generator=torch.Generator().manual_seed(0))
    for row in sampled.tolist():
        grams = list(zip(row, row[1:], row[2:], strict=False))
        assert len(set(grams)) == len(grams)
    with pytest.raises(ValueError, match="bans every token"):
        generate(model, torch.tensor([[0]]), 7, greedy=True, no_repeat_ngram_size=1)  # only 6 distinct ids


class Always(nn.Module):
    """A decoder preferring A (p 0.7) over B (0.2) and <eos> (0.1), whatever the prefix."""

    PAD, BOS, EOS, A, B = 0, 1, 2, 3, 4

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(bos_id=self.BOS, eos_id=self.EOS, pad_id=self.PAD, max_len=12)

    def encode(self, src, mask):
        return torch.zeros(src.shape[0], 1, 1)

    def new_cache(self):
        return None

    def decode(self, tgt, memory, mask, cache=None):
        p = torch.full((5,), 1e-9)
        p[[self.A, self.B, self.EOS]] = torch.tensor([0.7, 0.2, 0.1])
        return p.log().expand(tgt.shape[0], tgt.shape[1], 5)


def test_seq2seq_greedy_and_beam_with_repetition_controls():
    model, src = Always(), torch.tensor([[5, 6]])
    a, b, eos, pad = Always.A, Always.B, Always.EOS, Always.PAD
    assert greedy_decode(model, src, use_cache=False)[0].tolist() == [a] * 11
    # no-repeat 1: A, then B (A banned), then only <eos> is left
    assert greedy_decode(model, src, use_cache=False, no_repeat_ngram_size=1)[0].tolist() == [a, b, eos]
    # penalty 10 on log-probs: after A, A's logit log 0.7 * 10 = -3.57 < log 0.2; then <eos> beats both
    assert greedy_decode(model, src, use_cache=False, repetition_penalty=10.0)[0].tolist() == [a, b, eos]
    # penalty 1.5: A's -0.53 still wins, nothing changes
    assert greedy_decode(model, src, use_cache=False, repetition_penalty=1.5)[0].tolist() == [a] * 11
    best = beam_search(model, src, beam_size=3, alpha=0.0, use_cache=False, no_repeat_ngram_size=1,
                       return_hypotheses=True)[0][0]
    # Without repeats, with each step renormalised over the tokens left: <eos> 0.1, A <eos> 0.7 * 1/3,
    # A B <eos> 0.7 * 2/3 * 1, B <eos> 0.2 * 1/8, B A <eos> 0.2 * 7/8 * 1: A B <eos> wins.
    assert best.tokens == [a, b, eos] and math.isclose(best.logprob, math.log(0.7 * 2 / 3), rel_tol=1e-5)
    plain = beam_search(model, src, beam_size=3, alpha=0.0, use_cache=False)
    assert plain[0].tolist() == [eos]  # (0.1 beats 0.07, 0.049, ...)
    assert pad not in best.tokens
    with pytest.raises(ValueError, match="repetition_penalty"):
        beam_search(model, src, repetition_penalty=-1.0)


def test_translate_cli_flags(capsys):
    sentence = "Ein Mann fährt Fahrrad."
    assert main(["translate", sentence, "--beam", "1", "--no-repeat-ngram", "2", "--repetition-penalty", "1.2"]) == 0
    assert capsys.readouterr().out.strip()
    assert main(["translate", sentence, "--repetition-penalty", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--repetition-penalty" in err

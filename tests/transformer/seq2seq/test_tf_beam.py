"""Greedy and beam-search decoding: cache == no cache, beam 1 == greedy, known optima, a learnable toy task."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import pytest
import torch
from torch import Tensor, nn

from torchworks.core.registry import MODELS
from torchworks.transformer.seq2seq.beam import Hypothesis, beam_search, greedy_decode, length_penalty
from torchworks.transformer.seq2seq.model import label_smoothed_loss

PAD, BOS, EOS, A, B = 0, 1, 2, 3, 4


class ToyCache:
    """Remembers each row's prefix; ``reorder`` must keep it aligned with the beams, or the toy answers wrongly."""

    def __init__(self) -> None:
        self.prefix: Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.prefix is None else self.prefix.shape[1]

    def reorder(self, index: Tensor) -> None:
        self.prefix = self.prefix.index_select(0, index)


class ToyModel(nn.Module):
    """A 'decoder' whose next-token distribution is a function of the prefix (ignores the source)."""

    def __init__(self, probs) -> None:
        super().__init__()
        self.probs = probs  # prefix tuple (without <bos>) -> probabilities (V,)
        self.config = SimpleNamespace(bos_id=BOS, eos_id=EOS, pad_id=PAD, max_len=16)

    def encode(self, src, mask):
        return torch.zeros(src.shape[0], 1, 1)

    def new_cache(self):
        return ToyCache()

    def decode(self, tgt, memory, mask, cache=None):
        if cache is not None:
            cache.prefix = tgt if cache.prefix is None else torch.cat([cache.prefix, tgt], dim=1)
            tgt = cache.prefix
        rows = [self.probs(tuple(r[1:])) for r in tgt.tolist()]
        return torch.stack(rows).log()[:, None, :].expand(-1, tgt.shape[1], -1)  # only the last position matters


def table(prefix: tuple[int, ...]) -> Tensor:
    """Greedy takes A (0.6) then A (0.4) then <eos>: p = 0.24; the best sequence is B <eos> (0.4 * 0.9 = 0.36)."""
    p = {(): {A: 0.6, B: 0.4}, (A,): {A: 0.4, B: 0.3, EOS: 0.3}, (B,): {EOS: 0.9, A: 0.05, B: 0.05}}.get(
        prefix, {EOS: 1.0})
    out = torch.full((5,), 1e-9)
    for tok, v in p.items():
        out[tok] = v
    return out / out.sum()


def random_table(prefix: tuple[int, ...]) -> Tensor:
    g = torch.Generator().manual_seed(hash(prefix) % (2**31))
    return (torch.randn(5, generator=g) * 2.0).softmax(-1)


def brute_force(probs, max_new: int, alpha: float) -> tuple[list[int], float]:
    """Best normalised score over every sequence that ends in <eos> or reaches max_new tokens."""
    best = (None, -math.inf)
    for n in range(1, max_new + 1):
        for seq in itertools.product(range(5), repeat=n):
            if EOS in seq[:-1] or (n < max_new and seq[-1] != EOS):
                continue
            lp = sum(math.log(probs(seq[:i])[t].item()) for i, t in enumerate(seq))
            score = lp / length_penalty(n, alpha)
            if score > best[1]:
                best = (list(seq), score)
    return best


def test_beam_beats_greedy_on_hand_built_distribution():
    model, src = ToyModel(table), torch.ones(1, 3, dtype=torch.long)
    assert greedy_decode(model, src, max_new_tokens=5).tolist() == [[A, A, EOS]]
    for use_cache in (True, False):
        assert beam_search(model, src, beam_size=2, alpha=0.0, max_new_tokens=5,
                           use_cache=use_cache).tolist() == [[B, EOS]]
    hyps = beam_search(model, src, beam_size=2, alpha=0.0, max_new_tokens=5, return_hypotheses=True)[0]
    assert [h.tokens for h in hyps] == [[B, EOS], [A, A, EOS]]
    assert hyps[0].logprob == pytest.approx(math.log(0.36), abs=1e-6)
    assert brute_force(table, 4, 0.0)[0] == [B, EOS]


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.5])
def test_wide_exact_beam_equals_brute_force(alpha):
    """With room for every hypothesis and the exact stopping bound, beam search is exhaustive search."""
    model, src = ToyModel(random_table), torch.ones(1, 2, dtype=torch.long)
    seq, score = brute_force(random_table, 4, alpha)
    hyps = beam_search(model, src, beam_size=700, alpha=alpha, max_new_tokens=4, early_stopping=False,
                       return_hypotheses=True)[0]
    assert hyps[0].tokens == seq and hyps[0].score == pytest.approx(score, abs=1e-5)
    assert all(a.score >= b.score for a, b in itertools.pairwise(hyps))


def test_length_penalty():
    assert length_penalty(1, 0.6) == 1.0 and length_penalty(7, 0.0) == 1.0
    assert length_penalty(7, 1.0) == pytest.approx(2.0)
    assert Hypothesis(-1.0, -2.0, [1]) > Hypothesis(-1.5, -1.0, [2])


def trained_looking():
    """A random model whose greedy outputs vary with position and source (a plain random init repeats one token):
    untied output, learned positions scaled up."""
    torch.manual_seed(0)
    model = MODELS.build("transformer_tiny", pos="learned", tie_output=False).eval()
    with torch.no_grad():
        model.tgt_pos.weight.mul_(30.0)
    return model


def sources():
    src = torch.randint(3, 32, (5, 7))
    src[1, 4:] = 0
    src[3, 2:] = 0
    return src


def test_greedy_cache_equals_no_cache():
    model, src = trained_looking(), sources()
    a = greedy_decode(model, src, max_new_tokens=25)
    b = greedy_decode(model, src, max_new_tokens=25, use_cache=False)
    assert torch.equal(a, b)
    assert len(set(a.flatten().tolist())) > 5  # a non-degenerate comparison


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_size_one_is_greedy(alpha):
    model, src = trained_looking(), sources()
    greedy = greedy_decode(model, src, max_new_tokens=25)
    assert torch.equal(beam_search(model, src, beam_size=1, alpha=alpha, max_new_tokens=25), greedy)


def test_beam_cache_equals_no_cache_and_scores_are_consistent():
    model, src = trained_looking(), sources()
    hyps = beam_search(model, src, beam_size=4, max_new_tokens=20, return_hypotheses=True)
    slow = beam_search(model, src, beam_size=4, max_new_tokens=20, use_cache=False, return_hypotheses=True)
    for h, s in zip(hyps, slow, strict=True):
        assert [x.tokens for x in h] == [x.tokens for x in s]
    with torch.no_grad():  # the reported log-probability is the teacher-forced one
        for i, h in enumerate(hyps):
            best = h[0]
            tgt = torch.tensor([[1] + best.tokens])
            logp = model(src[i : i + 1], tgt[:, :-1]).log_softmax(-1)
            total = logp[0, torch.arange(len(best.tokens)), tgt[0, 1:]].sum().item()
            assert total == pytest.approx(best.logprob, abs=1e-4)
            assert best.score >= max(x.score for x in h)


def test_bad_arguments_and_mode_restored():
    model, src = trained_looking(), sources()
    model.train()
    greedy_decode(model, src, max_new_tokens=3)
    assert model.training
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(model, src, beam_size=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        greedy_decode(model, src, max_new_tokens=model.config.max_len)


def reverse_batch(n: int, g: torch.Generator, vocab: int = 12, longest: int = 6):
    """Sources of 2..6 symbols (ids 3..vocab-1) + <eos>; targets <bos> + reversed symbols + <eos>, <pad>-filled."""
    lengths = torch.randint(2, longest + 1, (n,), generator=g)
    sym = torch.randint(3, vocab, (n, longest), generator=g)
    pos = torch.arange(longest)
    keep = pos[None] < lengths[:, None]
    rows = torch.arange(n)
    src = torch.zeros(n, longest + 1, dtype=torch.long)
    src[:, :longest] = sym * keep
    src[rows, lengths] = EOS
    rev = sym.gather(1, (lengths[:, None] - 1 - pos[None]).clamp_min(0)) * keep
    tgt = torch.zeros(n, longest + 2, dtype=torch.long)
    tgt[:, 0], tgt[:, 1 : longest + 1] = BOS, rev
    tgt[rows, lengths + 1] = EOS
    return src, tgt


def test_tiny_model_learns_to_reverse():
    """300 AdamW steps teach a 1+1-layer d32 model to reverse up to 6 symbols (9-13 s at 1 thread, load ~12)."""
    model = MODELS.build("transformer_tiny", src_vocab_size=12, tgt_vocab_size=12, share_embeddings=True,
                         num_heads=4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=300, pct_start=0.1)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        src, tgt = reverse_batch(64, g)
        loss, _ = label_smoothed_loss(model(src, tgt[:, :-1]), tgt[:, 1:], smoothing=0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    src, tgt = reverse_batch(200, torch.Generator().manual_seed(1))
    for out in (greedy_decode(model, src, max_new_tokens=7), beam_search(model, src, beam_size=3, max_new_tokens=7)):
        exact = (out == tgt[:, 1 : 1 + out.shape[1]]).all(dim=1).float().mean().item()
        assert exact >= 0.95, exact

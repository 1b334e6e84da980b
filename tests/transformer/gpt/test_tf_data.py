"""LM data: positional split, token windows, nanoGPT-style batches and full-split validation loss."""

from __future__ import annotations

import pytest
import torch

from torchworks.transformer.gpt.data import TokenWindows, full_val_loss, random_batch, split_tokens
from torchworks.transformer.gpt.model import GPT, GPTConfig


def test_split_is_positional_90_10():
    tokens = torch.arange(1_115_394)  # tinyshakespeare's length in characters
    train, val = split_tokens(tokens)
    assert len(train) == 1_003_854 and len(val) == 111_540  # nanoGPT's shakespeare_char sizes
    assert train[-1] + 1 == val[0]
    with pytest.raises(ValueError):
        split_tokens(tokens, 1.0)


@pytest.mark.parametrize("stride", [1, 3, 4])
def test_windows_cover_stream_with_shifted_targets(stride):
    tokens = torch.arange(20)
    ds = TokenWindows(tokens, block_size=4, stride=stride)
    starts = [int(ds[i][0][0]) for i in range(len(ds))]
    assert starts == list(range(0, 16, stride))  # last window ends exactly at token 19 or earlier
    for x, y in (ds[0], ds[-1]):
        assert x.shape == y.shape == (4,) and torch.equal(y, x + 1)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_random_batch_matches_windows():
    tokens = torch.arange(100)
    x, y = random_batch(tokens, 8, 5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, 8) and torch.equal(y, x + 1) and int(x.max()) < 99
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(5, 7, dtype=torch.long))


def test_full_val_loss_scores_every_full_window_once():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=16)).train()
    tokens = torch.randint(0, 13, (8 * 7 + 4,))  # 7 full windows; the last 3 targets are dropped
    expected = torch.cat([
        torch.nn.functional.cross_entropy(model.eval()(tokens[j * 8 : j * 8 + 8][None], all_logits=True)[0][0],
                                          tokens[j * 8 + 1 : j * 8 + 9], reduction="none")
        for j in range(7)
    ]).mean().item()
    model.train()
    for batch_size in (1, 3, 64):  # token-weighted mean: independent of batching, even with a short last batch
        assert abs(full_val_loss(model, tokens, 8, batch_size) - expected) < 1e-6
    assert model.training
    with pytest.raises(ValueError, match="no full window"):
        full_val_loss(model, tokens[:8], 8)

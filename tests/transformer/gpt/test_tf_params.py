"""``torchworks transformer params``: published GPT-2 / GPT-3 sizes counted on the meta device."""

from __future__ import annotations

import json

import pytest
import torch

from torchworks.cli.main import main
from torchworks.cli.transformer_cmd import PARAM_PRESETS
from torchworks.transformer.gpt.params import PRESETS, build_on_meta, count_params, preset_config

# Published totals and their unit: OpenAI's recount of the released GPT-2 weights (millions), GPT-3's name and
# Table 2.1 (billions; the table's "175.0B" is 174.6B by this count, which rounds to the 175B of the name).
PUBLISHED = {"gpt2": (124, 1e6), "gpt2-medium": (355, 1e6), "gpt2-large": (774, 1e6), "gpt2-xl": (1558, 1e6),
             "gpt3-175b": (175, 1e9)}


def closed_form(L: int, d: int, vocab: int, ctx: int) -> int:
    """Pre-LN GPT with biases and a tied head: per block 12 d^2 + 13 d, plus embeddings and the final LayerNorm."""
    return L * (12 * d * d + 13 * d) + vocab * d + ctx * d + 2 * d


@pytest.mark.parametrize("name", list(PRESETS))
def test_counts_match_published_totals_and_the_closed_form(name):
    cfg = preset_config(name)
    model = build_on_meta(cfg)
    assert model.tok_emb.weight.device.type == "meta"  # no memory was allocated for the weights
    counts = count_params(model)
    assert counts.total == closed_form(cfg.n_layer, cfg.n_embd, cfg.vocab_size, cfg.block_size)
    value, unit = PUBLISHED[name]
    assert round(counts.total / unit) == value
    d, L = cfg.n_embd, cfg.n_layer
    assert counts.attention == L * (4 * d * d + 4 * d) and counts.mlp == L * (8 * d * d + 5 * d)
    assert counts.layer_norm == (2 * L + 1) * 2 * d and counts.head == 0


@pytest.mark.parametrize("name", ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"])
def test_gpt2_presets_equal_transformers_model_sizes(name):
    transformers = pytest.importorskip("transformers")
    cfg = preset_config(name)
    with torch.device("meta"):
        hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=cfg.n_layer, n_head=cfg.n_head,
                                                                  n_embd=cfg.n_embd, n_positions=cfg.block_size))
    assert count_params(build_on_meta(cfg)).total == sum(p.numel() for p in hf.parameters())


def test_cli_prints_components_and_json(capsys):
    assert main(["transformer", "params", "--preset", "gpt3-175b"]) == 0
    out = capsys.readouterr().out
    assert "174,604,259,328" in out and "175.0B" in out and "96 blocks of 96 heads x 128" in out
    assert main(["transformer", "params", "--preset", "gpt2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"] == 124_439_808 and data["token embedding"] == 50257 * 768
    assert main(["transformer", "params", "--preset", "gpt5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown preset 'gpt5'" in err and "gpt3-175b" in err
    assert PARAM_PRESETS == tuple(PRESETS)

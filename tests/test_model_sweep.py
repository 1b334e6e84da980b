"""Every registered model builds, trains a step's worth on a tiny input and survives save_model -> load_model.

The registry is filled through the catalog (``load_all``), so this sweeps every model of every domain. Each model
must be listed in ``FAMILIES`` below with the constructor arguments it needs (most need none: a registered variant
pins its hyper-parameters) and a tiny input of the shape its ``forward`` takes; a model registered without an entry
fails here, saying so. Checks per model: finite outputs and gradients of a training-mode forward and backward, some
gradient non-zero, and, in eval mode, bit-identical outputs from the model rebuilt by ``load_model`` from the file
alone. The largest models (big_lama, plainconv_big, relama_big: 51M parameters) are built once each and see a
single 32x32 image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from torchworks.catalog import load_all
from torchworks.core.checkpoint import build_model, load_model, save_model
from torchworks.core.registry import MODELS

Inputs = Callable[[str, nn.Module, torch.Generator], tuple]


def images(channels: int, size: int | None = None, batch: int = 2) -> Inputs:
    """(batch, channels, size, size) in [0, 1]; ``size`` None: the trailing number of the model's name (``_64``)."""
    def make(name: str, model: nn.Module, gen: torch.Generator) -> tuple:
        side = size or int(name.rsplit("_", 1)[1])
        return (torch.rand(batch, channels, side, side, generator=gen),)
    return make


def tokens(vocab_of: Callable[[nn.Module], int], *lengths: int) -> Inputs:
    """One (2, length) integer tensor below the model's vocabulary size per length."""
    def make(name: str, model: nn.Module, gen: torch.Generator) -> tuple:
        return tuple(torch.randint(0, vocab_of(model), (2, n), generator=gen) for n in lengths)
    return make


def prior_tokens(name: str, model: nn.Module, gen: torch.Generator) -> tuple:
    n = model.size * model.size
    return torch.randint(0, model.vocab, (2, n), generator=gen), torch.rand(2, n, generator=gen) < 0.5


def steps(name: str, model: nn.Module, gen: torch.Generator) -> tuple:
    return (torch.randn(2, 5, 3, generator=gen),)  # (B, T, F) with F = input_size / n_features below


@dataclass(frozen=True)
class Family:
    names: tuple[str, ...]
    inputs: Inputs
    kwargs: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # per model; absent: none


FAMILIES = {
    "28 px grey classifiers": Family(
        ("fashion_mlp", "fashion_cnn", "cnn_vgg_28", "cnn_vgg_28_wide", "vit_small_convstem_28",
         "vit_small_patch4_28", "vit_small_patch7_28", "vit_tiny_patch4_28", "vit_wide_patch7_28"),
        images(1, 28)),
    "32 px colour classifiers": Family(
        ("cnn_vgg_32", "vit_mini_convstem_32", "vit_mini_patch4_32", "vit_small_patch4_32", "vit_tiny_patch4_32",
         "resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet8x4",
         "resnet32x4", "wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2", "vgg8", "vgg11", "vgg13", "shufflenetv1",
         "shufflenetv2", "mobilenetv2_half"),
        images(3, 32)),
    "inpainting generators (image + mask)": Family(
        ("lama_tiny", "lama_small", "lama_fourier", "big_lama", "relama_tiny", "relama_small", "relama_fourier",
         "relama_big", "plainconv_tiny", "plainconv_small", "plainconv_fourier", "plainconv_big"),
        images(4, 32, batch=1)),
    "context encoders (image + mask, at their size)": Family(("context_encoder_64", "context_encoder_128"),
                                                            images(4)),
    "ICT upsamplers (image + mask + prior image)": Family(("ict_upsampler_tiny", "ict_upsampler_small"),
                                                         images(7, 32, batch=1)),
    "ICT priors (token grid + unknown mask)": Family(("ict_prior_tiny", "ict_prior_small"), prior_tokens),
    "PatchGAN discriminators": Family(("lama_discriminator", "lama_discriminator_small", "lama_discriminator_tiny"),
                                      images(3, 32)),
    "DCGAN discriminators (at their size)": Family(("ce_discriminator_64", "ce_discriminator_128"), images(3)),
    "GPT": Family(("gpt", "gpt_mini", "gpt_small", "gpt_char_tiny", "gpt_char_small", "gpt_char_small_rope"),
                  tokens(lambda m: m.config.vocab_size, 8)),
    "BERT": Family(("bert_tiny", "bert_mini", "bert_minilm_l6"), tokens(lambda m: m.config.vocab_size, 8)),
    "encoder-decoder transformers (source, target)": Family(
        ("transformer_tiny", "transformer_multi30k_small", "transformer_multi30k_base"),
        tokens(lambda m: min(m.config.src_vocab_size, m.config.tgt_vocab_size), 7, 5)),
    "sequence models": Family(("seq_lstm", "seq_mlp", "seq_forecaster"), steps, kwargs={
        "seq_lstm": {"input_size": 3, "hidden_size": 4, "output_size": 2},
        "seq_mlp": {"input_size": 3, "hidden": [4], "output_size": 2},
        "seq_forecaster": {"n_features": 3, "horizon": 2}}),
}


def _origin(name: str) -> str:
    factory = MODELS.get(name)
    return getattr(factory, "__module__", None) or getattr(getattr(factory, "func", None), "__module__", "") or ""


load_all()
# Test suites register helpers of their own (engine_toys' _test_mlp); the sweep covers the package's models.
NAMES = [n for n in MODELS.names() if _origin(n).startswith("torchworks.")]
LISTED = {n: fam for fam, f in FAMILIES.items() for n in f.names}


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a shared 2-core machine more threads spin against other jobs (measured: 12 minutes
    of wall time for the sweep at torch's default against about one minute at one thread, load average 12)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tensors(out: Any) -> list[torch.Tensor]:
    """The tensors of a forward's output, in a fixed order (tuples, lists, dicts, dataclasses; None skipped)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if dataclasses.is_dataclass(out):
        out = [getattr(out, f.name) for f in dataclasses.fields(out)]
    elif isinstance(out, Mapping):
        out = [out[k] for k in sorted(out)]
    if isinstance(out, list | tuple):
        return [t for item in out for t in tensors(item)]
    return []


def test_every_family_entry_is_a_registered_model_listed_once():
    listed = [n for f in FAMILIES.values() for n in f.names]
    assert len(listed) == len(set(listed)), sorted(n for n in listed if listed.count(n) > 1)
    stale = sorted(set(listed) - set(NAMES))
    assert not stale, f"FAMILIES lists models nobody registers any more: {stale}; remove them"
    assert len(NAMES) >= 70  # the catalog reached every domain


@pytest.mark.parametrize("name", NAMES)
def test_model_builds_trains_and_round_trips(name, tmp_path: Path):
    if name not in LISTED:
        pytest.fail(f"model {name!r} (registered in {_origin(name)}) has no entry in FAMILIES of "
                    f"{Path(__file__).name}: add it to its family, or add a family with the constructor arguments "
                    "it needs and a tiny input for its forward")
    family = FAMILIES[LISTED[name]]
    torch.manual_seed(0)
    model = build_model(name, **family.kwargs.get(name, {}))
    args = family.inputs(name, model, torch.Generator().manual_seed(1))

    model.train()
    out = tensors(model(*args))
    assert out and all(torch.isfinite(t).all() for t in out if t.is_floating_point()), name
    loss = sum(t.float().square().mean() for t in out if t.requires_grad)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads), name
    assert any(g.abs().sum() > 0 for g in grads), f"{name}: every gradient is zero"

    model.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        before = tensors(model(*args))
    loaded = load_model(save_model(tmp_path / f"{name}.safetensors", model), expect=name).eval()
    assert type(loaded) is type(model)
    with torch.no_grad():
        after = tensors(loaded(*args))
    assert [t.shape for t in after] == [t.shape for t in before]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True)), f"{name}: outputs changed on reload"

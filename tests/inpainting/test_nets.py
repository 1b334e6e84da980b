"""Learned inpainting networks: reference parameter counts, registry sweep, save/load, and shape errors."""

from __future__ import annotations

import pytest
import torch

from torchworks.core.checkpoint import build_model, load_checkpoint, load_model, load_weights, save_model
from torchworks.core.errors import CheckpointError, ShapeError
from torchworks.core.registry import MODELS
from torchworks.inpainting.nets import (
    RELAMA_PAIRS,
    ChannelWiseFC,
    FFCResNetGenerator,
    count_parameters,
    format_overhead,
    relama_overhead,
)

torch.set_num_threads(1)


def test_lama_parameter_counts_equal_the_reference_exactly():
    # measured on advimman/lama's FFCResNetGenerator with ffc_resnet_075.yaml (9 blocks) and big-lama.yaml (18)
    assert count_parameters("lama_fourier") == 27_048_835
    assert count_parameters("big_lama") == 50_975_875


def test_discriminator_parameter_counts():
    # pix2pixhd_nlayer (ndf 64, n_layers 4), counted by hand: convs 4x4 with bias, BN weight+bias
    convs = [(3, 64), (64, 128), (128, 256), (256, 512), (512, 512), (512, 1)]
    expected = sum(i * o * 16 + o for i, o in convs) + 2 * (128 + 256 + 512 + 512)
    assert count_parameters("lama_discriminator") == expected == 6_962_369


def test_relama_overhead_table():
    rows = {r["relama"]: r for r in relama_overhead()}
    assert set(rows) == set(RELAMA_PAIRS)
    # lama_fourier: 9 blocks of 512 channels = 128 local + 384 global; MLPs C -> C/16 -> C without bias;
    # one 2 x 7 x 7 spatial conv per branch
    per_block = 2 * 128 * 8 + 2 * 384 * 24 + 2 * 98
    assert rows["relama_fourier"]["extra"] == 9 * per_block
    assert rows["relama_big"]["extra"] == 18 * per_block
    assert all(0 < r["extra_pct"] < 1.0 for r in rows.values())
    seed = {r["relama"]: r for r in relama_overhead("seed")}
    assert rows["relama_fourier"]["relama_params"] - seed["relama_fourier"]["relama_params"] == 9 * 98
    assert "| relama_small | lama_small |" in format_overhead(list(rows.values()))
    with pytest.raises(ValueError, match="unknown ReLaMa"):
        relama_overhead(names=["relama_huge"])


def test_lama_fourier_single_forward_at_64px():
    model = MODELS.build("lama_fourier").eval()
    with torch.inference_mode():
        out = model(torch.rand(1, 4, 64, 64))
    assert out.shape == (1, 3, 64, 64) and 0 <= out.min() and out.max() <= 1


GENERATORS = [("lama_tiny", {}, 64), ("lama_small", {}, 64), ("relama_tiny", {}, 64),
              ("relama_tiny", {"variant": "seed"}, 64), ("relama_small", {}, 64),
              ("context_encoder_64", {}, 64), ("context_encoder_128", {}, 128)]
DISCRIMINATORS = [("lama_discriminator_tiny", 64), ("lama_discriminator_small", 64), ("lama_discriminator", 64),
                  ("ce_discriminator_64", 64), ("ce_discriminator_128", 128)]


def test_sweep_covers_every_registered_small_model():
    swept = {n for n, _, _ in GENERATORS} | {n for n, _ in DISCRIMINATORS}
    ours = {n for n in MODELS.names() if n.startswith(("lama_", "relama_", "context_encoder", "ce_discriminator"))}
    big = {"lama_fourier", "relama_fourier", "relama_big"}
    assert ours - big == swept


def _assert_finite_grads(model: torch.nn.Module) -> None:
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize(("name", "kwargs", "size"), GENERATORS)
def test_generator_sweep(name, kwargs, size, tmp_path):
    torch.manual_seed(0)
    model = build_model(name, **kwargs).train()
    image, mask = torch.rand(1, 3, size, size), (torch.rand(1, 1, size, size) > 0.7).float()
    x = torch.cat([image * (1 - mask), mask], dim=1)
    out = model(x)
    assert out.shape == (1, 3, size, size)
    assert 0 <= out.min() and out.max() <= 1
    (out - image).abs().mean().backward()
    _assert_finite_grads(model)

    model.eval()
    with torch.no_grad():
        expected = model(x)
    path = save_model(tmp_path / f"{name}.safetensors", model)
    loaded = load_model(path, expect=name).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize(("name", "size"), DISCRIMINATORS)
def test_discriminator_sweep(name, size, tmp_path):
    model = build_model(name).train()
    x = torch.rand(2, 3, size, size, requires_grad=True)
    logits, feats = model(x)
    assert logits.shape[:2] == (2, 1) and len(feats) >= 3
    if name.startswith("ce_"):
        assert logits.shape == (2, 1, 1, 1)
    (logits.mean() + sum(f.mean() for f in feats)).backward()
    _assert_finite_grads(model)
    assert torch.isfinite(x.grad).all()  # R1 needs gradients w.r.t. the input

    model.eval()
    with torch.no_grad():
        expected = model(x)[0]
    loaded = load_model(save_model(tmp_path / "d.safetensors", model)).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], expected, rtol=0, atol=0)


def test_seed_and_paper_relama_checkpoints_do_not_mix(tmp_path):
    seed = build_model("relama_tiny", variant="seed")
    paper = build_model("relama_tiny")
    path = save_model(tmp_path / "seed.safetensors", seed)
    assert load_model(path).blocks[0].attention.variant == "seed"
    with pytest.raises(CheckpointError, match="does not fit"):
        load_weights(paper, load_checkpoint(path)["model"])


def test_generator_global_receptive_field_end_to_end():
    model = MODELS.build("lama_tiny").double().eval()
    x = torch.rand(1, 4, 32, 32, dtype=torch.float64)
    x2 = x.clone()
    x2[0, :3, 2, 2] += 0.5  # a corner pixel of the image
    with torch.no_grad():
        diff = (model(x) - model(x2)).abs().amax(dim=1)[0]
    assert (diff[-8:, -8:] > 0).all(), "the opposite corner did not react"


def test_shape_errors_and_bad_options():
    model = MODELS.build("lama_tiny")
    with pytest.raises(ShapeError, match="multiples of 4"):
        model(torch.rand(1, 4, 30, 32))
    with pytest.raises(ShapeError, match="masked RGB"):
        model(torch.rand(1, 3, 32, 32))
    with pytest.raises(ShapeError, match="64, 64"):
        MODELS.build("context_encoder_64")(torch.rand(1, 4, 128, 128))
    with pytest.raises(ValueError, match="out_act"):
        FFCResNetGenerator(out_act="relu")
    with pytest.raises(ValueError, match="power of two"):
        MODELS.build("context_encoder_64", image_size=96)
    flat = FFCResNetGenerator(ngf=8, n_downsampling=0, n_blocks=1).eval()  # the stem feeds the res-block
    assert flat(torch.rand(1, 4, 15, 13)).shape == (1, 3, 15, 13)
    tanh = MODELS.build("lama_tiny", out_act="tanh").eval()
    assert tanh(torch.rand(1, 4, 32, 32)).min() < 0  # tanh head reaches below 0


def test_generator_under_bf16_autocast_and_channels_last():
    model = MODELS.build("relama_tiny").eval()
    x = torch.rand(1, 4, 32, 32)
    with torch.no_grad():
        expected = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)  # the FFT runs in float32 inside; convs in bfloat16
        fast = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
        half = model.to(torch.bfloat16)(x.bfloat16())  # a bfloat16 model: the FFT still runs in float32
    assert low.dtype == torch.bfloat16 and (low.float() - expected).abs().max() < 0.05
    assert half.dtype == torch.bfloat16 and (half.float() - expected).abs().max() < 0.05
    torch.testing.assert_close(fast, expected)


def test_channel_wise_fc_does_not_mix_channels():
    layer = ChannelWiseFC(3, 16)
    x = torch.randn(2, 3, 4, 4)
    x2 = x.clone()
    x2[:, 1] += 1.0
    changed = (layer(x) != layer(x2)).flatten(2).any(-1)
    assert changed[:, 1].all() and not changed[:, [0, 2]].any()
    assert sum(p.numel() for p in layer.parameters()) == 3 * 16 * 16 + 3 * 16

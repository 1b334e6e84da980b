"""ViT: patch tokens, shapes, attention maps and rollout, registry variants, HF ViTModel parity (5.x and 4.x keys)."""

from __future__ import annotations

import pytest
import torch

from torchworks.core.checkpoint import build_model, load_model, save_model
from torchworks.core.errors import CheckpointError, ShapeError
from torchworks.core.registry import MODELS
from torchworks.transformer.vit.model import ViT, ViTConfig, attention_rollout, hf_vit_state_dict_to_ours, vit_from_hf

TINY = dict(image_size=8, patch_size=4, in_chans=3, num_classes=5, dim=16, depth=2, num_heads=2, mlp_dim=32)


def test_shapes_and_attention_maps():
    model = ViT(TINY).eval()
    x = torch.rand(3, 3, 8, 8)
    logits, maps = model(x, need_weights=True)
    assert logits.shape == (3, 5) and len(maps) == 2 and maps[0].shape == (3, 2, 5, 5)  # 4 patches + [CLS]
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(3, 2, 5))
    torch.testing.assert_close(model(x), logits, atol=1e-6, rtol=0)
    tokens, none = model.forward_features(x)
    assert tokens.shape == (3, 5, 16) and none is None


def test_patch_embedding_is_a_per_patch_linear_map():
    """Token i depends only on patch i (row-major): changing one patch changes exactly one patch token."""
    model = ViT(TINY).eval()
    x = torch.rand(1, 3, 8, 8)
    y = x.clone()
    y[:, :, 4:, 0:4] += 1.0  # bottom-left patch = index 2 in row-major order
    a, b = model.tokens(x), model.tokens(y)
    changed = (a - b).abs().amax(-1)[0] > 1e-6
    assert changed.tolist() == [False, False, False, True, False]


def test_conv_stem_tokens_see_overlapping_pixels():
    """Xiao et al.'s stem keeps the 2 x 2 token grid, but its 3x3 stride-2 layers overlap: pixel (3, 3), the
    corner of the top-left patch, reaches all four tokens (layer 1 outputs 1 and 2 see input rows 1-3 and 3-5;
    layer 2 outputs 0 and 1 see layer-1 rows -1..1 and 1..3), where the patch stem changes only token 0."""
    x = torch.rand(1, 3, 8, 8)
    y = x.clone()
    y[:, :, 3, 3] += 1.0
    for stem, expected in (("patch", [False, True, False, False, False]), ("conv", [False] + [True] * 4)):
        model = ViT({**TINY, "stem": stem}).eval()  # eval: BatchNorm uses running statistics, no batch coupling
        changed = (model.tokens(x) - model.tokens(y)).abs().amax(-1)[0] > 1e-6
        assert changed.tolist() == expected, stem
    conv = ViT({**TINY, "stem": "conv", "stem_channels": 8})
    assert [m.out_channels for m in conv.patch_embed if isinstance(m, torch.nn.Conv2d)] == [8, 16, 16]
    logits = conv(torch.rand(2, 3, 8, 8))
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in conv.parameters())


def test_rollout():
    model = ViT(TINY).eval()
    _, maps = model(torch.rand(2, 3, 8, 8), need_weights=True)
    r = attention_rollout(maps)
    assert r.shape == (2, 2, 2) and (r >= 0).all() and (r.sum((1, 2)) <= 1 + 1e-6).all()
    # With uniform attention everywhere each patch gets the same share.
    uniform = [torch.full((1, 2, 5, 5), 0.2)] * 3
    u = attention_rollout(uniform)
    torch.testing.assert_close(u, torch.full_like(u, u[0, 0, 0].item()))
    with pytest.raises(ValueError):
        attention_rollout([])


def test_mean_pool_and_headless():
    model = ViT({**TINY, "pool": "mean", "num_classes": 0})
    assert model(torch.rand(2, 3, 8, 8)).shape == (2, 16)


def test_bad_inputs():
    model = ViT(TINY)
    with pytest.raises(ShapeError, match=r"\(B, 3, 8, 8\)"):
        model(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="does not divide"):
        ViTConfig(image_size=30, patch_size=4)
    with pytest.raises(ValueError, match="stem must be 'patch' or 'conv'"):
        ViTConfig(stem="resnet")
    with pytest.raises(ValueError, match="power-of-two patch_size"):
        ViTConfig(image_size=28, patch_size=7, stem="conv")
    with pytest.raises(ValueError, match="unknown ViTConfig keys"):
        ViTConfig.from_dict({"width": 3})
    with pytest.raises(CheckpointError, match="cls_token"):
        hf_vit_state_dict_to_ours({}, 1)


@pytest.mark.parametrize("name,shape", [("vit_tiny_patch4_28", (2, 1, 28, 28)), ("vit_tiny_patch4_32", (2, 3, 32, 32)),
                                        ("vit_small_patch4_32", (2, 3, 32, 32)),
                                        ("vit_mini_convstem_32", (2, 3, 32, 32))])
def test_registry_variants(name, shape, tmp_path):
    model = build_model(name, depth=1)
    x = torch.rand(shape)
    logits = model(x)
    assert logits.shape == (2, 10)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    again = load_model(save_model(tmp_path / "v.safetensors", model)).eval()
    torch.testing.assert_close(again(x), model(x))


def test_variant_sizes():
    sizes = {n: sum(p.numel() for p in MODELS.build(n).parameters()) for n in MODELS.names("vit_*")}
    assert 150_000 < sizes["vit_tiny_patch4_28"] < 250_000  # the s-chh Fashion-MNIST size (210k)
    assert sizes["vit_tiny_patch4_32"] < sizes["vit_small_patch4_32"] < 3_000_000


def _random_hf(transformers, head: bool):
    cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                                 image_size=16, patch_size=4, num_channels=3, num_labels=7,
                                 hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    hf = (transformers.ViTForImageClassification(cfg) if head else transformers.ViTModel(cfg)).eval()
    with torch.no_grad():  # HF init leaves norms at 1/0 and biases at 0: perturb so each mapping matters
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return hf


def test_matches_hf_vit_model_and_classifier():
    transformers = pytest.importorskip("transformers")
    x = torch.randn(2, 3, 16, 16)
    hf = _random_hf(transformers, head=False)
    ours = vit_from_hf(hf)
    with torch.no_grad():
        ref, out = hf(x).last_hidden_state, ours.forward_features(x)[0]
    assert ref.abs().max() > 0.5 and (out - ref).abs().max().item() < 1e-5
    hf = _random_hf(transformers, head=True)
    ours = vit_from_hf(hf)
    with torch.no_grad():
        ref, out = hf(x).logits, ours(x)
    assert out.shape == (2, 7) and (out - ref).abs().max().item() < 1e-5
    hf.set_attn_implementation("eager")  # HF's sdpa path returns no attention weights
    with torch.no_grad():  # attention maps agree with HF's too (ours come from the reference attention path)
        ref = hf(x, output_attentions=True)
        our_logits, our_maps = ours(x, need_weights=True)
    assert len(ref.attentions) == 2 and (our_logits - ref.logits).abs().max().item() < 1e-5
    assert max((a - b).abs().max().item() for a, b in zip(our_maps, ref.attentions, strict=True)) < 1e-6


def test_transformers_4x_key_names_load_too():
    """transformers 4.x named the same tensors ``vit.encoder.layer.i.attention.attention.query`` etc."""
    transformers = pytest.importorskip("transformers")
    hf = _random_hf(transformers, head=True)
    state = hf.state_dict()
    if not any(".layers." in k for k in state):
        pytest.skip("installed transformers already uses 4.x ViT names (covered by the parity test)")
    rename = {"attention.q_proj": "attention.attention.query", "attention.k_proj": "attention.attention.key",
              "attention.v_proj": "attention.attention.value", "attention.o_proj": "attention.output.dense",
              "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}
    old = {}
    for key, value in state.items():
        key = key.replace("vit.layers.", "vit.encoder.layer.")
        for new, legacy in rename.items():
            key = key.replace(f".{new}.", f".{legacy}.")
        old[key] = value
    assert hf_vit_state_dict_to_ours(old, 2).keys() == hf_vit_state_dict_to_ours(state, 2).keys()
    for key, value in hf_vit_state_dict_to_ours(old, 2).items():
        torch.testing.assert_close(value, hf_vit_state_dict_to_ours(state, 2)[key], atol=0, rtol=0)

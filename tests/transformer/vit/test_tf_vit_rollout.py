"""Attention rollout (Abnar and Zuidema 2020): row sums, the one-layer formula, layer order, the [CLS] map."""

from __future__ import annotations

import pytest
import torch

from torchworks.transformer.vit.model import ViT, attention_rollout, attention_rollout_matrix

TINY = dict(image_size=8, patch_size=4, in_chans=3, num_classes=5, dim=16, depth=3, num_heads=2, mlp_dim=32)


def _routing(rows: dict[int, int], t: int = 5) -> torch.Tensor:
    """(1, 1, T, T) attention where every token attends to itself except ``rows[i]``: token i attends to j."""
    a = torch.eye(t, dtype=torch.float64)
    for i, j in rows.items():
        a[i] = 0.0
        a[i, j] = 1.0
    return a[None, None]


def test_rows_sum_to_one_for_a_trained_shape_model():
    model = ViT(TINY).eval()
    _, maps = model(torch.rand(4, 3, 8, 8), need_weights=True)
    r = attention_rollout_matrix(maps)
    assert r.shape == (4, 5, 5) and bool((r >= 0).all())
    torch.testing.assert_close(r.sum(-1), torch.ones(4, 5))


def test_one_layer_is_half_attention_plus_half_identity():
    # Two heads: a cyclic permutation and uniform attention; the head mean is then
    # [[1/6, 2/3, 1/6], [1/6, 1/6, 2/3], [2/3, 1/6, 1/6]] and 0.5 * mean + 0.5 * I is written out below.
    perm = torch.tensor([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=torch.float64)
    uniform = torch.full((3, 3), 1 / 3, dtype=torch.float64)
    maps = [torch.stack([perm, uniform])[None]]  # (1, 2, 3, 3)
    expected = torch.tensor([[7 / 12, 4 / 12, 1 / 12], [1 / 12, 7 / 12, 4 / 12], [4 / 12, 1 / 12, 7 / 12]],
                            dtype=torch.float64)
    torch.testing.assert_close(attention_rollout_matrix(maps)[0], expected)
    # Rows that do not sum to 1 (e.g. after attention dropout) are renormalised.
    torch.testing.assert_close(attention_rollout_matrix([2 * maps[0]])[0],
                               (perm + uniform + torch.eye(3, dtype=torch.float64)) / 3)


def test_layers_multiply_in_order():
    """Layer 1 sends patch token 1's content to token 2's; layer 2 sends [CLS] to token 1.

    [CLS] then holds 1/2 of itself, 1/4 of token 1 and, through token 1, 1/4 of token 2. Multiplying the layers
    the wrong way round would give token 2 nothing.
    """
    layer1, layer2 = _routing({1: 2}), _routing({0: 1})
    cls_map = attention_rollout([layer1, layer2])
    torch.testing.assert_close(cls_map, torch.tensor([[[0.25, 0.25], [0.0, 0.0]]], dtype=torch.float64))
    swapped = attention_rollout([layer2, layer1])
    torch.testing.assert_close(swapped, torch.tensor([[[0.5, 0.0], [0.0, 0.0]]], dtype=torch.float64))


def test_repeated_focus_approaches_one_and_residual_extremes():
    # [CLS] attends only to patch 3 in each of L layers (the patches to themselves): share 1 - 0.5^L.
    for layers in (1, 2, 5):
        share = attention_rollout([_routing({0: 3})] * layers)[0].flatten()
        torch.testing.assert_close(share, torch.tensor([0, 0, 1 - 0.5**layers, 0], dtype=torch.float64))
    maps = [torch.softmax(torch.randn(2, 3, 5, 5), -1) for _ in range(2)]
    torch.testing.assert_close(attention_rollout_matrix(maps, residual=1.0), torch.eye(5).expand(2, 5, 5))
    plain = maps[1].mean(1) @ maps[0].mean(1)  # residual 0: the product of the head-averaged maps
    torch.testing.assert_close(attention_rollout_matrix(maps, residual=0.0), plain)


def test_errors():
    with pytest.raises(ValueError, match="at least one"):
        attention_rollout_matrix([])
    with pytest.raises(ValueError, match="residual"):
        attention_rollout_matrix([_routing({})], residual=1.5)
    with pytest.raises(ValueError, match="square"):
        attention_rollout([torch.eye(4)[None, None]])


def test_rollout_maps_and_png(tmp_path):
    from torchworks.transformer.vit.plots import rollout_maps, save_rollout_grid

    model = ViT(TINY)
    x = torch.rand(3, 3, 8, 8)
    logits, maps = rollout_maps(model, x)
    assert logits.shape == (3, 5) and maps.shape == (3, 8, 8)
    assert maps.amin() == 0 and maps.amax(dim=(1, 2)).eq(1).all()
    # Nearest upsampling: each 4x4 patch is one constant square.
    assert torch.equal(maps[:, :4, :4], maps[:, :1, :1].expand(3, 4, 4))
    pytest.importorskip("matplotlib")
    png = save_rollout_grid(tmp_path / "r.png", [("tiny", x, maps, ["a", "b", "c"])])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

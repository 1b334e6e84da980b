"""Vision Transformer (ViT): image patches as tokens, a [CLS] token, learned positions, pre-LN encoder, linear head.

An image (B, C, H, W) is cut into non-overlapping P x P patches by a convolution with kernel = stride = P, giving
N = (H / P) * (W / P) tokens of width D. A learned [CLS] vector is prepended, learned position embeddings
(1, N + 1, D) are added, ``depth`` pre-LN :class:`~torchworks.nn.blocks.EncoderBlock` s (exact GELU) follow,
then a final LayerNorm; the head classifies the [CLS] vector (or the mean of the patch tokens).

On 28-32 px images patch 4 (not the paper's 16) and a small width are what make ViT train from scratch: they give
49-64 tokens per image. Without convolutions' locality prior ViT needs more data or augmentation than a CNN of
the same size (Dosovitskiy et al., section 4.2); the registered variants are sized for CPU runs.

References:
    Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale", ICLR 2021.
    Abnar and Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020 (attention rollout).
    HF ``transformers/models/vit/modeling_vit.py`` (weights load with :func:`vit_from_hf`; 4.x and 5.x names).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from torchworks.core.checkpoint import load_weights
from torchworks.core.errors import CheckpointError, ShapeError
from torchworks.core.registry import MODELS
from torchworks.nn.blocks import EncoderBlock

__all__ = ["ViT", "ViTConfig", "attention_rollout", "attention_rollout_matrix", "hf_vit_state_dict_to_ours",
           "vit_from_hf"]


@dataclass
class ViTConfig:
    """Hyper-parameters of :class:`ViT` (plain data, saved with checkpoints).

    Attributes:
        image_size: Input height = width in pixels (positions are learned for this size only).
        patch_size: Patch side P (divides image_size).
        in_chans: Input channels (1 for Fashion-MNIST, 3 for CIFAR).
        num_classes: Classes K; 0 gives no head (``forward`` returns the pooled features).
        dim: Token width D.
        depth: Number of encoder blocks.
        num_heads: Attention heads (divides D).
        mlp_dim: FFN inner width; default 4 * D.
        dropout: Embedding, residual and FFN dropout.
        attn_dropout: Dropout on attention weights.
        norm_eps: LayerNorm epsilon (timm 1e-6, HF 1e-12).
        pool: ``"cls"`` (paper) or ``"mean"`` (average of the patch tokens).
        stem: ``"patch"`` (paper: one P x P convolution of stride P, i.e. a linear map of each patch) or ``"conv"``
            (Xiao et al. 2021, "Early Convolutions Help Transformers See Better": log2(P) 3x3 convolutions of
            stride 2 with BatchNorm + ReLU, channels ``stem_channels`` doubling, then a 1x1 convolution to D;
            same token grid, overlapping receptive fields).
        stem_channels: Width of the first conv-stem layer (``stem="conv"`` only).
    """

    image_size: int = 32
    patch_size: int = 4
    in_chans: int = 3
    num_classes: int = 10
    dim: int = 128
    depth: int = 6
    num_heads: int = 4
    mlp_dim: int | None = None
    dropout: float = 0.0
    attn_dropout: float = 0.0
    norm_eps: float = 1e-6
    pool: str = "cls"
    stem: str = "patch"
    stem_channels: int = 32

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"patch_size {self.patch_size} does not divide image_size {self.image_size}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {self.pool!r}")
        if self.stem not in ("patch", "conv"):
            raise ValueError(f"stem must be 'patch' or 'conv', got {self.stem!r}")
        if self.stem == "conv" and (self.patch_size < 2 or self.patch_size & (self.patch_size - 1)):
            raise ValueError(f"stem='conv' needs a power-of-two patch_size >= 2 (stride-2 layers); got "
                             f"{self.patch_size}")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @classmethod
    def from_dict(cls, values: Mapping) -> ViTConfig:
        """Build from a mapping; unknown keys raise ``ValueError`` naming them."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown ViTConfig keys {unknown}; known: {sorted(f.name for f in fields(cls))}")
        return cls(**values)


def _conv_stem(cfg: ViTConfig) -> nn.Sequential:
    """log2(P) stride-2 3x3 conv-BN-ReLU layers (channels doubling from ``stem_channels``), then a 1x1 conv to D;
    the convolutions keep PyTorch's default (Kaiming-uniform) initialisation."""
    layers: list[nn.Module] = []
    c_in, c = cfg.in_chans, cfg.stem_channels
    for _ in range(cfg.patch_size.bit_length() - 1):
        layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        c_in, c = c, 2 * c
    layers.append(nn.Conv2d(c_in, cfg.dim, 1))
    return nn.Sequential(*layers)


class ViT(nn.Module):
    """Vision Transformer classifier.

    Args:
        config: A :class:`ViTConfig` or a dict of its fields.

    Example:
        >>> model = ViT(ViTConfig(image_size=28, in_chans=1))
        >>> logits = model(images)  # images (B, 1, 28, 28) float in [0, 1] (normalised) -> (B, 10)
    """

    def __init__(self, config: ViTConfig | Mapping) -> None:
        super().__init__()
        cfg = config if isinstance(config, ViTConfig) else ViTConfig.from_dict(config)
        self.config = cfg
        d = cfg.dim
        self.patch_embed = (nn.Conv2d(cfg.in_chans, d, kernel_size=cfg.patch_size, stride=cfg.patch_size)
                            if cfg.stem == "patch" else _conv_stem(cfg))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches + 1, d))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(d, cfg.num_heads, cfg.mlp_dim, dropout=cfg.dropout, attn_dropout=cfg.attn_dropout,
                         activation="gelu", norm_first=True, norm_eps=cfg.norm_eps)
            for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.head = nn.Linear(d, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """timm's ViT init: truncated N(0, 0.02^2) for positions, [CLS] and linear weights; zero biases."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.config.stem == "patch":
            w = self.patch_embed.weight
            nn.init.trunc_normal_(w.view(w.shape[0], -1), std=0.02)  # like a linear map of flattened patches
            nn.init.zeros_(self.patch_embed.bias)

    def tokens(self, images: Tensor) -> Tensor:
        """[CLS] + patch tokens with positions, (B, N + 1, D), of images (B, C, H, W)."""
        cfg = self.config
        if images.dim() != 4 or tuple(images.shape[1:]) != (cfg.in_chans, cfg.image_size, cfg.image_size):
            raise ShapeError(f"images must be (B, {cfg.in_chans}, {cfg.image_size}, {cfg.image_size}); "
                             f"got {tuple(images.shape)}")
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, N, D), row-major patches
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.drop(x + self.pos_embed)

    def forward_features(self, images: Tensor, need_weights: bool = False) -> tuple[Tensor, list[Tensor] | None]:
        """Final normalised tokens (B, N + 1, D), [CLS] first, and if asked each block's attention (B, H, N+1, N+1)."""
        x, maps = self.tokens(images), []
        for block in self.blocks:
            if need_weights:
                x, w = block(x, need_weights=True)
                maps.append(w)
            else:
                x = block(x)
        return self.norm(x), (maps if need_weights else None)

    def forward(self, images: Tensor, need_weights: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Class logits (B, K) (pooled features (B, D) when num_classes=0), plus attention maps if asked."""
        x, maps = self.forward_features(images, need_weights)
        pooled = x[:, 0] if self.config.pool == "cls" else x[:, 1:].mean(dim=1)
        logits = self.head(pooled)
        return (logits, maps) if need_weights else logits

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())


def attention_rollout_matrix(maps: list[Tensor], residual: float = 0.5) -> Tensor:
    """Attention rollout over all tokens: row i says how much of token i's final state flows from each input token.

    For each layer the heads are averaged, the identity is mixed in for the residual path and the rows are
    renormalised, ``A' = norm(residual * I + (1 - residual) * mean_h A)``; the layers are then multiplied from
    the first upwards, ``R = A'_L ... A'_2 A'_1``. Each row of R is a distribution over the input tokens.

    Args:
        maps: Per-layer attention weights (B, H, T, T) (rows sum to 1), first layer first.
        residual: Weight of the skip connection, in [0, 1] (0.5 in Abnar and Zuidema).

    Returns:
        (B, T, T) rollout, rows summing to 1.

    References:
        Abnar and Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020, section 3.
    """
    if not maps:
        raise ValueError("attention rollout needs at least one attention map")
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual must be in [0, 1], got {residual}")
    eye = torch.eye(maps[0].shape[-1], dtype=maps[0].dtype, device=maps[0].device)
    rollout = eye.expand(maps[0].shape[0], -1, -1)
    for a in maps:
        a = residual * eye + (1.0 - residual) * a.mean(dim=1)  # (B, T, T)
        rollout = (a / a.sum(dim=-1, keepdim=True)) @ rollout
    return rollout


def attention_rollout(maps: list[Tensor], residual: float = 0.5) -> Tensor:
    """Attention rollout of the [CLS] token: how much each patch flows into it through all layers.

    Args:
        maps: Per-layer attention weights (B, H, N + 1, N + 1), first layer first ([CLS] at index 0).
        residual: Weight of the skip connection (0.5 in Abnar and Zuidema).

    Returns:
        Relevance of each patch for [CLS], (B, h, w) with h = w = sqrt(N) in row-major patch order; each map
        sums to 1 minus the share [CLS] keeps from its own input embedding.
    """
    cls_to_patches = attention_rollout_matrix(maps, residual)[:, 0, 1:]  # (B, N)
    side = int(round(cls_to_patches.shape[-1] ** 0.5))
    if side * side != cls_to_patches.shape[-1]:
        raise ValueError(f"{cls_to_patches.shape[-1]} patch tokens do not form a square grid")
    return cls_to_patches.reshape(-1, side, side)


# HF layer key -> ours, for transformers 5.x (``layers.i``) and 4.x (``encoder.layer.i``) names.
_LAYER_5 = {"attention.o_proj": "self_attn.out_proj", "layernorm_before": "self_attn_norm", "mlp.fc1": "ff.fc1",
            "mlp.fc2": "ff.fc2", "layernorm_after": "ff_norm"}
_QKV_5 = ("attention.q_proj", "attention.k_proj", "attention.v_proj")
_LAYER_4 = {"attention.output.dense": "self_attn.out_proj", "layernorm_before": "self_attn_norm",
            "intermediate.dense": "ff.fc1", "output.dense": "ff.fc2", "layernorm_after": "ff_norm"}
_QKV_4 = ("attention.attention.query", "attention.attention.key", "attention.attention.value")


def hf_vit_state_dict_to_ours(hf_state: Mapping[str, Tensor], depth: int) -> dict[str, Tensor]:
    """Rename an HF ``ViTModel`` / ``ViTForImageClassification`` state dict (4.x or 5.x names) to :class:`ViT` keys.

    The q/k/v projections are fused into our (3D, D) ``in_proj``; an HF pooler (unused by classification) is
    dropped; ``classifier`` becomes ``head``.

    Raises:
        CheckpointError: A tensor the mapping needs is missing.
    """
    state = {k.removeprefix("vit."): v for k, v in hf_state.items()}
    new_names = any(k.startswith("layers.") for k in state)
    prefix, layer_map, qkv_names = ("layers.", _LAYER_5, _QKV_5) if new_names else ("encoder.layer.", _LAYER_4,
                                                                                      _QKV_4)

    def take(key: str) -> Tensor:
        if key not in state:
            raise CheckpointError(f"ViT state dict has no {key!r}; is it an HF ViT with {depth} layers?")
        return state[key]

    ours = {"cls_token": take("embeddings.cls_token"), "pos_embed": take("embeddings.position_embeddings"),
            "norm.weight": take("layernorm.weight"), "norm.bias": take("layernorm.bias")}
    for p in ("weight", "bias"):
        ours[f"patch_embed.{p}"] = take(f"embeddings.patch_embeddings.projection.{p}")
        if "classifier.weight" in state:
            ours[f"head.{p}"] = take(f"classifier.{p}")
        for i in range(depth):
            pre = f"{prefix}{i}."
            ours[f"blocks.{i}.self_attn.in_proj.{p}"] = torch.cat([take(f"{pre}{n}.{p}") for n in qkv_names])
            for theirs, mine in layer_map.items():
                ours[f"blocks.{i}.{mine}.{p}"] = take(f"{pre}{theirs}.{p}")
    return ours


def vit_from_hf(hf_model) -> ViT:
    """Our :class:`ViT` (eval mode) with the weights of an HF ``ViTModel`` or ``ViTForImageClassification``."""
    c = hf_model.config
    if c.hidden_act != "gelu" or not getattr(c, "qkv_bias", True):
        raise ValueError(f"unsupported HF ViT options hidden_act={c.hidden_act!r}, qkv_bias={c.qkv_bias}")
    state = hf_model.state_dict()
    has_head = any(k.startswith("classifier.") for k in state)
    size = c.image_size if isinstance(c.image_size, int) else c.image_size[0]
    cfg = ViTConfig(image_size=size, patch_size=c.patch_size if isinstance(c.patch_size, int) else c.patch_size[0],
                    in_chans=c.num_channels, num_classes=c.num_labels if has_head else 0, dim=c.hidden_size,
                    depth=c.num_hidden_layers, num_heads=c.num_attention_heads, mlp_dim=c.intermediate_size,
                    norm_eps=c.layer_norm_eps)
    weights = hf_vit_state_dict_to_ours(state, cfg.depth)
    model = ViT(cfg).to(dtype=weights["pos_embed"].dtype)
    with torch.no_grad():
        load_weights(model, weights, source=f"HF {type(hf_model).__name__}")
    return model.eval()


_VARIANTS = {
    # Fashion-MNIST / MNIST: 49 patches of 4x4, ~0.21M params (the s-chh recipe's size).
    "vit_tiny_patch4_28": dict(image_size=28, patch_size=4, in_chans=1, dim=64, depth=6, num_heads=4, mlp_dim=128),
    # Fashion-MNIST on a CPU budget: 16 patches of 7x7, 6 blocks of width 128, ~0.81M params; a step costs ~0.8x
    # vit_tiny_patch4_28's CPU time (16 tokens instead of 49) for 4x the capacity.
    "vit_small_patch7_28": dict(image_size=28, patch_size=7, in_chans=1, dim=128, depth=6, num_heads=4, mlp_dim=256),
    # Fashion-MNIST, wider: 16 patches of 7x7, 6 blocks of width 192 (6 heads of 32), ~1.8M params; a step costs
    # ~2.2x vit_small_patch7_28's.
    "vit_wide_patch7_28": dict(image_size=28, patch_size=7, in_chans=1, dim=192, depth=6, num_heads=6, mlp_dim=384),
    # Fashion-MNIST, the conv-stem model below with the paper's patchify layer instead (an ablation of the stem):
    # 49 patches of 4x4, 6 blocks of width 96, ~0.46M params.
    "vit_small_patch4_28": dict(image_size=28, patch_size=4, in_chans=1, dim=96, depth=6, num_heads=4, mlp_dim=192),
    # Fashion-MNIST with a convolutional stem (Xiao et al. 2021): 7 x 7 = 49 tokens, 6 blocks of width 96, ~0.48M
    # params; a step costs ~2.2x vit_small_patch7_28's (49 tokens instead of 16).
    "vit_small_convstem_28": dict(image_size=28, patch_size=4, in_chans=1, dim=96, depth=6, num_heads=4,
                                  mlp_dim=192, stem="conv", stem_channels=32),
    # CIFAR-10: 64 patches of 4x4, ~0.8M params.
    "vit_tiny_patch4_32": dict(image_size=32, patch_size=4, in_chans=3, dim=128, depth=6, num_heads=4, mlp_dim=256),
    # CIFAR-10 on a CPU budget (30 CPU-minutes): 64 patches, 4 blocks of width 128, ~0.55M params.
    "vit_mini_patch4_32": dict(image_size=32, patch_size=4, in_chans=3, dim=128, depth=4, num_heads=4, mlp_dim=256),
    # CIFAR-10 on the same budget with a convolutional stem (Xiao et al. 2021) in place of the patchify layer: the
    # same 4 blocks and 8x8 token grid, ~0.57M params.
    "vit_mini_convstem_32": dict(image_size=32, patch_size=4, in_chans=3, dim=128, depth=4, num_heads=4,
                                 mlp_dim=256, stem="conv", stem_channels=32),
    # CIFAR-10, wider: ~2.7M params.
    "vit_small_patch4_32": dict(image_size=32, patch_size=4, in_chans=3, dim=192, depth=6, num_heads=3,
                                mlp_dim=768),
}


def _register(name: str, base: dict) -> None:
    def factory(**overrides) -> ViT:
        return ViT(ViTConfig.from_dict({**base, **overrides}))

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"ViT variant {name!r}: {base}; keyword arguments override any ViTConfig field."
    MODELS.add(name, factory, family="vit", config=ViTConfig)


for _name, _base in _VARIANTS.items():
    _register(_name, _base)

"""Scale by counting: the published GPT-2 and GPT-3 sizes built on the meta device, parameters by component.

A model built under ``torch.device("meta")`` has every tensor's shape and no storage, so GPT-3 175B (700 GB in
float32) is counted in a fraction of a second. The four GPT-2 sizes are those of OpenAI's released checkpoints
(HF ``gpt2``, ``gpt2-medium``, ``gpt2-large``, ``gpt2-xl``); GPT-3 175B is the largest model of Brown et al. 2020,
Table 2.1 (96 layers, d_model 12288, 96 heads of 128, context 2048, GPT-2's vocabulary of 50257). GPT-3 alternates
dense and locally banded sparse attention; the pattern changes which positions attend, not the parameters, so the
dense model here has GPT-3's count. Every preset is pre-LN with learned positions, biases and a head tied to
the token embedding, so the head adds no parameters of its own.

References:
    Radford et al., "Language Models are Unsupervised Multitask Learners", 2019 (GPT-2; the sizes 117M/345M/762M/
    1542M printed there were recounted by OpenAI as 124M/355M/774M/1558M for the released weights).
    Brown et al., "Language Models are Few-Shot Learners", NeurIPS 2020, Table 2.1 (GPT-3 175B).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from torchworks.nn.positional import LearnedPositionalEmbedding
from torchworks.transformer.gpt.model import GPT, GPTConfig

__all__ = ["PRESETS", "ParamCount", "Preset", "build_on_meta", "count_params", "preset_config"]


@dataclass(frozen=True)
class Preset:
    """A published model size: its architecture and the parameter count its authors give."""

    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    published: str
    source: str
    vocab_size: int = 50257


PRESETS: dict[str, Preset] = {
    "gpt2": Preset(12, 12, 768, 1024, "124M", "OpenAI's gpt-2 release, HF gpt2"),
    "gpt2-medium": Preset(24, 16, 1024, 1024, "355M", "OpenAI's gpt-2 release, HF gpt2-medium"),
    "gpt2-large": Preset(36, 20, 1280, 1024, "774M", "OpenAI's gpt-2 release, HF gpt2-large"),
    "gpt2-xl": Preset(48, 25, 1600, 1024, "1558M", "OpenAI's gpt-2 release, HF gpt2-xl"),
    "gpt3-175b": Preset(96, 96, 12288, 2048, "175.0B", "Brown et al. 2020, Table 2.1"),
}


def preset_config(name: str) -> GPTConfig:
    """The :class:`GPTConfig` of preset ``name`` (GPT-2 layout: biases, learned positions, tanh GELU, tied head).

    Raises:
        ValueError: Unknown preset (the message lists the known ones).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    p = PRESETS[name]
    return GPTConfig(vocab_size=p.vocab_size, block_size=p.block_size, n_layer=p.n_layer, n_head=p.n_head,
                     n_embd=p.n_embd, bias=True, pos="learned", activation="gelu_tanh", norm_first=True,
                     tie_weights=True)


@dataclass
class ParamCount:
    """Parameters of a GPT by component; shared tensors (the tied head) are counted once, under embeddings."""

    token_embedding: int
    position_embedding: int
    attention: int
    mlp: int
    layer_norm: int
    head: int

    @property
    def total(self) -> int:
        return (self.token_embedding + self.position_embedding + self.attention + self.mlp + self.layer_norm
                + self.head)

    def rows(self) -> list[tuple[str, int]]:
        """``(component, count)`` in model order, then the total."""
        return [("token embedding", self.token_embedding), ("position embedding", self.position_embedding),
                ("attention (q, k, v, output)", self.attention), ("MLP", self.mlp), ("layer norms", self.layer_norm),
                ("output head (untied part)", self.head), ("total", self.total)]


def count_params(model: GPT) -> ParamCount:
    """Count ``model``'s parameters by component (works on the meta device)."""
    seen: set[int] = set()

    def size(params) -> int:
        fresh = [p for p in params if id(p) not in seen]
        seen.update(id(p) for p in fresh)
        return sum(p.numel() for p in fresh)

    token = size([model.tok_emb.weight])
    position = size(model.pos_emb.parameters()) if isinstance(model.pos_emb, LearnedPositionalEmbedding) else 0
    attention = size(p for b in model.blocks for p in b.self_attn.parameters())
    mlp = size(p for b in model.blocks for p in b.ff.parameters())
    norms = size(p for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters())
    head = size(model.lm_head.parameters())
    assert size(model.parameters()) == 0, "a parameter belongs to no component"
    return ParamCount(token, position, attention, mlp, norms, head)


def build_on_meta(config: GPTConfig) -> GPT:
    """``GPT(config)`` with shapes only: no memory is allocated for its weights."""
    with torch.device("meta"):
        return GPT(config)

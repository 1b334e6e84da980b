"""Load Hugging Face GPT-2 weights (``GPT2LMHeadModel`` or its state dict) into our :class:`GPT`.

GPT-2 is our pre-LN GPT with learned positions, biases everywhere, tanh-approximated GELU (HF ``gelu_new``) and
a head tied to the token embedding. Two layout differences matter:

* HF stores the four projections as ``Conv1D`` with weight (in, out); ``nn.Linear`` wants (out, in), so
  ``c_attn``, ``c_proj`` (attention and MLP) and ``c_fc`` are transposed.
* ``c_attn`` is the fused (C, 3C) query/key/value map with q, k, v along its output axis, the same order as our
  ``in_proj`` rows, so one transpose is enough.

``transformers`` is optional: it is imported inside :func:`gpt_from_hf_pretrained` only.

References:
    Radford et al., "Language Models are Unsupervised Multitask Learners" (GPT-2), 2019.
    HF ``transformers/models/gpt2/modeling_gpt2.py`` and nanoGPT ``GPT.from_pretrained`` (same transposes).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from torchworks.core.checkpoint import load_weights
from torchworks.core.errors import CheckpointError
from torchworks.transformer.gpt.model import GPT, GPTConfig

__all__ = ["gpt_config_from_hf", "gpt_from_hf", "gpt_from_hf_pretrained", "hf_gpt2_state_dict_to_ours"]

# HF activation names whose function our FeedForward reproduces.
_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}
_TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
_LAYER_KEYS = {
    "ln_1": "self_attn_norm", "attn.c_attn": "self_attn.in_proj", "attn.c_proj": "self_attn.out_proj",
    "ln_2": "ff_norm", "mlp.c_fc": "ff.fc1", "mlp.c_proj": "ff.fc2",
}


def gpt_config_from_hf(hf_config, dropout: float = 0.0) -> GPTConfig:
    """Translate a ``transformers.GPT2Config`` (or any object with its attributes) into a :class:`GPTConfig`.

    Args:
        hf_config: The HF config.
        dropout: Our single dropout rate (HF has three; 0 for inference and parity).

    Raises:
        ValueError: For HF options with no equivalent here (unknown activation, per-layer attention scaling,
            unscaled attention, upcast reordering).
    """
    act = getattr(hf_config, "activation_function", "gelu_new")
    if act not in _ACTIVATIONS:
        raise ValueError(f"unsupported GPT-2 activation_function {act!r}; supported: {sorted(_ACTIVATIONS)}")
    for flag, wanted in (("scale_attn_by_inverse_layer_idx", False), ("reorder_and_upcast_attn", False),
                         ("scale_attn_weights", True)):
        if getattr(hf_config, flag, wanted) != wanted:
            raise ValueError(f"GPT-2 option {flag}={getattr(hf_config, flag)!r} is not supported (need {wanted})")
    return GPTConfig(
        vocab_size=hf_config.vocab_size, block_size=hf_config.n_positions, n_layer=hf_config.n_layer,
        n_head=hf_config.n_head, n_embd=hf_config.n_embd, dropout=dropout, bias=True, pos="learned",
        activation=_ACTIVATIONS[act], norm_first=True, tie_weights=getattr(hf_config, "tie_word_embeddings", True),
        ff_dim=getattr(hf_config, "n_inner", None) or 4 * hf_config.n_embd,
        norm_eps=hf_config.layer_norm_epsilon,
    )


def hf_gpt2_state_dict_to_ours(hf_state: Mapping[str, Tensor], n_layer: int, tied: bool = True) -> dict[str, Tensor]:
    """Rename (and transpose) an HF ``GPT2LMHeadModel`` / ``GPT2Model`` state dict to :class:`GPT` keys.

    Args:
        hf_state: HF tensors; a ``transformer.`` prefix is optional (``GPT2Model`` has none). Causal-mask
            buffers (``attn.bias``, ``attn.masked_bias``) of old checkpoints are ignored.
        n_layer: Number of blocks.
        tied: The head shares the token embedding (then ``lm_head.weight`` is taken from ``wte``).

    Returns:
        A state dict for ``GPT(gpt_config_from_hf(...))``.

    Raises:
        CheckpointError: A tensor the mapping needs is missing.
    """
    state = {k.removeprefix("transformer."): v for k, v in hf_state.items()}

    def take(key: str) -> Tensor:
        if key not in state:
            raise CheckpointError(f"GPT-2 state dict has no {key!r}; is it a GPT-2 checkpoint?")
        tensor = state[key]
        return tensor.t().contiguous() if key.endswith(_TRANSPOSED) else tensor  # Conv1D (in, out) -> (out, in)

    ours = {"tok_emb.weight": take("wte.weight"), "pos_emb.weight": take("wpe.weight"),
            "ln_f.weight": take("ln_f.weight"), "ln_f.bias": take("ln_f.bias")}
    for i in range(n_layer):
        for theirs, mine in _LAYER_KEYS.items():
            for param in ("weight", "bias"):
                ours[f"blocks.{i}.{mine}.{param}"] = take(f"h.{i}.{theirs}.{param}")
    ours["lm_head.weight"] = ours["tok_emb.weight"] if tied else take("lm_head.weight")
    return ours


def gpt_from_hf(hf_model) -> GPT:
    """Build a :class:`GPT` with the weights of an HF ``GPT2LMHeadModel`` (any size, eval mode, same dtype).

    Args:
        hf_model: A ``transformers.GPT2LMHeadModel`` (randomly initialised or pretrained).

    Returns:
        GPT in eval mode whose logits match ``hf_model(idx).logits`` (within ~1e-6 in float32).
    """
    cfg = gpt_config_from_hf(hf_model.config)
    model = GPT(cfg)
    weights = hf_gpt2_state_dict_to_ours(hf_model.state_dict(), cfg.n_layer, tied=cfg.tie_weights)
    ref = weights["tok_emb.weight"]
    model = model.to(dtype=ref.dtype, device=ref.device)
    with torch.no_grad():
        load_weights(model, weights, source=f"HF {type(hf_model).__name__}")
    if cfg.tie_weights:  # load_state_dict copies into the shared tensor; make sure it is still shared
        assert model.lm_head.weight is model.tok_emb.weight
    return model.eval()


def gpt_from_hf_pretrained(name_or_path: str, **kwargs) -> GPT:
    """Load ``transformers.GPT2LMHeadModel.from_pretrained(name_or_path, **kwargs)`` and convert it.

    Needs the optional ``transformers`` package (``pip install torchworks[hf]``) and, for hub names, the files in
    the local HF cache or network access.
    """
    try:
        from transformers import GPT2LMHeadModel
    except ImportError as exc:
        raise ImportError("gpt_from_hf_pretrained needs transformers: pip install 'torchworks[hf]'") from exc
    return gpt_from_hf(GPT2LMHeadModel.from_pretrained(name_or_path, **kwargs))

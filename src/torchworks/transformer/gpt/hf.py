"""Load Hugging Face GPT-2 weights (a ``GPT2LMHeadModel``, its state dict, or a saved folder) into our :class:`GPT`.

GPT-2 is our pre-LN GPT with learned positions, biases everywhere, tanh-approximated GELU (HF ``gelu_new``) and
a head tied to the token embedding. Two layout differences matter:

* HF stores the four projections as ``Conv1D`` with weight (in, out); ``nn.Linear`` wants (out, in), so
  ``c_attn``, ``c_proj`` (attention and MLP) and ``c_fc`` are transposed.
* ``c_attn`` is the fused (C, 3C) query/key/value map with q, k, v along its output axis, the same order as our
  ``in_proj`` rows, so one transpose is enough.

:func:`load_hf_folder` reads a folder written by ``save_pretrained`` (``config.json``, ``model.safetensors`` or
``pytorch_model.bin``, and ``tokenizer.json`` or ``vocab.json`` + ``merges.txt``) without ``transformers`` and
without running pickled code (``torch.load(weights_only=True)``). ``transformers`` is optional: it is imported
inside :func:`gpt_from_hf_pretrained` only.

References:
    Radford et al., "Language Models are Unsupervised Multitask Learners" (GPT-2), 2019.
    HF ``transformers/models/gpt2/modeling_gpt2.py`` and nanoGPT ``GPT.from_pretrained`` (same transposes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import Tensor

from torchworks.core.checkpoint import load_weights
from torchworks.core.errors import CheckpointError
from torchworks.transformer.gpt.model import GPT, GPTConfig

__all__ = ["gpt_config_from_hf", "gpt_from_hf", "gpt_from_hf_pretrained", "hf_gpt2_state_dict_to_ours",
           "load_hf_folder"]

# HF activation names whose function our FeedForward reproduces.
_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}
_MASK_BUFFERS = ("attn.bias", "attn.masked_bias")  # causal-mask buffers of old checkpoints, not weights
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
    used = {"wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias", "lm_head.weight"}
    used |= {f"h.{i}.{theirs}.{p}" for i in range(n_layer) for theirs in _LAYER_KEYS for p in ("weight", "bias")}
    extra = sorted(k for k in state if k not in used and not k.endswith(_MASK_BUFFERS))
    if extra:
        raise CheckpointError(f"GPT-2 state dict has {len(extra)} tensor(s) a {n_layer}-layer GPT-2 does not have "
                              f"(e.g. {extra[0]!r}); does config.json match the weights?")
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


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a JSON object")
    return data


def _hf_weights(folder: Path) -> dict[str, Tensor]:
    """The tensors of a ``save_pretrained`` folder: safetensors (single or sharded) or ``pytorch_model.bin``."""
    from safetensors.torch import load_file

    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        return load_file(single)
    if index.is_file():
        shards = sorted(set(_read_json(index).get("weight_map", {}).values()))
        return {k: v for shard in shards for k, v in load_file(folder / shard).items()}
    binary = folder / "pytorch_model.bin"
    if binary.is_file():
        try:
            state = torch.load(binary, map_location="cpu", weights_only=True)  # never runs pickled code
        except Exception as exc:  # noqa: BLE001  (an unpickling refusal or a broken archive: one message)
            raise CheckpointError(f"{binary} cannot be read as plain tensors ({type(exc).__name__}); only "
                                  "weights_only-loadable files are accepted") from None
        if not isinstance(state, dict):
            raise CheckpointError(f"{binary} holds a {type(state).__name__}, not a state dict")
        return state
    raise CheckpointError(f"{folder} has no model.safetensors, model.safetensors.index.json or pytorch_model.bin")


def _hf_tokenizer(folder: Path):
    """A :class:`~torchworks.transformer.gpt.tokenizers.BPETokenizer` from ``tokenizer.json`` or
    ``vocab.json`` + ``merges.txt`` (GPT-2's byte-level BPE), read by ``tokenizers``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from torchworks.transformer.gpt.tokenizers import BPETokenizer

    if (folder / "tokenizer.json").is_file():
        try:
            return BPETokenizer(Tokenizer.from_file(str(folder / "tokenizer.json")))
        except Exception as exc:  # noqa: BLE001  (tokenizers raises its own Exception type)
            raise CheckpointError(f"{folder / 'tokenizer.json'} is not a tokenizers file ({exc})") from None
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    if vocab.is_file() and merges.is_file():
        tok = Tokenizer(models.BPE.from_file(str(vocab), str(merges)))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        return BPETokenizer(tok)
    raise CheckpointError(f"{folder} has no tokenizer (tokenizer.json, or vocab.json and merges.txt)")


def load_hf_folder(folder: str | Path, *, with_tokenizer: bool = True):
    """``(GPT in eval mode, tokenizer or None)`` from a Hugging Face GPT-2 folder, offline.

    Args:
        folder: What ``GPT2LMHeadModel.save_pretrained`` (and the tokenizer's ``save_pretrained``) wrote.
        with_tokenizer: Also load the tokenizer (its vocabulary must equal the model's).

    Raises:
        FileNotFoundError: No such folder, or no ``config.json`` in it.
        CheckpointError: A config of another architecture, weights that do not fit it (missing, extra or
            mis-shaped tensors), a pickle that needs code to load, or a tokenizer of another vocabulary size.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--from-pretrained {folder}: no such folder")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no config.json; expected a Hugging Face GPT-2 folder (config.json, "
                                "model.safetensors or pytorch_model.bin, tokenizer.json)")
    raw = _read_json(folder / "config.json")
    kind = raw.get("model_type")
    if kind != "gpt2":
        raise CheckpointError(f"{folder / 'config.json'} describes a {kind!r} model, not GPT-2 (model_type 'gpt2')")
    missing = [k for k in ("vocab_size", "n_positions", "n_layer", "n_head", "n_embd") if k not in raw]
    if missing:
        raise CheckpointError(f"{folder / 'config.json'} lacks {missing}")
    hf_config = SimpleNamespace(**{"layer_norm_epsilon": 1e-5, **raw})
    try:
        cfg = gpt_config_from_hf(hf_config)
    except ValueError as exc:
        raise CheckpointError(f"{folder / 'config.json'}: {exc}") from None
    tokenizer = _hf_tokenizer(folder) if with_tokenizer else None
    if tokenizer is not None and tokenizer.vocab_size != cfg.vocab_size:
        raise CheckpointError(f"the tokenizer of {folder} has {tokenizer.vocab_size} tokens but the model's "
                              f"vocab_size is {cfg.vocab_size}")
    model = GPT(cfg)  # float32 whatever the stored precision: CPU generation is fastest there
    weights = hf_gpt2_state_dict_to_ours(_hf_weights(folder), cfg.n_layer, tied=cfg.tie_weights)
    with torch.no_grad():
        load_weights(model, weights, source=str(folder))
    return model.eval(), tokenizer

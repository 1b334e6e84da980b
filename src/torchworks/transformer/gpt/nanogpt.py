"""Read a nanoGPT ``ckpt.pt`` (its ``model_args`` and state dict) into our :class:`GPT`, without running pickled code.

nanoGPT's model is our pre-LN GPT with learned positions, exact (erf) GELU, LayerNorm eps 1e-5, a head tied to
the token embedding, and biases everywhere or nowhere (``bias``). Its linear layers are ``nn.Linear``, so unlike HF
GPT-2 nothing is transposed; the fused ``c_attn`` rows are q, k, v like our ``in_proj``. A checkpoint saved from a
``torch.compile`` d model carries an ``_orig_mod.`` prefix, which is dropped (as nanoGPT's ``sample.py`` does).

``ckpt.pt`` is a ``torch.save`` pickle; it is opened with ``torch.load(weights_only=True)``, which accepts plain
containers, numbers, strings and tensors only. The character vocabulary of a ``shakespeare_char``-style run lives
in nanoGPT's ``meta.pkl`` (``stoi``/``itos`` dicts), read here with an unpickler that refuses every global, so it
too cannot run code.

References:
    Karpathy, nanoGPT ``model.py`` (``GPT``, ``GPTConfig``), ``train.py`` (checkpoint layout) and ``sample.py``.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from torchworks.core.checkpoint import load_weights
from torchworks.core.errors import CheckpointError
from torchworks.transformer.gpt.model import GPT, GPTConfig
from torchworks.transformer.gpt.tokenizers import CharTokenizer

__all__ = ["gpt_config_from_nanogpt", "is_torch_pickle", "load_nanogpt", "nanogpt_state_dict_to_ours",
           "read_meta_pkl"]

_LAYER_KEYS = {
    "ln_1": "self_attn_norm", "attn.c_attn": "self_attn.in_proj", "attn.c_proj": "self_attn.out_proj",
    "ln_2": "ff_norm", "mlp.c_fc": "ff.fc1", "mlp.c_proj": "ff.fc2",
}
_MODEL_ARGS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "vocab_size")


def is_torch_pickle(path: str | Path) -> bool:
    """Whether ``path`` starts like a ``torch.save`` file (a zip archive or a raw pickle of protocol 2-5).

    A safetensors file (8-byte little-endian header length, then ``{``) is not one, even when its length's first
    byte happens to be 0x80, the pickle opcode PROTO (about 1 header in 256).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(9)
    if head[:2] == b"PK":
        return True
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") + 8 <= path.stat().st_size:
        return False  # safetensors
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def gpt_config_from_nanogpt(model_args: Mapping[str, Any]) -> GPTConfig:
    """:class:`GPTConfig` of a nanoGPT ``model_args`` dict (dropout is set to 0: inference and parity).

    Raises:
        CheckpointError: A required argument is missing.
    """
    missing = [k for k in _MODEL_ARGS if k not in model_args]
    if missing:
        raise CheckpointError(f"nanoGPT model_args lack {missing}")
    return GPTConfig(vocab_size=int(model_args["vocab_size"]), block_size=int(model_args["block_size"]),
                     n_layer=int(model_args["n_layer"]), n_head=int(model_args["n_head"]),
                     n_embd=int(model_args["n_embd"]), dropout=0.0, bias=bool(model_args["bias"]), pos="learned",
                     activation="gelu", norm_first=True, tie_weights=True, norm_eps=1e-5)


def nanogpt_state_dict_to_ours(state: Mapping[str, Tensor], cfg: GPTConfig) -> dict[str, Tensor]:
    """Rename a nanoGPT state dict to :class:`GPT` keys.

    Raises:
        CheckpointError: A tensor the mapping needs is missing, or there are tensors it does not know.
    """
    theirs = {k.removeprefix("_orig_mod."): v for k, v in state.items()}
    params = ("weight", "bias") if cfg.bias else ("weight",)
    mapping = {"transformer.wte.weight": "tok_emb.weight", "transformer.wpe.weight": "pos_emb.weight",
               **{f"transformer.ln_f.{p}": f"ln_f.{p}" for p in params}}
    for i in range(cfg.n_layer):
        for src, dst in _LAYER_KEYS.items():
            mapping.update({f"transformer.h.{i}.{src}.{p}": f"blocks.{i}.{dst}.{p}" for p in params})
    missing = [k for k in mapping if k not in theirs]
    # lm_head.weight is the tied wte; attn.bias is the causal-mask buffer of nanoGPT's non-flash attention path.
    extra = [k for k in theirs if k not in mapping and k != "lm_head.weight" and not k.endswith(".attn.bias")]
    if missing or extra:
        detail = "; ".join(f"{what} {len(keys)} (e.g. {keys[0]!r})" for what, keys in
                           (("missing", missing), ("unexpected", extra)) if keys)
        raise CheckpointError(f"nanoGPT state dict does not fit its model_args ({cfg.n_layer} layers, "
                              f"bias={cfg.bias}): {detail}")
    ours = {dst: theirs[src] for src, dst in mapping.items()}
    ours["lm_head.weight"] = ours["tok_emb.weight"]
    return ours


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_meta_pkl(path: str | Path) -> CharTokenizer:
    """The character tokenizer of a nanoGPT ``meta.pkl`` (``{"vocab_size", "itos", "stoi"}``), read without
    resolving any global (plain dicts, ints and strings only).

    Raises:
        CheckpointError: Not such a pickle (or one that would need code to load).
    """
    try:
        meta = _NoGlobals(io.BytesIO(Path(path).read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} is not a nanoGPT meta.pkl of plain data ({exc})") from None
    itos = meta.get("itos") if isinstance(meta, dict) else None
    if not isinstance(itos, dict) or sorted(itos) != list(range(len(itos))):
        raise CheckpointError(f"{path} has no itos dict with ids 0..N-1 (not a character meta.pkl)")
    return CharTokenizer([itos[i] for i in range(len(itos))])


def _find_meta(path: Path, ckpt: Mapping[str, Any]) -> Path | None:
    """meta.pkl next to ckpt.pt, else ``data/<dataset>/meta.pkl`` from the working folder (``sample.py``'s rule)."""
    candidates = [path.with_name("meta.pkl")]
    dataset = ckpt.get("config", {}).get("dataset") if isinstance(ckpt.get("config"), dict) else None
    if isinstance(dataset, str):
        candidates.append(Path("data") / dataset / "meta.pkl")
    return next((c for c in candidates if c.is_file()), None)


def load_nanogpt(path: str | Path, tokenizer: Any = None) -> tuple[GPT, Any]:
    """``(GPT in eval mode, tokenizer)`` from a nanoGPT ``ckpt.pt``.

    Args:
        path: The checkpoint ``train.py`` wrote (``model``, ``model_args``, ...).
        tokenizer: A tokenizer object to use; None: the ``meta.pkl`` next to the checkpoint, or in
            ``data/<config.dataset>/`` as ``sample.py`` looks for it.

    Raises:
        FileNotFoundError: No such file.
        CheckpointError: Not loadable as plain data, not a nanoGPT checkpoint, keys that do not fit, no tokenizer,
            or a tokenizer whose vocabulary is larger than the model's.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)  # never runs pickled code
    except Exception as exc:  # noqa: BLE001  (an unpickling refusal or a broken archive: one message)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} cannot be read as plain data with torch.load(weights_only=True): "
                              f"{first[:160]}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model_args"), dict) or \
            not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(f"{path} is a torch.save file but not a nanoGPT checkpoint (no model_args and model)")
    cfg = gpt_config_from_nanogpt(ckpt["model_args"])
    if tokenizer is None:
        meta = _find_meta(path, ckpt)
        if meta is None:
            raise CheckpointError(f"no meta.pkl next to {path} (nor under data/<dataset>/): pass --tokenizer "
                                  "(a nanoGPT meta.pkl, or a tokenizer JSON file)")
        tokenizer = read_meta_pkl(meta)
    if tokenizer.vocab_size > cfg.vocab_size:
        raise CheckpointError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is "
                              f"{cfg.vocab_size}")
    model = GPT(cfg)
    with torch.no_grad():
        load_weights(model, nanogpt_state_dict_to_ours(ckpt["model"], cfg), source=str(path))
    if tokenizer.vocab_size < cfg.vocab_size:
        model = _crop_vocab(model, tokenizer.vocab_size)
    return model.eval(), tokenizer


def _crop_vocab(model: GPT, vocab_size: int) -> GPT:
    """The same model with only the first ``vocab_size`` token rows (nanoGPT pads GPT-2's 50257 to 50304): the
    dropped ids can never be fed in, and dropping their logits is sampling with them masked out."""
    cropped = GPT(GPTConfig(**{**vars(model.config), "vocab_size": vocab_size}))
    state = model.state_dict()
    state["tok_emb.weight"] = state["tok_emb.weight"][:vocab_size]
    state["lm_head.weight"] = state["tok_emb.weight"]
    with torch.no_grad():
        load_weights(cropped, state, source="cropped vocabulary")
    return cropped

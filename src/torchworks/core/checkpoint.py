"""Checkpoints: one safetensors file holding tensors, plus a JSON tree (config, step, RNG state) in its header.

Any nested structure of dicts, lists, tuples, tensors and JSON scalars can be saved: tensors go to the
safetensors payload under their dotted path, everything else to JSON with ``{"__tensor__": key}`` placeholders.
A SHA-256 over the tensor bytes is stored too, so a flipped byte is caught, not only a truncated file. Files are
written atomically (:mod:`torchworks.core.atomic`): a crash never leaves half a checkpoint under the real name.

A model built through :func:`build_model` remembers its registry name and arguments, so :func:`load_model`
rebuilds it from the file alone.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchworks.core.atomic import atomic_write_bytes
from torchworks.core.errors import CheckpointError
from torchworks.core.registry import MODELS

FORMAT = "torchworks-checkpoint"
VERSION = 1
SPEC_ATTR = "_torchworks_spec"


def build_model(name: str, /, **kwargs: Any) -> nn.Module:
    """Builds a registered model and records ``{"name", "kwargs"}`` on it for checkpoints."""
    model = MODELS.build(name, **kwargs)
    setattr(model, SPEC_ATTR, {"name": name, "kwargs": kwargs})
    return model


def model_spec(model: nn.Module) -> dict[str, Any] | None:
    """The ``{"name", "kwargs"}`` a model was built with through :func:`build_model`, or ``None``."""
    return getattr(model, SPEC_ATTR, None)


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Writes ``state`` (nested dicts/lists of tensors and JSON scalars) to ``path`` atomically."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    tree = _encode(state, "", tensors, seen)
    meta = {
        "format": FORMAT,
        "version": str(VERSION),
        "tree": json.dumps(tree, allow_nan=True),
        "sha256": _digest(tensors),
    }
    from safetensors.torch import save as st_save

    return atomic_write_bytes(path, st_save(tensors, metadata=meta))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Reads a checkpoint written by :func:`save_checkpoint` (tensors on CPU).

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is truncated, corrupt, or not a torchworks checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    blob = path.read_bytes()
    meta = _read_metadata(blob, path)
    from safetensors.torch import load as st_load

    try:
        tensors = st_load(blob)
    except Exception as exc:  # safetensors raises its own error type on any malformed payload
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({exc})") from None
    if _digest(tensors) != meta.get("sha256"):
        raise CheckpointError(f"{path}: checksum mismatch, the tensor data is corrupt; re-create the checkpoint")
    try:
        tree = json.loads(meta["tree"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint header ({exc})") from None
    return _decode(tree, tensors)


def save_model(path: str | Path, model: nn.Module, *, spec: Mapping[str, Any] | None = None,
               extra: Mapping[str, Any] | None = None) -> Path:
    """Saves a model's weights with the registry spec that rebuilds it (``extra`` goes in unchanged)."""
    spec = dict(spec or model_spec(model) or {})
    if "name" not in spec:
        raise ValueError("save_model needs a model built with build_model() or an explicit spec={'name': ...}")
    return save_checkpoint(path, {"model_spec": spec, "model": model.state_dict(), **dict(extra or {})})


def load_model(path: str | Path, expect: str | None = None) -> nn.Module:
    """Rebuilds a registered model from a checkpoint file alone and loads its weights.

    Args:
        path: a file written by :func:`save_model` or by the training engine.
        expect: if given, the registry name the checkpoint must hold.

    Raises:
        CheckpointError: no model spec in the file, another model than ``expect``, or weights that do not fit.
    """
    state = load_checkpoint(path)
    spec = state.get("model_spec")
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise CheckpointError(f"{path}: no model spec inside; it was not saved with save_model or the trainer")
    if expect is not None and spec["name"] != expect:
        raise CheckpointError(f"{path} holds model {spec['name']!r}, not {expect!r}")
    model = build_model(spec["name"], **dict(spec.get("kwargs") or {}))
    load_weights(model, state["model"], source=str(path))
    return model


def load_weights(model: nn.Module, weights: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """``load_state_dict`` that explains a mismatch (missing, unexpected and mis-shaped keys) in one message.

    Tied tensors (one storage under several keys, e.g. shared embeddings and a tied output layer) may be stored
    once: a missing key is filled from a stored key that shares its storage in ``model``. Stored floats of
    another precision (a float16 export) are cast to the model's dtype by the copy.
    """
    own = model.state_dict()
    weights = _fill_tied(own, weights)
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    shapes = [f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in weights and tuple(weights[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (e.g. {unexpected[0]})")
        if shapes:
            parts.append(f"wrong shape {len(shapes)} (e.g. {shapes[0]})")
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: {'; '.join(parts)}; "
                              "was it written for another model or config?")
    model.load_state_dict(dict(weights))


def _fill_tied(own: Mapping[str, torch.Tensor], weights: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """``weights`` plus, for each key of ``own`` it lacks, the stored tensor of a key tied to it in ``own``."""
    missing = [k for k in own if k not in weights]
    if not missing:
        return weights
    stored: dict[tuple[int, tuple[int, ...]], str] = {}
    for k, v in own.items():
        if k in weights and v.numel():
            stored.setdefault((v.data_ptr(), tuple(v.shape)), k)
    filled = dict(weights)
    for k in missing:
        twin = stored.get((own[k].data_ptr(), tuple(own[k].shape))) if own[k].numel() else None
        if twin is not None:
            filled[k] = weights[twin]
    return filled


def _read_metadata(blob: bytes, path: Path) -> dict[str, str]:
    if len(blob) < 8:
        raise CheckpointError(f"{path}: truncated checkpoint ({len(blob)} bytes)")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise CheckpointError(f"{path}: truncated checkpoint (header wants {n} bytes, file has {len(blob) - 8})")
    try:
        header = json.loads(blob[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: corrupt checkpoint header; not a torchworks checkpoint") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: a safetensors file but not a torchworks checkpoint (no '{FORMAT}' tag)")
    if int(meta.get("version", 0)) > VERSION:
        raise CheckpointError(f"{path}: written by a newer torchworks (format {meta['version']}); upgrade")
    return meta


def _digest(tensors: Mapping[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key]
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _encode(obj: Any, key: str, tensors: dict[str, torch.Tensor], seen: set[int]) -> Any:
    if isinstance(obj, np.ndarray):
        obj = torch.from_numpy(obj)
    if isinstance(obj, torch.Tensor):
        name = key or "_"
        if name in tensors:
            raise ValueError(f"two tensors would be stored under {name!r}; avoid dots in checkpoint keys")
        t = obj.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr() if t.numel() else -1
        if ptr in seen:  # safetensors refuses shared storage (e.g. tied weights): store a copy
            t = t.clone()
        elif ptr != -1:
            seen.add(ptr)
        tensors[name] = t
        return {"__tensor__": name}
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj) and "__tensor__" not in obj:
            return {k: _encode(v, f"{key}.{k}" if key else k, tensors, seen) for k, v in obj.items()}
        return {"__items__": [[k, _encode(v, f"{key}.{k}" if key else str(k), tensors, seen)]
                              for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{key}.{i}", tensors, seen) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{key}.{i}", tensors, seen) for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {key!r} in a checkpoint")


def _decode(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        if "__items__" in obj:
            return {k: _decode(v, tensors) for k, v in obj["__items__"]}
        return {k: _decode(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    return obj

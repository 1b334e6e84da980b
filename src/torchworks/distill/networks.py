"""Teacher and student networks: a registered model name, or any ``nn.Module`` factory named by import path.

A name with a colon is an import path, ``package.module:factory`` (``factory`` may be dotted, e.g.
``mypkg.nets:Builders.small``): the module is imported and ``factory(**kwargs)`` must return an ``nn.Module`` whose
``forward(x)`` maps images (B, 3, H, W) to logits (B, num_classes). Any other name is looked up in ``MODELS``.
``num_classes`` comes from the data: it is passed to every registered model, and to a factory that has a
parameter of that name (unless the config's ``*_args`` already give it).

Importing runs the module's code, so an import path is taken only from what the user wrote (a config, a flag, an
argument), never from a checkpoint: :func:`load_network` checks the name stored in the file against the one it
was given.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from torchworks.core.checkpoint import SPEC_ATTR, build_model, load_checkpoint, load_weights
from torchworks.core.errors import CheckpointError, ConfigError


def is_import_path(name: str) -> bool:
    """Whether ``name`` is ``package.module:factory`` rather than a registry name."""
    return ":" in name


def resolve_factory(name: str) -> Callable[..., Any]:
    """The callable an import path ``package.module:factory`` names.

    Raises:
        ConfigError: the module cannot be imported, has no such attribute (close names are listed), or the
            attribute is not callable.
    """
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{name!r}: an import path is 'package.module:factory'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r} of {name!r}: {exc}") from None
    for i, part in enumerate(attr.split(".")):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=3)
            where = ".".join([module_name, *attr.split(".")[:i]])
            hint = f"; close names: {', '.join(close)}" if close else ""
            raise ConfigError(f"{name!r}: {where} has no attribute {part!r}{hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"{name!r} is a {type(obj).__name__}, not a callable that builds an nn.Module")
    return obj


def _accepts(factory: Callable[..., Any], param: str) -> bool:
    try:
        return param in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False


def build_network(name: str, kwargs: Mapping[str, Any], num_classes: int | None) -> nn.Module:
    """Builds a registered model or an import-path factory; records ``{"name", "kwargs"}`` for checkpoints.

    ``num_classes`` (None: not passed) goes to registered models and to factories with such a parameter, unless
    ``kwargs`` already hold it.

    Raises:
        UnknownNameError: an unknown registry name (close matches listed).
        ConfigError: an import path that does not resolve, or a factory that returns no ``nn.Module``.
    """
    args = dict(kwargs)
    if not is_import_path(name):
        if num_classes is not None:
            args.setdefault("num_classes", num_classes)
        return build_model(name, **args)
    factory = resolve_factory(name)
    if num_classes is not None and "num_classes" not in args and _accepts(factory, "num_classes"):
        args["num_classes"] = num_classes
    model = factory(**args)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{name!r} returned a {type(model).__name__}, not a torch.nn.Module")
    setattr(model, SPEC_ATTR, {"name": name, "kwargs": args})
    return model


def read_weights(path: str | Path, name: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The state dict in ``path`` and the model spec stored with it (None for a plain state dict).

    ``path`` is a torchworks checkpoint (``save_model`` or the trainer) or a plain safetensors state dict
    (``safetensors.torch.save_file(model.state_dict(), path)``). No code is imported from the file.

    Raises:
        FileNotFoundError: no file.
        CheckpointError: not a safetensors file, no weights inside, or a torchworks checkpoint of another model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types on anything that is not its format
        raise CheckpointError(f"{path} is not a safetensors file ({exc}); save the weights with "
                              "safetensors.torch.save_file(model.state_dict(), path)") from None
    if "tree" not in meta:
        from safetensors.torch import load_file

        return load_file(str(path)), None
    state = load_checkpoint(path)
    spec = state.get("model_spec")
    if isinstance(spec, Mapping) and spec.get("name") != name:
        raise CheckpointError(f"{path} holds model {spec.get('name')!r}, not {name!r}")
    if not isinstance(state.get("model"), Mapping):
        raise CheckpointError(f"{path}: no model weights inside (key 'model')")
    return dict(state["model"]), (dict(spec) if isinstance(spec, Mapping) else None)


def load_network(path: str | Path, name: str, kwargs: Mapping[str, Any] | None = None,
                 num_classes: int | None = None) -> nn.Module:
    """Rebuilds ``name`` (registry name or import path) and loads the weights in ``path``.

    This is how the student of a run whose student was given by import path comes back (``load_model`` only
    rebuilds registered models): ``load_network("runs/x/checkpoints/last.ckpt", "mypkg.nets:small")``.

    Args:
        path: a torchworks checkpoint or a plain safetensors state dict.
        name: the registry name or import path; a torchworks checkpoint must hold this same name.
        kwargs: factory arguments; None: those stored in the checkpoint (none for a plain state dict).
        num_classes: as for :func:`build_network` (stored kwargs usually hold it already).

    Raises:
        FileNotFoundError, CheckpointError: see :func:`read_weights`; also weights that do not fit (one message
            listing the missing, unexpected and mis-shaped keys).
    """
    weights, spec = read_weights(path, name)
    if kwargs is None:
        kwargs = dict((spec or {}).get("kwargs") or {})
    model = build_network(name, kwargs, num_classes)
    load_weights(model, weights, source=str(path))
    return model

"""Official LaMa weights a user has downloaded, read without running their pickled or TorchScript code.

Two files are in circulation (see ``docs/results/inpainting.md`` for where to get them):

* advimman/lama's ``big-lama/models/best.ckpt``: a PyTorch-Lightning 1.x checkpoint (a zip holding ``data.pkl``
  and tensor records). Besides the generator's ``state_dict`` it pickles the training config as OmegaConf
  objects and Lightning callback classes;
* IOPaint / lama-cleaner's ``big-lama.pt``: a TorchScript archive traced around the whole training module
  (``model.generator.model.<i>.`` keys), whose ``code/`` folder would run on ``torch.jit.load``.

Both are zip archives with a ``data.pkl``. :func:`read_archive` unpickles it with an allow-list: only the tensor
rebuild functions and ``OrderedDict`` are real; classes from a short list of inert origins (OmegaConf, Lightning,
TorchScript's ``__torch__`` module classes, ``pathlib``, ``copyreg``, ...) become empty records that keep their
state as data and are never called; any other global (``os.system``, ``builtins.eval``, ...) refuses the whole
file with a :class:`~torchworks.core.errors.CheckpointError`. Tensor bytes are read from the archive's records.
Nothing in the file is executed, and ``torch.load``/``torch.jit.load`` are never called.

:func:`import_lama_weights` converts such a file once into a safetensors file in the user cache
(``$TORCHWORKS_CACHE/weights``, default ``~/.cache/torchworks/weights``), which the ``big_lama`` inpainter loads.

References:
    Suvorov et al., "Resolution-robust Large Mask Inpainting with Fourier Convolutions", WACV 2022;
    advimman/lama ``bin/make_checkpoint.py``, ``bin/to_jit.py``; IOPaint ``iopaint/model/lama.py``.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from torchworks.core.errors import CheckpointError

BIG_LAMA_URLS = {
    "ckpt": "https://huggingface.co/smartywu/big-lama/resolve/main/big-lama.zip",
    "jit": "https://github.com/Sanster/models/releases/download/add_big_lama/big-lama.pt",
}
"""Where users get the files (never fetched by this module). IOPaint pins the ``.pt`` by MD5
``e3aa4aaa15225a33ec84f9f4bc47e500`` (``iopaint/model/lama.py``)."""

_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}
_INERT_ORIGINS = ("__torch__", "omegaconf", "pytorch_lightning", "lightning", "lightning_fabric", "pathlib",
                  "copyreg", "typing", "collections", "datetime", "saicinpainting", "numpy", "_codecs", "enum")
"""Module prefixes whose classes are replaced by inert records (their state kept as data, never run)."""


class Record:
    """An object from an inert origin: its global name and the state it was pickled with (never executed)."""

    _global = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.state = args, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # SETITEM(S) on a dict-like record
        if not isinstance(self.state, dict):
            self.state = {}
        self.state[key] = value

    def append(self, value: Any) -> None:  # APPEND(S) on a list-like record
        if not isinstance(self.state, list):
            self.state = []
        self.state.append(value)

    def extend(self, values: Any) -> None:
        for v in values:
            self.append(v)

    def __repr__(self) -> str:
        return f"Record({self._global})"


def _rebuild_tensor(flat: Tensor, offset: int, size: Any, stride: Any, *_: Any) -> Tensor:
    if offset + sum((s - 1) * st for s, st in zip(size, stride, strict=True) if s > 0) >= max(flat.numel(), 1) \
            and flat.numel() and all(s > 0 for s in size):
        raise CheckpointError(f"tensor of size {tuple(size)} runs past its storage of {flat.numel()} elements")
    return flat.as_strided(tuple(size), tuple(stride), offset).clone()


def _rebuild_parameter(data: Tensor, *_: Any) -> Tensor:
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, path: Path) -> None:
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.path = archive, prefix, path
        self.records: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if full in ("torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor"):
            return _rebuild_tensor
        if full in ("torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state"):
            return _rebuild_parameter
        if full == "collections.OrderedDict":
            return OrderedDict
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        if module == "torch" and name in ("device", "Size"):
            return {"device": str, "Size": tuple}[name]
        if module.split(".")[0] in _INERT_ORIGINS:
            return self.records.setdefault(full, type(name, (Record,), {"_global": full}))
        raise CheckpointError(f"{self.path}: refusing a pickle that needs {full!r} (not a weights file this "
                              "loader knows; it could run code)")

    def persistent_load(self, pid: Any) -> Tensor:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointError(f"{self.path}: unexpected persistent record {pid!r:.80}")
        dtype, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(dtype, torch.dtype):
            raise CheckpointError(f"{self.path}: unexpected storage type {dtype!r:.80}")
        try:
            raw = self.archive.read(f"{self.prefix}data/{key}")
        except KeyError:
            raise CheckpointError(f"{self.path}: tensor record data/{key} is missing (truncated file?)") from None
        itemsize = torch.empty((), dtype=dtype).element_size()
        if len(raw) < numel * itemsize:
            raise CheckpointError(f"{self.path}: tensor record data/{key} holds {len(raw)} bytes, "
                                  f"needs {numel * itemsize}")
        if numel == 0:
            return torch.empty(0, dtype=dtype)
        return torch.frombuffer(bytearray(raw[: numel * itemsize]), dtype=dtype)


def read_archive(path: str | os.PathLike[str]) -> tuple[Any, str]:
    """Unpickles a torch zip archive's ``data.pkl`` safely (see the module docstring).

    Returns:
        ``(object, kind)`` where ``kind`` is ``"torchscript"`` (the archive has a ``code/`` folder) or
        ``"checkpoint"`` (a ``torch.save`` file).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a zip archive, no ``data.pkl``, truncated records, or a disallowed global.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such weights file: {p}")
    try:
        archive = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{p}: not a PyTorch zip archive ({exc}); legacy or corrupt files are refused") \
            from None
    with archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not pkl:
            raise CheckpointError(f"{p}: no data.pkl inside; not a PyTorch checkpoint or TorchScript file")
        prefix = pkl[0][: -len("data.pkl")]
        kind = "torchscript" if any(n.startswith(prefix + "code/") for n in names) else "checkpoint"
        try:
            obj = _RestrictedUnpickler(archive.read(pkl[0]), archive, prefix, p).load()
        except CheckpointError:
            raise
        except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, TypeError, KeyError,
                IndexError, AttributeError, RuntimeError) as exc:
            raise CheckpointError(f"{p}: corrupt archive ({type(exc).__name__}: {exc})") from None
    return obj, kind


def _walk(obj: Any, prefix: str, out: dict[str, Tensor], depth: int = 0) -> None:
    """Tensors of a TorchScript module tree by dotted attribute path."""
    if depth > 64:
        raise CheckpointError("module tree deeper than 64 levels")
    if isinstance(obj, Tensor):
        out[prefix[:-1]] = obj
    elif isinstance(obj, Record) and isinstance(obj.state, dict):
        for k, v in obj.state.items():
            if isinstance(k, str):
                _walk(v, f"{prefix}{k}.", out, depth + 1)


def lama_generator_state(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The reference generator's tensors (``model.<i>.`` keys) from ``best.ckpt`` or ``big-lama.pt``.

    Raises:
        CheckpointError: the file holds no LaMa generator.
    """
    obj, kind = read_archive(path)
    if kind == "torchscript":
        flat: dict[str, Tensor] = {}
        _walk(obj, "", flat)
        # JITWrapper -> training module -> generator: "model.generator.model.<i>...."
        gen = {k.split("generator.", 1)[1]: v for k, v in flat.items() if "generator.model." in k}
    else:
        sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
        if not isinstance(sd, dict):
            raise CheckpointError(f"{path}: no state_dict in this checkpoint")
        gen = {k.removeprefix("generator."): v for k, v in sd.items()
               if isinstance(v, Tensor) and (k.startswith("generator.model.") or k.startswith("model."))}
    if not gen:
        raise CheckpointError(f"{path}: no LaMa generator weights inside (expected keys 'generator.model.<i>.')")
    return gen


def infer_layout(state: dict[str, Tensor]) -> dict[str, int]:
    """``n_blocks`` and ``ngf`` of a reference generator from its keys (``n_downsampling`` is LaMa's 3)."""
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv1\.", k))}
    stem = state.get("model.1.ffc.convl2l.weight")
    if not blocks or stem is None:
        raise CheckpointError("these weights are not an FFC ResNet generator (no stem conv or FFC blocks found)")
    return {"n_blocks": len(blocks), "ngf": int(stem.shape[0]), "n_downsampling": min(blocks) - 2}


def load_lama_generator(path: str | os.PathLike[str]) -> torch.nn.Module:
    """A torchworks ``FFCResNetGenerator`` holding the weights of ``best.ckpt`` / ``big-lama.pt``.

    Raises:
        CheckpointError: not LaMa weights, or their shapes do not match the inferred layout.
    """
    from torchworks.core.checkpoint import build_model
    from torchworks.inpainting.nets.lama import convert_reference_state_dict

    state = lama_generator_state(path)
    layout = infer_layout(state)
    model = build_model("big_lama", **layout)
    try:
        ours = convert_reference_state_dict(state, layout["n_downsampling"], layout["n_blocks"])
        missing, unexpected = model.load_state_dict(ours, strict=False)
    except (ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: weights do not fit a LaMa generator ({str(exc).splitlines()[0]})") from None
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise CheckpointError(f"{path}: {len(missing)} missing and {len(unexpected)} unexpected generator "
                              f"tensors (first: {(missing + unexpected)[0]})")
    return model.eval()


def weights_cache() -> Path:
    """Folder that imported weights go to: ``$TORCHWORKS_CACHE/weights`` or ``~/.cache/torchworks/weights``."""
    root = os.environ.get("TORCHWORKS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torchworks")
    return Path(root) / "weights"


def imported_lama_path() -> Path:
    return weights_cache() / "big_lama.safetensors"


def import_lama_weights(src: str | os.PathLike[str], dest: str | os.PathLike[str] | None = None) -> Path:
    """Converts ``best.ckpt`` / ``big-lama.pt`` once into a safetensors model file (default: the user cache).

    The file is written atomically and records the generator's layout, so ``load_model`` rebuilds it.
    """
    from torchworks.core.checkpoint import save_model

    model = load_lama_generator(src)
    out = Path(dest) if dest is not None else imported_lama_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    # the spec (big_lama + the inferred layout) rides along; written atomically. ``big_lama`` is listed from the
    # next start on, and works at once through get_inpainter's fallback to the imported file.
    return save_model(out, model)


__all__ = ["BIG_LAMA_URLS", "Record", "import_lama_weights", "imported_lama_path", "infer_layout",
           "lama_generator_state", "load_lama_generator", "read_archive", "weights_cache"]

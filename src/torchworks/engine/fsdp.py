"""``trainer.strategy: fsdp``: fully sharded data parallel (torch FSDP2) through Lightning Fabric, and its checkpoints.

Fabric's own ``FSDPStrategy`` refuses the CPU accelerator, but its ``ModelParallelStrategy`` (FSDP2 and DTensor) runs
on CPU with gloo as well as on GPUs with NCCL, so the engine uses that one with a pure data-parallel mesh (all
``devices * num_nodes`` processes shard, no tensor parallelism). Fabric still launches the processes (or joins
``torchrun``/SLURM), builds the mesh, shards the data, routes ``training_step`` and clips gradients; what it cannot
do here is checkpointing, because its distributed checkpoints are ``torch.distributed.checkpoint``'s default
format, whose metadata is a pickle (loading it could run code), while every engine checkpoint loads without
unpickling anything.

Sharding (:func:`shard_module`): every ``nn.ModuleList`` item with parameters (e.g. a transformer's blocks) becomes
its own FSDP unit, gathered just before its forward and freed after; the rest of the module (embeddings, a tied
output head, final norm) is the root unit. A parameter shared across units cannot be sharded and is refused.

A sharded checkpoint is two parts:

* ``checkpoints/shards/step-XXXXXXX/``: the sharded tensors (parameter shards and the optimiser moments of those
  shards), one safetensors file per process written by ``torch.distributed.checkpoint`` with its
  ``HuggingFaceStorageWriter`` (offsets of each shard in the safetensors header, so it reloads on another number of
  processes too: 2 -> 3 checked by hand, RNG streams then restart);
* the ordinary checkpoint file (``last.ckpt``, ``step-XXXXXXX.ckpt``, ``best.ckpt``) holding everything else:
  step, RNG states, schedulers, optimiser hyper-parameters, buffers, ``shards`` (the folder, relative to the
  checkpoint) and, as in every engine checkpoint, the exported model gathered in full (``model_spec`` + ``model``),
  so ``load_model`` and ``torchworks generate`` read it like a single-process one.

After ``fit`` the task's trainable modules stay sharded (their parameters are DTensor shards on each process):
read the trained model from ``last.ckpt`` with ``load_model`` rather than from ``TrainResult.task``.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchworks.core.errors import CheckpointError, ConfigError

SHARDS_DIR = "shards"  # under checkpoints/: one folder of sharded state per saved step
SHARD_KEY = "__shard__"  # placeholder in the checkpoint file for a tensor stored in the shard folder


def strategy(world_size: int) -> Any:
    """Fabric's FSDP2 strategy with every process in one data-parallel (sharding) group."""
    from lightning_fabric.strategies import ModelParallelStrategy

    return ModelParallelStrategy(shard_module, data_parallel_size=world_size, tensor_parallel_size=1)


def check_task(task: nn.Module) -> None:
    """Refuses tasks the FSDP path does not train.

    Raises:
        ConfigError: the task steps its optimisers itself (``manual_optimization``).
    """
    if getattr(task, "manual_optimization", False):
        raise ConfigError(f"trainer.strategy fsdp: {type(task).__name__} uses manual optimisation, which the engine "
                          "shards only with strategy: ddp")


def shard_module(module: nn.Module, mesh: Any) -> nn.Module:
    """Applies ``fully_shard`` to each ``ModuleList`` item with parameters, then to ``module`` (the root unit).

    Args:
        module: a trainable module of the task.
        mesh: Fabric's device mesh; its ``data_parallel`` dimension is the sharding group.

    Raises:
        ValueError: a parameter is shared between two units (or a unit and the root), which FSDP cannot shard.
    """
    from torch.distributed.fsdp import fully_shard

    units: list[tuple[str, nn.Module]] = []
    for name, child in module.named_modules():
        if isinstance(child, nn.ModuleList):
            for i, item in enumerate(child):
                inside = any(item is u or any(item is s for s in u.modules()) for _, u in units)
                if not inside and any(True for _ in item.parameters()):
                    units.append((f"{name}.{i}" if name else str(i), item))
    owner: dict[int, str] = {}
    for unit_name, unit in units:
        for p in unit.parameters():
            owner[id(p)] = unit_name
    for pname, p in module.named_parameters(remove_duplicate=False):
        unit = owner.get(id(p))
        if unit is not None and not (pname == unit or pname.startswith(unit + ".")):
            raise ValueError(f"trainer.strategy fsdp: parameter {pname!r} is shared with {unit!r}, so "
                             f"{type(module).__name__} cannot be sharded; use strategy: ddp")
    dp = mesh["data_parallel"]
    for _, unit in units:
        fully_shard(unit, mesh=dp)
    fully_shard(module, mesh=dp)
    return module


def _is_dtensor(value: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(value, DTensor)


def full_tensors(tree: Any) -> Any:
    """``tree`` with every DTensor gathered into a plain CPU tensor (collective: call on every rank alike)."""
    if _is_dtensor(tree):
        return tree.full_tensor().cpu()
    if isinstance(tree, Mapping):
        return {k: full_tensors(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(full_tensors(v) for v in tree)
    return tree


def _split(tree: Any, key: str, shards: dict[str, Any], seen: dict[tuple, str] | None = None) -> Any:
    """Moves DTensors out of ``tree`` into ``shards[dotted key]``, leaving ``{SHARD_KEY: key}`` placeholders.

    A tensor met twice (tied weights: the same storage under two names) is stored once; both names point to it.
    """
    seen = {} if seen is None else seen
    if _is_dtensor(tree):
        local = tree.to_local()
        ident = (local.untyped_storage().data_ptr(), local.storage_offset(), tuple(local.shape), local.dtype)
        if local.numel() and ident in seen:
            return {SHARD_KEY: seen[ident]}
        if key in shards:
            raise ValueError(f"two sharded tensors would be stored under {key!r}")
        shards[key] = tree
        seen[ident] = key
        return {SHARD_KEY: key}
    if isinstance(tree, Mapping):
        return {k: _split(v, f"{key}.{k}" if key else str(k), shards, seen) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(_split(v, f"{key}.{i}", shards, seen) for i, v in enumerate(tree))
    return tree


def _join(tree: Any, shards: Mapping[str, Any]) -> Any:
    if isinstance(tree, Mapping):
        if set(tree) == {SHARD_KEY}:
            return shards[tree[SHARD_KEY]]
        return {k: _join(v, shards) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(_join(v, shards) for v in tree)
    return tree


def _placeholders(tree: Any) -> set[str]:
    if isinstance(tree, Mapping):
        if set(tree) == {SHARD_KEY}:
            return {tree[SHARD_KEY]}
        return set().union(*(_placeholders(v) for v in tree.values())) if tree else set()
    if isinstance(tree, list | tuple):
        return set().union(*(_placeholders(v) for v in tree)) if tree else set()
    return set()


def _live_states(task: nn.Module, optimizers: Sequence[Any]) -> dict[str, Any]:
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    # Optimiser states keyed by parameter name (and created if the optimiser has not stepped yet).
    return {"task": get_model_state_dict(task),
            "optimizers": [get_optimizer_state_dict(task, opt) for opt in optimizers]}


def save_shards(fabric: Any, directory: Path, task: nn.Module, optimizers: Sequence[Any]) -> dict[str, Any]:
    """Writes this rank's shards of task and optimiser states to ``directory`` (collective, every rank).

    The folder appears under its name only once every rank has written (a crash leaves a hidden ``.partial``
    folder, removed by the next save).

    Returns:
        ``{"task": ..., "optimizers": [...]}`` with the sharded tensors replaced by placeholders: what goes in the
        checkpoint file.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageWriter

    shards: dict[str, Any] = {}
    rest = _split(_live_states(task, optimizers), "", shards)
    partial = directory.with_name(f".{directory.name}.partial")
    if fabric.is_global_zero:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    fabric.barrier()
    dcp.save(shards, storage_writer=HuggingFaceStorageWriter(str(partial), save_distributed=True))
    fabric.barrier()
    if fabric.is_global_zero:
        old = directory.with_name(f".{directory.name}.old")
        if directory.exists():  # the same step saved again (e.g. a finished run resumed): replace it
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
        partial.rename(directory)
        shutil.rmtree(old, ignore_errors=True)
    fabric.barrier()
    return rest


def restore(state: Mapping[str, Any], task: nn.Module, optimizers: Sequence[Any], schedulers: Sequence[Any],
            source: str) -> None:
    """Loads a sharded checkpoint's task, optimiser and scheduler states into the sharded task (collective).

    Raises:
        CheckpointError: the checkpoint is not sharded, its shard folder is missing, or it does not fit the task.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    if not state.get("shards"):
        raise CheckpointError(f"{source} was not written with trainer.strategy fsdp; resume it with the strategy "
                              "it was trained with")
    folder = Path(source).parent / str(state["shards"])
    if not folder.is_dir():
        raise CheckpointError(f"{source}: its sharded state {folder} is missing")
    if len(state["optimizers"]) != len(optimizers):
        raise CheckpointError(f"{source} holds {len(state['optimizers'])} optimizer state(s) but the task "
                              f"configures {len(optimizers)}; was it written with another task config?")
    live: dict[str, Any] = {}
    _split(_live_states(task, optimizers), "", live)
    saved = {"task": state["task"], "optimizers": state["optimizers"]}
    wanted = _placeholders(saved)
    if wanted != set(live):
        missing, extra = sorted(set(live) - wanted), sorted(wanted - set(live))
        raise CheckpointError(f"{source}: the sharded state does not fit the task (missing {missing[:5]}, "
                              f"unexpected {extra[:5]}); was it written with another task config?")
    try:
        dcp.load(live, storage_reader=HuggingFaceStorageReader(str(folder)))
    except Exception as exc:  # DCP wraps per-rank failures in its own exception types
        raise CheckpointError(f"{source}: cannot read the sharded state in {folder} ({str(exc)[:300]})") from None
    full = _join(saved, live)
    try:
        set_model_state_dict(task, full["task"])
        for opt, sd in zip(optimizers, full["optimizers"], strict=True):
            set_optimizer_state_dict(task, opt, sd)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{source}: the sharded state does not fit the task ({exc})") from None
    if len(state["schedulers"]) != len(schedulers):
        raise CheckpointError(f"{source} holds {len(state['schedulers'])} scheduler state(s) but the task "
                              f"configures {len(schedulers)}; was it written with another task config?")
    for i, (sched, sd) in enumerate(zip(schedulers, state["schedulers"], strict=True)):
        try:
            sched.load_state_dict(sd)
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"{source}: scheduler {i} state does not fit ({exc})") from None


def read_full(state: Mapping[str, Any], source: str) -> dict[str, torch.Tensor]:
    """The task weights of a sharded checkpoint, assembled in full in one process (for evaluation).

    Raises:
        CheckpointError: the shard folder is missing or does not hold every sharded tensor.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader

    folder = Path(source).parent / str(state["shards"])
    if not folder.is_dir():
        raise CheckpointError(f"{source}: its sharded state {folder} is missing")
    reader = HuggingFaceStorageReader(str(folder))
    meta = reader.read_metadata().state_dict_metadata
    wanted = _placeholders(state["task"])
    if not wanted <= set(meta):
        raise CheckpointError(f"{source}: {folder} lacks {sorted(wanted - set(meta))[:5]}")
    tensors = {k: torch.empty(meta[k].size, dtype=meta[k].properties.dtype) for k in sorted(wanted)}
    with warnings.catch_warnings():  # DCP warns that it loads in one process, which is the point here
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(tensors, storage_reader=HuggingFaceStorageReader(str(folder)), no_dist=True)
    return _join(state["task"], tensors)


def referenced_shards(path: Path) -> str | None:
    """The shard folder (relative to the checkpoint) a checkpoint file refers to, read from its header only."""
    import json
    import struct

    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        tree = json.loads(header["__metadata__"]["tree"])
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return None
    shards = tree.get("shards") if isinstance(tree, dict) else None
    return shards if isinstance(shards, str) else None


def prune_shards(ckpts: Any) -> None:
    """Deletes shard folders no remaining checkpoint file (step files, ``last``, ``best``) refers to."""
    root = ckpts.directory / SHARDS_DIR
    if not root.is_dir():
        return
    files = [*ckpts.step_checkpoints(), ckpts.last_path, ckpts.best_path]
    keep = {referenced_shards(p) for p in files if p.exists()}
    for folder in root.iterdir():
        if folder.is_dir() and f"{SHARDS_DIR}/{folder.name}" not in keep and not folder.name.startswith("."):
            shutil.rmtree(folder, ignore_errors=True)

"""The shared training engine: one loop on Lightning Fabric for every task.

Light imports only here: domains import :mod:`torchworks.engine.task` to define their tasks, which must not pull
in Lightning. The trainer and the entry points load on first use::

    from torchworks.engine import train, evaluate     # imported lazily
    result = train("run.yaml", ["trainer.max_steps=50"], threads=2)
    print(result.metrics, result.best_checkpoint)

Public names: :class:`Task`, :class:`OptimizerStepper`, :class:`TrainerConfig`, :class:`RunConfig`,
:func:`load_run_config`, :class:`Trainer`, :class:`TrainResult`, :func:`train`, :func:`evaluate`,
:func:`build_task`.
"""

from __future__ import annotations

import importlib
from typing import Any

from torchworks.engine.config import RunConfig, TrainerConfig, load_run_config
from torchworks.engine.task import OptimizerStepper, Task

_LAZY = {
    "Trainer": "torchworks.engine.trainer",
    "TrainResult": "torchworks.engine.trainer",
    "train": "torchworks.engine.run",
    "evaluate": "torchworks.engine.run",
    "build_task": "torchworks.engine.run",
}

__all__ = ["OptimizerStepper", "RunConfig", "Task", "TrainerConfig", "load_run_config", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

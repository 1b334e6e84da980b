"""Where registry entries come from: the modules whose import fills MODELS, TASKS, DATASETS, ...

Registration happens at import time, so listing or building by name first imports these modules. A module whose
optional dependency is missing is skipped and reported, not fatal (``torchworks list`` still works).
"""

from __future__ import annotations

import importlib

# Each domain adds its registering module here when it lands.
PLUGIN_MODULES: tuple[str, ...] = (
    "torchworks.data",
    "torchworks.data.masks",
    "torchworks.classify",
    "torchworks.distill",
    "torchworks.transformer",
    "torchworks.transformer.bert",
    "torchworks.transformer.bert_task",
    "torchworks.transformer.bert_finetune",
    "torchworks.transformer.vit",
    "torchworks.transformer.seq2seq",
    "torchworks.transformer.translation_task",
    "torchworks.inpainting",
    "torchworks.inpainting.nets",
    "torchworks.inpainting.task",
    "torchworks.inpainting.learned",
    "torchworks.sequence",
)

_loaded = False
skipped: dict[str, str] = {}


def load_all() -> dict[str, str]:
    """Imports every plugin module once; returns ``{module: reason}`` for those skipped on ImportError."""
    global _loaded
    if not _loaded:
        for name in PLUGIN_MODULES:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                skipped[name] = str(exc)
        _loaded = True
    return dict(skipped)

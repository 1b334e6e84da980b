"""Where registry entries come from: the modules whose import fills MODELS, TASKS, DATASETS, ...

Registration happens at import time. The registries in :mod:`torchworks.core.registry` read this catalog when
a name is missing: ``load_model("resnet56_cifar10.safetensors")`` or ``MODELS.build("vit_mini_patch4_32")``
works in a fresh interpreter because the registry imports, one by one, the modules listed here for its kind
until the name appears. A module whose optional dependency is missing is skipped and remembered (``skipped``);
``torchworks list`` and unknown-name errors report it instead of failing.

This module imports only the standard library: it is data plus a loader, cheap enough for ``torchworks --help``.
``tests/test_catalog.py`` walks the source for ``<REGISTRY>.register(``/``.add(`` calls and checks that importing
the modules listed here for that registry reaches every one of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

# registry key (as in ``torchworks.core.registry.REGISTRIES``) -> modules to import, cheapest and most used first.
# Importing a package imports the submodules its ``__init__`` names; list a submodule only when it is not.
PROVIDERS: dict[str, tuple[str, ...]] = {
    "models": (
        "torchworks.classify",
        "torchworks.distill",
        "torchworks.sequence",
        "torchworks.transformer",  # the GPT family
        "torchworks.transformer.vit",
        "torchworks.transformer.seq2seq",
        "torchworks.transformer.bert",
        "torchworks.inpainting.nets",
        "torchworks.inpainting.ict",
    ),
    "losses": (),
    "distill_losses": ("torchworks.distill",),
    "masks": ("torchworks.data.masks",),
    "datasets": ("torchworks.data",),
    "tasks": (
        "torchworks.classify",  # image_classifier (every image classifier, the ViTs included)
        "torchworks.distill",
        "torchworks.sequence",
        "torchworks.transformer",  # gpt_lm
        "torchworks.transformer.seq2seq.task",
        "torchworks.transformer.bert.task",
        "torchworks.transformer.bert.finetune",
        "torchworks.inpainting.task",
        "torchworks.inpainting.ict.task",
    ),
    "inpainters": ("torchworks.inpainting", "torchworks.inpainting.learned"),
}

# Every module above once, in a stable order (what ``load_all`` imports).
PLUGIN_MODULES: tuple[str, ...] = tuple(dict.fromkeys(m for mods in PROVIDERS.values() for m in mods))

skipped: dict[str, str] = {}
"""``{module: reason}`` for catalog modules whose import failed with ImportError (a missing optional extra)."""

_imported: set[str] = set()


def providers(kind: str) -> tuple[str, ...]:
    """The modules that register entries of registry ``kind`` (``"models"``, ``"tasks"``, ...).

    Raises:
        KeyError: ``kind`` is not a registry key of the catalog.
    """
    return PROVIDERS[kind]


def load(kind: str, found: Callable[[], bool] | None = None) -> bool:
    """Imports the modules of ``kind`` in order, stopping early once ``found()`` is true.

    Returns:
        True when every module of ``kind`` has been tried (so the registry is as full as it can get).
    """
    for name in PROVIDERS[kind]:
        if found is not None and found():
            return False
        _import(name)
    return True


def load_all() -> dict[str, str]:
    """Imports every catalog module once; returns ``{module: reason}`` for those skipped on ImportError."""
    for name in PLUGIN_MODULES:
        _import(name)
    return dict(skipped)


def _import(name: str) -> None:
    if name in _imported:
        return
    try:
        importlib.import_module(name)
    except ImportError as exc:
        # Only a missing third-party extra is skippable; a broken import inside torchworks is a bug to surface.
        missing = getattr(exc, "name", None) or ""
        if missing == "torchworks" or missing.startswith("torchworks."):
            raise
        skipped[name] = str(exc)
    _imported.add(name)

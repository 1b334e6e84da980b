"""A generic name -> factory registry.

One :class:`Registry` instance exists per kind of thing (models, losses, tasks, data sets, ...). Entries are
factories (functions or classes); variant functions pin hyper-parameters and accept overrides::

    @MODELS.register()
    def mlp_small(**overrides):
        return MLP(**{"hidden": 256, **overrides})

    model = MODELS.build("mlp_small", hidden=128)

Registration happens when a module is imported. The shared instances below (MODELS, TASKS, ...) therefore
resolve a name they do not hold yet through :mod:`torchworks.catalog`: they import the modules the catalog lists
for their kind, one at a time, until the name is registered. A lookup (``get``, ``build``, ``in``) or a listing
(``names``, ``len``, iteration) works in a fresh interpreter without importing the defining module first. The
catalog is read by module name at lookup time (``importlib``), so this layer imports nothing above it.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from torchworks.core.errors import DuplicateNameError, UnknownNameError

CATALOG_MODULE = "torchworks.catalog"


class Registry:
    """Maps names to factories for one kind of object.

    Args:
        kind: what the entries are, used in messages ("model", "loss", "data set").
        catalog_key: the key of this kind in the catalog (``"models"``); a missing name then imports the
            catalog's modules for it. None (the default): the registry holds only what was added to it.
    """

    def __init__(self, kind: str, catalog_key: str | None = None) -> None:
        self.kind = kind
        self.catalog_key = catalog_key
        self._entries: dict[str, Callable[..., Any]] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._complete = catalog_key is None  # every catalog module of this kind has been imported
        self._loading = False
        self._lock = threading.RLock()  # re-entrant: a module being imported may look names up itself

    def _load(self, name: str | None = None) -> None:
        """Imports catalog modules until ``name`` is registered (all of them when ``name`` is None)."""
        if self._complete or (name is not None and name in self._entries):
            return
        with self._lock:
            if self._loading or self._complete:  # a lookup made while one of our modules is being imported
                return
            self._loading = True
            try:
                catalog = importlib.import_module(CATALOG_MODULE)
                found = None if name is None else (lambda: name in self._entries)
                self._complete = catalog.load(self.catalog_key, found)
            finally:
                self._loading = False

    def skipped(self) -> dict[str, str]:
        """``{module: reason}`` of catalog modules of this kind that could not be imported (missing extras)."""
        if self.catalog_key is None:
            return {}
        catalog = importlib.import_module(CATALOG_MODULE)
        return {m: why for m, why in catalog.skipped.items() if m in catalog.providers(self.catalog_key)}

    def register(self, name: str | None = None, **meta: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator that registers a factory under ``name`` (default: the factory's ``__name__``).

        Extra keyword arguments are stored as metadata (e.g. ``config=MyTaskConfig``), read with :meth:`meta`.

        Raises:
            DuplicateNameError: the name is already taken.
        """

        def deco(obj: Callable[..., Any]) -> Callable[..., Any]:
            self.add(name or obj.__name__, obj, **meta)
            return obj

        return deco

    def add(self, name: str, obj: Callable[..., Any], **meta: Any) -> None:
        """Registers ``obj`` under ``name`` without a decorator."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise DuplicateNameError(
                f"{self.kind} {name!r} is already registered (by {_describe(self._entries[name])}); "
                "pick another name"
            )
        self._entries[name] = obj
        self._meta[name] = dict(meta)

    def get(self, name: str) -> Callable[..., Any]:
        """Returns the factory registered under ``name``.

        Raises:
            UnknownNameError: no such entry; the message lists close matches.
        """
        if isinstance(name, str):
            self._load(name)
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self._unknown_message(name)) from None

    def meta(self, name: str) -> dict[str, Any]:
        """Returns the metadata given at registration."""
        self.get(name)
        return self._meta[name]

    def build(self, name: str, /, **kwargs: Any) -> Any:
        """Calls the factory registered under ``name`` with ``kwargs``."""
        return self.get(name)(**kwargs)

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted names, optionally filtered by a shell-style ``pattern`` (``"relama_*"``) or a substring."""
        self._load()
        names = sorted(self._entries)
        if pattern is None:
            return names
        if any(ch in pattern for ch in "*?["):
            return [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        return [n for n in names if pattern in n]

    def close_matches(self, name: str, n: int = 5) -> list[str]:
        """Up to ``n`` registered names that resemble ``name``."""
        self._load()
        name = str(name)
        found = difflib.get_close_matches(name, self._entries, n=n, cutoff=0.5)
        found += [k for k in sorted(self._entries) if name and name in k and k not in found]
        return found[:n]

    def _unknown_message(self, name: object) -> str:
        close = self.close_matches(str(name))
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        if not close:
            listed = ", ".join(sorted(self._entries)[:20]) or "none registered"
            hint = f"; known: {listed}"
        skipped = self.skipped()
        if skipped:
            hint += "; not loaded: " + ", ".join(f"{m} ({why})" for m, why in skipped.items())
        return f"unknown {self.kind} {name!r}{hint}"

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self._load(name)
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries)"


def _describe(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


# One instance per kind. Domain packages register into these; cross-domain code goes through them, never
# through imports of another domain.
# The second argument is the kind's key in torchworks.catalog.PROVIDERS (and in REGISTRIES below).
MODELS = Registry("model", "models")
LOSSES = Registry("loss", "losses")
DISTILL_LOSSES = Registry("distillation loss", "distill_losses")
MASKS = Registry("mask generator", "masks")
DATASETS = Registry("data set", "datasets")
TASKS = Registry("task", "tasks")
INPAINTERS = Registry("inpainter", "inpainters")

REGISTRIES: dict[str, Registry] = {
    "models": MODELS,
    "losses": LOSSES,
    "distill_losses": DISTILL_LOSSES,
    "masks": MASKS,
    "datasets": DATASETS,
    "tasks": TASKS,
    "inpainters": INPAINTERS,
}

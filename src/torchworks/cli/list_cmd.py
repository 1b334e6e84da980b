"""``torchworks list [KIND [PATTERN]]``: what is registered, by kind.

A kind shown to the user may gather several registries: ``losses`` lists every loss, the distillation losses
(``distill_losses``) included. Only kinds with at least one entry are offered; an unknown or empty kind is a
one-line error with the closest kinds (exit code 2).
"""

from __future__ import annotations

import argparse
import difflib
import sys

# kind shown to the user -> the registries (keys of torchworks.core.registry.REGISTRIES) it lists, in order.
KINDS: dict[str, tuple[str, ...]] = {
    "models": ("models",),
    "losses": ("losses", "distill_losses"),
    "distill_losses": ("distill_losses",),
    "datasets": ("datasets",),
    "tasks": ("tasks",),
    "masks": ("masks",),
    "inpainters": ("inpainters",),
}


def entries(kind: str, pattern: str | None = None) -> list[tuple[str, str, str]]:
    """``(name, registry key, one-line description)`` of every entry of ``kind`` matching ``pattern``, by name."""
    from torchworks.core.registry import REGISTRIES

    rows = []
    for key in KINDS[kind]:
        reg = REGISTRIES[key]
        for name in reg.names(pattern):
            obj = reg.get(name)
            doc = (getattr(obj, "description", None) or (obj.__doc__ or "")).strip().splitlines()
            rows.append((name, key, doc[0].strip() if doc else ""))
    return sorted(rows)


def offered() -> dict[str, int]:
    """``{kind: number of entries}`` for the kinds that have any (the only ones ``list`` accepts)."""
    counts = {kind: len(entries(kind)) for kind in KINDS}
    return {kind: n for kind, n in counts.items() if n}


def run(args: argparse.Namespace) -> int:
    from torchworks.catalog import load_all
    from torchworks.core.errors import UnknownNameError

    skipped = load_all()
    kinds = offered()
    if args.kind is None:
        for kind, n in kinds.items():
            print(f"{kind:16s} {n}")
        return 0
    if args.kind not in kinds:
        close = difflib.get_close_matches(args.kind, kinds, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"kinds: {', '.join(kinds)}"
        what = "nothing is registered as" if args.kind in KINDS else "unknown kind"
        raise UnknownNameError(f"{what} {args.kind!r}; {hint}")
    rows = entries(args.kind, args.pattern)
    several = len(KINDS[args.kind]) > 1
    width = max((len(name) for name, _, _ in rows), default=0) + 2
    for name, key, doc in rows:
        tag = f"[{key}] " if several else ""
        print(f"{name:{width}s}{tag}{doc}".rstrip())
    if not rows:
        what = f" matching {args.pattern!r}" if args.pattern else ""
        print(f"no {args.kind}{what} (of {kinds[args.kind]} registered)", file=sys.stderr)
    for mod, why in skipped.items():
        print(f"note: {mod} not loaded ({why})", file=sys.stderr)
    return 0

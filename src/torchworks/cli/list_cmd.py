"""``torchworks list KIND [PATTERN]``."""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    from torchworks.catalog import load_all
    from torchworks.core.registry import REGISTRIES

    skipped = load_all()
    reg = REGISTRIES[args.kind]
    names = reg.names(args.pattern)
    for name in names:
        obj = reg.get(name)
        doc = (getattr(obj, "description", None) or (obj.__doc__ or "")).strip().splitlines()
        print(f"{name:32s} {doc[0] if doc else ''}".rstrip())
    if not names:
        what = f" matching {args.pattern!r}" if args.pattern else ""
        print(f"no {args.kind}{what} (of {len(reg)} registered)", file=sys.stderr)
    for mod, why in skipped.items():
        print(f"note: {mod} not loaded ({why})", file=sys.stderr)
    return 0

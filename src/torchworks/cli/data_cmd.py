"""``torchworks data {list,path,verify}``."""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    import torchworks.data as data

    if args.data_verb == "list":
        for spec in data.list_datasets():
            try:
                where = str(data.dataset_path(spec.name, data_dir=args.data_dir))
            except FileNotFoundError:
                where = f"(not found; `torchworks data path {spec.name} --download`)"
            print(f"{spec.name:28s} {spec.license[:28]:28s} {where}")
        return 0
    if args.data_verb == "path":
        print(data.dataset_path(args.name, data_dir=args.data_dir, download=args.download))
        return 0
    if args.data_verb == "verify":
        rows = data.verify(args.name, data_dir=args.data_dir)
        if args.data_dir is not None:  # verify the copy in --data-dir, never one found elsewhere
            from pathlib import Path

            from torchworks.core.errors import DataNotFoundError

            root = Path(args.data_dir).expanduser().absolute()  # not resolve(): a symlinked copy counts as there
            elsewhere = rows and not Path(rows[0].path).absolute().is_relative_to(root)
            if elsewhere or all(not r.ok and r.detail == "missing" for r in rows):  # found elsewhere, or nothing here
                raise DataNotFoundError(f"no copy of {args.name!r} in --data-dir {args.data_dir} (searched "
                                        f"{args.data_dir}/{data.get_spec(args.name).folder}, {args.data_dir}/"
                                        f"{args.name} and {args.data_dir})" + (
                                            f"; drop --data-dir to verify the copy at {Path(rows[0].path).parent}"
                                            if elsewhere else ""))
        bad = 0
        for path, ok, detail in rows:
            bad += not ok
            print(f"{'ok ' if ok else 'BAD'} {path}  {detail}".rstrip())
        if bad:
            print(f"torchworks data verify: {bad} file(s) failed", file=sys.stderr)
            return 1
        return 0
    raise ValueError(f"unknown data action {args.data_verb!r}")

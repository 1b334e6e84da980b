"""``torchworks train`` and ``torchworks eval``: thin wrappers over :mod:`torchworks.engine.run`."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from torchworks.catalog import load_all
    from torchworks.engine import run as engine_run

    load_all()
    trainer_overrides = {k: v for k, v in {
        "threads": args.threads,
        "devices": getattr(args, "devices", None),
        "strategy": getattr(args, "strategy", None),
    }.items() if v is not None}
    if args.verb == "eval":
        metrics = engine_run.evaluate(args.config, args.ckpt, overrides=args.overrides, data_dir=args.data_dir,
                                      split=args.split, **trainer_overrides)
        for name, value in metrics.items():
            print(f"{name:24s} {value:.6g}")
        return 0
    result = engine_run.train(args.config, overrides=args.overrides, resume=args.resume, out_dir=args.out,
                              data_dir=args.data_dir, overwrite=args.overwrite, **trainer_overrides)
    if result is None or result.rank != 0:  # only rank 0 of a multi-process run reports
        return 0
    print(f"run directory   {result.out_dir}")
    for key, label in (("metrics_csv", "metrics"), ("curves_png", "curves"), ("last_checkpoint", "last ckpt"),
                       ("best_checkpoint", "best ckpt")):
        if getattr(result, key, None):
            print(f"{label:15s} {getattr(result, key)}")
    if result.world_size > 1:
        print(f"processes       {result.world_size}")
    if getattr(result, "wall_seconds", 0):
        print(f"{'training time':15s} {result.cpu_seconds / 60:.2f} CPU-min, {result.wall_seconds / 60:.2f} wall-min "
              "(resumed runs: all their processes)")
    for name, value in (result.metrics or {}).items():
        print(f"{name:15s} {value:.6g}")
    return 0

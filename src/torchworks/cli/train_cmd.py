"""``torchworks train`` and ``torchworks eval``: thin wrappers over :mod:`torchworks.engine.run`.

``eval`` takes either a training checkpoint (``runs/x/checkpoints/best.ckpt``) or a model file written by
``save_model`` (every shipped ``*.safetensors``): the config's task is built, the file's weights go into the model
the task exports (``Task.export_model``), and the task's held-out set is scored as for a training checkpoint.
"""

from __future__ import annotations

import argparse
from typing import Any


def run(args: argparse.Namespace) -> int:
    from torchworks.catalog import load_all
    from torchworks.engine import run as engine_run

    load_all()
    trainer_overrides = {k: v for k, v in {
        "threads": args.threads,
        "devices": getattr(args, "devices", None),
        "strategy": getattr(args, "strategy", None),
    }.items() if v is not None}
    if args.verb == "eval" and args.seed is not None:  # eval writes nothing: the seed is a plain override
        args.overrides = [*args.overrides, f"seed={args.seed}"]
    if args.verb == "eval":
        from torchworks.core.checkpoint import load_checkpoint

        state = load_checkpoint(args.ckpt)
        if "task" in state or "model_spec" not in state:  # a training checkpoint (the engine explains others)
            metrics = engine_run.evaluate(args.config, args.ckpt, overrides=args.overrides, data_dir=args.data_dir,
                                          split=args.split, **trainer_overrides)
        else:
            metrics = evaluate_model_file(args.config, args.ckpt, state, overrides=args.overrides,
                                          data_dir=args.data_dir, split=args.split, **trainer_overrides)
        if _rank() == 0:  # every process of a multi-process evaluation holds the same reduced metrics
            for name, value in metrics.items():
                print(f"{name:24s} {value:.6g}")
        return 0
    if args.seeds is not None:
        if args.resume is not None:
            from torchworks.core.errors import ConfigError

            raise ConfigError("--resume continues one run; with --seeds, run the same command again and each "
                              "unfinished seed resumes from its own last.ckpt")
        engine_run.train_seeds(args.config, args.seeds, overrides=args.overrides, out_dir=args.out,
                               data_dir=args.data_dir, overwrite=args.overwrite, report=_report_seed,
                               **trainer_overrides)
        return 0
    result = engine_run.train(args.config, overrides=args.overrides, resume=args.resume, out_dir=args.out,
                              data_dir=args.data_dir, overwrite=args.overwrite, seed=args.seed, **trainer_overrides)
    _report(result)
    return 0


def _rank() -> int:
    """This process's global rank (0 outside a multi-process run)."""
    import os

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK") or os.environ.get("LOCAL_RANK") or 0)


def _report(result: Any) -> None:
    """Prints where a finished run wrote what, and its final metrics (rank 0 of a multi-process run only)."""
    if result is None or result.rank != 0:
        return
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


def _report_seed(run: Any) -> None:
    """One seed of ``--seeds``: a header line, then the run's report (a finished seed: its stored metrics)."""
    if run.result is not None and run.result.rank != 0:
        return
    print(f"{'seed ' + str(run.seed):15s} {run.status} (step {run.step})", flush=True)
    if run.result is not None:
        _report(run.result)
        return
    print(f"run directory   {run.out_dir}")
    for name, value in run.metrics.items():
        print(f"{name:15s} {value:.6g}")


def evaluate_model_file(config: Any, path: str, state: dict[str, Any], overrides: list[str] = (),
                        data_dir: str | None = None, split: str | None = None,
                        **trainer_overrides: Any) -> dict[str, float]:
    """Scores a ``save_model`` file (``state``, read from ``path``) on the held-out set of the config's task.

    A task that tokenizes its data (a ``tokenizer_json`` buffer) must have built the tokenizer the file carries
    (``"tokenizer"``): the held-out set is encoded when the task is built, so another vocabulary would be scored
    with the wrong ids.

    Raises:
        CheckpointError: the task exports no model, builds another model or tokenizer than the file holds, or the
            weights do not fit it.
    """
    from torchworks.core.checkpoint import load_weights
    from torchworks.core.config import to_dict
    from torchworks.core.errors import CheckpointError
    from torchworks.engine import run as engine_run
    from torchworks.engine.trainer import Trainer

    run_cfg, task_cfg = engine_run._load(config, overrides, None, data_dir, trainer_overrides)
    trainer = Trainer(run_cfg.trainer, seed=run_cfg.seed, run_config=to_dict(run_cfg))
    task = engine_run.build_task(run_cfg, task_cfg)
    held = state["model_spec"].get("name") if isinstance(state["model_spec"], dict) else None
    task_name = run_cfg.task["name"]
    raw, built = state.get("tokenizer"), task.state_dict().get("tokenizer_json")
    if isinstance(raw, str) and built is not None and bytes(built.tolist()).decode("utf-8") != raw:
        raise CheckpointError(f"{path} carries another tokenizer than task {task_name!r} built from this config; "
                              "evaluate it with the data and tokenizer settings it was trained with")
    exported = task.export_model()
    if exported is None:
        raise CheckpointError(f"task {task_name!r} exports no model, so it cannot load the model file {path}; "
                              "pass a training checkpoint")
    model, spec = exported
    if spec["name"] != held:
        hint = f"; add --set task.model={held}" if hasattr(task_cfg, "model") else ""
        raise CheckpointError(f"{path} holds model {held!r} but task {task_name!r} of this config builds "
                              f"{spec['name']!r}{hint}")
    load_weights(model, state["model"], source=str(path))
    if split is None:
        split = "test" if getattr(task, "test_dataset", lambda: None)() is not None else "val"
    return trainer.validate(task, split=split)

"""``torchworks distill``: train a student from a teacher with a named method, without writing a YAML file.

``--method`` picks RepDistiller's recipe for one method (``kd``, ``crd``, ``at``, ...; ``none`` is CE only) or a
``+``-joined combination (``crd+kd``); ``--config`` starts from a ``configs/distill_*.yaml`` instead and the
flags given override it. Everything else (``--set``) goes through the same strict config validation as
``torchworks train``. Heavy modules are imported only inside :func:`run`.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from torchworks.cli._common import add_out, did_you_mean, float_in, out_dir, positive_int

EXAMPLES = """\
examples:
  torchworks distill --teacher resnet56 --student resnet20 --method crd --data cifar10 --steps 3000
  torchworks distill --method crd+kd --ckpt-teacher runs/cifar_resnet56/checkpoints/last.ckpt
  torchworks distill --config configs/distill_kd.yaml --steps 200 --set task.train_limit=2048
  torchworks distill --teacher resnet8 --student resnet8 --method at --data synthetic --steps 5
  torchworks distill --teacher resnet56 --student mypkg.nets:small_cnn --method fitnet \
      --student-taps body.4 --teacher-taps layer2 --steps 2000     # any nn.Module, tapped by module path
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the ``distill`` verb to the CLI's sub-parsers and returns its parser."""
    p = subparsers.add_parser(
        "distill", help="knowledge distillation: train a student from a frozen teacher",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Train a student from a frozen teacher with one distillation method or a combination, on "
        "the shared engine (checkpoints, resume, logs as for `torchworks train`). Teacher and student are zoo "
        "models or any nn.Module factory given by import path (package.module:factory, returning a model whose "
        "forward gives logits); feature methods read zoo feature lists or the module paths given by "
        "--student-taps/--teacher-taps.")
    p.add_argument("--config", help="start from this YAML run config (flags below override it)")
    p.add_argument("--teacher", help="teacher: zoo model name or import path package.module:factory "
                   "(default resnet56)")
    p.add_argument("--student", help="student: zoo model name or import path (default resnet20)")
    p.add_argument("--student-taps", metavar="PATH[,PATH...]", help="module paths of the student features the "
                   "method reads (e.g. layer3.1.conv2); needed for a student outside the zoo")
    p.add_argument("--teacher-taps", metavar="PATH[,PATH...]", help="module paths of the teacher features the "
                   "method reads; needed for a teacher outside the zoo")
    p.add_argument("--method", help="kd, dkd, dist, fitnet, at, sp, cc, vid, rkd, pkt, ab, ft, fsp, nst, crd, ofd, "
                   "none, or a '+'-joined combination such as crd+kd (default kd)")
    p.add_argument("--ckpt-teacher", help="teacher checkpoint (save_model file, trainer checkpoint, or "
                   "pretrained:<name>); default: the shipped resnet56 CIFAR-10 teacher when it applies")
    p.add_argument("--data", choices=("cifar10", "cifar100", "synthetic"), help="data set (default cifar10)")
    p.add_argument("--steps", type=positive_int, help="training steps (the LR schedule is fitted to them)")
    p.add_argument("--init-steps", type=positive_int,
                   help="init-phase steps for ab/fsp/ft (default: steps/8 for them)")
    p.add_argument("--batch-size", type=positive_int, help="training batch size (default 64)")
    p.add_argument("--lr", type=float_in(0, lo_open=True), help="peak SGD learning rate (default 0.05)")
    p.add_argument("--seed", type=int, help="run seed")
    add_out(p, "run directory (default runs/distill_<student>_<method>)", metavar="DIR", type=out_dir)
    p.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an out_dir holding checkpoints")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set task.train_limit=4096 (repeatable)")
    p.add_argument("--threads", type=positive_int, help="torch intra-op threads")
    p.add_argument("--data-dir", help="directory holding the data set (searched first)")
    return p


def build_config(args: argparse.Namespace) -> dict[str, Any]:
    """The plain-data run config the flags describe (validated later by the engine)."""
    from dataclasses import asdict
    from pathlib import Path

    from torchworks.core.config import load_yaml
    from torchworks.distill.recipes import INIT_METHODS, METHODS, method_terms
    from torchworks.distill.task import PRETRAINED_DIR

    data: dict[str, Any] = load_yaml(Path(args.config)) if args.config else {
        "task": {"name": "distill"},
        "trainer": {"max_steps": 3000, "batch_size": 64, "eval_every": 1000, "checkpoint_every": 500,
                    "log_every": 50, "drop_last": True, "tensorboard": False},
    }
    task = data.setdefault("task", {"name": "distill"})
    trainer = data.setdefault("trainer", {})
    for key, value in (("task", task), ("trainer", trainer)):
        if not isinstance(value, dict):
            from torchworks.core.errors import ConfigError

            raise ConfigError(f"{args.config}: {key} must be a mapping of keys to values, got {value!r}")
    for key, value in (("teacher", args.teacher), ("student", args.student), ("teacher_ckpt", args.ckpt_teacher)):
        if value is not None:
            task[key] = value
    if args.config is None:
        task.setdefault("teacher", "resnet56")
        task.setdefault("student", "resnet20")
    method = args.method or (None if args.config else "kd")
    if method is not None:
        _check_method(method, list(METHODS))
        task["losses"] = [asdict(t) for t in method_terms(method)]
        if any(m in INIT_METHODS for m in method.split("+")) and args.init_steps is None:
            args.init_steps = max(1, (args.steps or trainer.get("max_steps", 3000)) // 8)
        elif args.init_steps is None:
            task["init_steps"] = 0
    if args.init_steps is not None:
        task["init_steps"] = args.init_steps
    _set_taps(task, getattr(args, "student_taps", None), getattr(args, "teacher_taps", None))
    if args.data is not None:
        task["dataset"] = args.data
    if args.steps is not None:
        trainer["max_steps"] = args.steps
        task["total_steps"] = args.steps
        trainer["eval_every"] = min(int(trainer.get("eval_every", args.steps)) or args.steps, args.steps)
    if args.lr is not None:
        task["lr"] = args.lr
    if args.batch_size is not None:
        trainer["batch_size"] = args.batch_size
    if args.seed is not None:
        data["seed"] = args.seed
    shipped = PRETRAINED_DIR / "resnet56_cifar10.safetensors"
    dataset = task.get("dataset", "cifar10")
    if "teacher_ckpt" not in task and task.get("teacher") == "resnet56" and dataset == "cifar10" and shipped.is_file():
        task["teacher_ckpt"] = "pretrained:resnet56_cifar10"
    if args.out is not None:
        data["out_dir"] = args.out
    elif "out_dir" not in data:
        student = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(task.get("student")))  # an import path has a colon
        data["out_dir"] = f"runs/distill_{student}_{(method or 'custom').replace('+', '_')}"
    return data


def _set_taps(task: dict[str, Any], student: str | None, teacher: str | None) -> None:
    """Points every feature term of the run at the given module paths (comma-separated)."""
    if student is None and teacher is None:
        return
    logit_only = ("ce", "kd", "dkd", "dist")
    terms = [t for t in task.get("losses") or [] if t.get("name") not in logit_only]
    if not terms:
        flag = "--student-taps" if student is not None else "--teacher-taps"
        raise ValueError(f"{flag}: the losses {[t.get('name') for t in task.get('losses') or []]} read no "
                         "features; taps go with a feature method (fitnet, at, crd, ...)")
    for key, text in (("student_layers", student), ("teacher_layers", teacher)):
        if text is None:
            continue
        paths = [p.strip() for p in text.split(",") if p.strip()]
        if not paths:
            raise ValueError(f"--{key.split('_')[0]}-taps: no module path in {text!r}")
        for t in terms:
            t[key] = paths


def _check_method(method: str, known: list[str]) -> None:
    from torchworks.core.errors import ConfigError

    names = [m.strip().lower() for m in method.split("+")]
    for name in names:
        if name not in known:
            what = f"unknown distillation method {name!r}" + (f" in {method!r}" if len(names) > 1 else "")
            raise ConfigError(f"{what}; {did_you_mean(name, known)}choose from {', '.join(known)} or join "
                              "several with '+', e.g. crd+kd")


def run(args: argparse.Namespace) -> int:
    """Builds the config, trains, prints where everything went and the final metrics."""
    from torchworks.catalog import load_all

    load_all()
    import torchworks.distill.task  # noqa: F401  (registers the distill task)
    from torchworks.engine import run as engine_run

    config = build_config(args)
    result = engine_run.train(config, overrides=args.overrides, resume=args.resume, data_dir=args.data_dir,
                              overwrite=args.overwrite, threads=args.threads)
    if result is None:  # a non-zero rank of a multi-process run
        return 0
    print(f"run directory   {result.out_dir}")
    for key, label in (("metrics_csv", "metrics"), ("last_checkpoint", "last ckpt"), ("best_checkpoint", "best ckpt")):
        if getattr(result, key, None):
            print(f"{label:15s} {getattr(result, key)}")
    for name, value in (getattr(result, "metrics", None) or {}).items():
        print(f"{name:15s} {value:.6g}")
    return 0

"""``torchworks`` entry point: argument parsing and error reporting, nothing heavy at import.

``torchworks --help`` must stay fast, so this module imports only the standard library; each verb's
implementation lives in its own module and is imported after the verb is chosen.
"""

from __future__ import annotations

import argparse
import sys

VERSION = "0.1.0"
EXIT_USER_ERROR = 2

DESCRIPTION = """\
torchworks: inpainting, knowledge distillation, camera geometry, LSTMs and transformers
on one PyTorch training engine. Everything runs offline on a CPU.

examples:
  torchworks train configs/fashion_mlp.yaml --set trainer.max_steps=500
  torchworks train configs/fashion_mlp.yaml --resume runs/fashion_mlp/checkpoints/last.ckpt
  torchworks train configs/fashion_mlp.yaml --seeds 1 2 3   # runs/fashion_mlp/seed1, seed2, seed3
  torchworks eval configs/fashion_mlp.yaml --ckpt runs/fashion_mlp/checkpoints/best.ckpt
  torchworks list models 'fashion_*'
  torchworks data verify fashion_mnist

conventions (every verb):
  A user error (missing, binary or wrong-type file, unknown name, number out of range, unwritable output)
  prints one line on stderr and exits with 2 before any output is written; TORCHWORKS_DEBUG=1 shows the
  traceback. Every verb that writes takes -o/--out; missing parent folders of that path are created, and
  single-file outputs are written atomically (a temporary file renamed into place): never half a file.
"""

# Domain verbs live in their own modules, each with `add_parser(subparsers)` and `run(args)`. Their top level
# imports only the standard library, so building the parser stays fast.
VERB_MODULES = ("geometry_cmd", "inpaint_cmd", "sequence_cmd", "distill_cmd", "transformer_cmd", "ui_cmd",
                "demo_cmd", "embed_cmd", "weights_cmd")

LIST_KINDS = ("models", "losses", "distill_losses", "datasets", "tasks", "masks", "inpainters")
MAX_SEED = 2**32 - 1  # = torchworks.engine.config.MAX_SEED (not imported: --help stays light)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (verbs and their options)."""
    from torchworks.cli import _common as c

    fmt = argparse.RawDescriptionHelpFormatter
    p = c.ArgumentParser(prog="torchworks", description=DESCRIPTION, formatter_class=fmt)
    p.add_argument("--version", action="version", version=f"torchworks {VERSION}")
    sub = p.add_subparsers(dest="verb", metavar="VERB", title="verbs")

    t = sub.add_parser("train", help="train a task from a YAML config", formatter_class=fmt,
                       description="Train the task a YAML config describes, on the shared engine. Writes "
                       "metrics.csv, curves.png and checkpoints/ (last, best, every N steps) under the run's "
                       "out_dir.\n\n"
                       "seeds (a seed repeat of a recipe is an override, not another config file):\n"
                       "  --seed K            the recipe with seed K, in <out_dir>/seedK (or in -o/--out when given)\n"
                       "  --seeds K1 K2 ...   one run per seed, one after another, each in <out_dir>/seed<k>\n"
                       "                      (out_dir: -o/--out or the config's); run the same command again after\n"
                       "                      an interruption: finished seeds are skipped, unfinished ones resume\n"
                       "                      from their last.ckpt\n"
                       "  --set seed=K        the seed changed and nothing else (same out_dir)")
    t.add_argument("config", help="YAML recipe, e.g. configs/fashion_mlp.yaml")
    _add_common(t)
    seeds = t.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=c.int_in(0, MAX_SEED), help="run seed, replacing the config's; the run goes "
                       "to <out_dir>/seed<SEED> unless -o/--out names its folder")
    seeds.add_argument("--seeds", nargs="+", type=c.int_in(0, MAX_SEED), metavar="SEED",
                       help="one run per seed, in <out_dir>/seed<k>; resumable (see above)")
    t.add_argument("--resume", metavar="CKPT", help="continue exactly from a checkpoint (same next-step loss)")
    c.add_out(t, "run directory (default: the config's out_dir; with --seeds the parent of the seed folders)",
              metavar="DIR", type=c.out_dir)
    t.add_argument("--overwrite", action="store_true", help="start afresh in an out_dir that holds checkpoints")
    t.add_argument("--devices", type=c.positive_int, help="number of processes/devices (e.g. 2 with --strategy ddp)")
    t.add_argument("--strategy", choices=("auto", "ddp", "fsdp"),
                   help="distribution strategy (ddp, or fsdp to shard the model; both run on CPU with gloo)")

    e = sub.add_parser("eval", help="evaluate a checkpoint on the task's test (or validation) set",
                       description="Rebuild the config's task, load the checkpoint's weights and report metrics "
                       "on the held-out test set (or the validation set when the task has none).")
    e.add_argument("config", help="the YAML recipe the checkpoint was trained with")
    e.add_argument("--ckpt", required=True, help="training checkpoint (e.g. runs/x/checkpoints/best.ckpt) or model "
                   "file (save_model, e.g. a shipped *.safetensors: its model card gives the full command)")
    e.add_argument("--split", choices=("test", "val"), help="held-out set (default: test when the task has one)")
    e.add_argument("--seed", type=c.int_in(0, MAX_SEED), help="run seed, replacing the config's (as --set seed=)")
    _add_common(e)

    ls = sub.add_parser("list", help="list registered names (models, losses, datasets, tasks, ...)",
                        description="List the names registered of one kind, optionally filtered by a "
                        "shell pattern ('relama_*') or a substring.")
    ls.add_argument("kind", nargs="?", metavar="KIND",
                    help=f"one of: {', '.join(LIST_KINDS)} (losses includes distill_losses); none: the kinds and "
                    "their counts")
    ls.add_argument("pattern", nargs="?", help="glob pattern or substring")

    d = sub.add_parser("data", help="find, verify or download data sets",
                       description="Data sets are searched in: --data-dir, $TORCHWORKS_DATA, a sibling "
                       "../shared/data, then the download cache ($TORCHWORKS_CACHE or ~/.cache/torchworks). "
                       "Nothing is downloaded unless you pass --download.")
    dsub = d.add_subparsers(dest="data_verb", metavar="ACTION", required=True)
    dl = dsub.add_parser("list", help="registered data sets, their licenses and where each was found")
    dp = dsub.add_parser("path", help="print the local directory of a data set")
    dp.add_argument("name")
    dp.add_argument("--download", action="store_true", help="download (every file checksum-verified) if not found")
    dv = dsub.add_parser("verify", help="check a data set's files and checksums")
    dv.add_argument("name")
    for sp in (d, dl, dp, dv):  # before or after ACTION; SUPPRESS keeps a sub-parser from resetting it to None
        sp.add_argument("--data-dir", default=None if sp is d else argparse.SUPPRESS,
                        help="directory holding the data set (searched first; verify checks only the copy there)")

    import importlib

    owners: dict[str, str] = {}
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(f"torchworks.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"torchworks.cli.{name}":
                raise
            continue
        before = set(sub.choices)
        module.add_parser(sub)
        owners.update({verb: name for verb in set(sub.choices) - before})
    p.set_defaults(_verb_owners=owners)
    return p


def _add_common(p: argparse.ArgumentParser) -> None:
    from torchworks.cli._common import positive_int

    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set trainer.max_steps=200 (repeatable)")
    p.add_argument("--threads", type=positive_int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--data-dir", help="directory holding the data set (searched first)")


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; returns the exit code (0 ok, 2 user error), also for ``--help`` and bad flags."""
    from torchworks.cli import _common

    parser = build_parser()
    args = _common.parse_args(parser, argv)
    if isinstance(args, int):
        return args
    if args.verb is None:
        parser.print_help()
        return EXIT_USER_ERROR
    return _common.run_guarded(_common.verb_name(args), lambda: _dispatch(parser, args))


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    _preflight(args)
    if args.verb in ("train", "eval"):
        from torchworks.cli import train_cmd

        return train_cmd.run(args)
    if args.verb == "list":
        from torchworks.cli import list_cmd

        return list_cmd.run(args)
    if args.verb == "data":
        from torchworks.cli import data_cmd

        return data_cmd.run(args)
    owner = args._verb_owners.get(args.verb)
    if owner is not None:
        import importlib

        return importlib.import_module(f"torchworks.cli.{owner}").run(args)
    parser.error(f"unknown verb {args.verb!r}")
    return EXIT_USER_ERROR


def _preflight(args: argparse.Namespace) -> None:
    """Checks shared by every verb, before any work: the config is YAML text, --data-dir exists."""
    from pathlib import Path

    from torchworks.cli._common import read_text
    from torchworks.core.errors import ConfigError

    config = getattr(args, "config", None)
    if config is not None:
        read_text(config, "config file", "a YAML config")
    data_dir = getattr(args, "data_dir", None)
    if data_dir is not None and not getattr(args, "download", False) and not Path(data_dir).expanduser().is_dir():
        raise ConfigError(f"--data-dir {data_dir} is not an existing folder")


def entry() -> None:
    """Console-script wrapper."""
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())

"""``torchworks sequence run NAME`` and ``torchworks forecast``: the sequence verbs.

Only the standard library is imported at module level so that ``torchworks --help`` stays fast; torch, the
engine and matplotlib load inside :func:`run` once a verb is chosen. ``add_parser`` registers both verbs on the
main parser's subparsers; ``main(argv)`` runs them stand-alone with the main CLI's error convention (a user
error prints one line and exits with 2).
"""

from __future__ import annotations

import argparse
import sys

from torchworks.cli._common import add_out, out_dir, positive_int, standalone_main

EXPERIMENT_NAMES = ("counter", "ab-memory", "conflict", "echo", "many-to-one", "many-to-many", "bidirectional")
EXIT_USER_ERROR = 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers the ``sequence`` and ``forecast`` verbs."""
    fmt = argparse.RawDescriptionHelpFormatter
    s = subparsers.add_parser(
        "sequence", help="LSTM memory experiments (counter, ab-memory, conflict, ...)", formatter_class=fmt,
        description="Train one of the seed note's LSTM memory experiments through the shared engine, print "
        "whether the LSTM solved it on held-out sequences, and save a figure (cell-state heat maps for counter "
        "and ab-memory).\n\nexperiments:\n  " + "\n  ".join(EXPERIMENT_NAMES))
    ssub = s.add_subparsers(dest="sequence_verb", metavar="ACTION", required=True)
    r = ssub.add_parser("run", help="train and evaluate one experiment")
    r.add_argument("experiment", choices=EXPERIMENT_NAMES, metavar="EXPERIMENT",
                   help=f"one of: {', '.join(EXPERIMENT_NAMES)}")
    r.add_argument("--steps", type=positive_int, help="training steps (default: the recipe's budget)")
    add_out(r, "run directory (default runs/seq_<experiment>)", metavar="DIR", type=out_dir)
    r.add_argument("--seed", type=int, default=0, help="run seed (weights and data order)")
    r.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads (default 1)")
    r.add_argument("--repeats", type=positive_int, default=1,
                   help="runs with seeds 0..N-1; all curves in one figure (default 1)")
    r.add_argument("--pretrained", action="store_true", help="analyse the shipped model instead of training "
                   "(counter, ab-memory)")
    ssub.add_parser("list", help="list the experiments and what each tests")

    f = subparsers.add_parser(
        "forecast", help="train an LSTM forecaster on a CSV column and compare it with simple forecasts",
        formatter_class=fmt,
        description="Split the series in time (70/15/15), scale with the training rows only, train an LSTM on "
        "windows, and report RMSE/MAE on the test windows against persistence, seasonal-naive and drift "
        "forecasts. The headline names the best of those three and says whether the LSTM beats it, ties with it "
        "(two-sided Diebold-Mariano test, p >= 0.05) or does not beat it. Rows are put oldest first from their "
        "parsed dates, the season is guessed from the date spacing (monthly 12, quarterly 4, weekly 52, daily 7, "
        "trading days 5, hourly 24, half-hourly 48), and incomplete rows at the ends of the file are skipped; "
        "the report says what was decided. Writes predictions.png, model.safetensors and the engine logs under "
        "--out.\n\n"
        "example:\n  torchworks forecast --csv NSE-TATAGLOBAL.csv --column Close --horizon 5 --window 30")
    f.add_argument("--csv", required=True, help="CSV file with a header row")
    f.add_argument("--column", required=True, help="column to forecast, e.g. Close")
    f.add_argument("--features", default="", help="extra comma-separated input columns (multivariate input)")
    f.add_argument("--horizon", type=positive_int, default=1, help="steps ahead (default 1)")
    f.add_argument("--window", type=positive_int, default=30, help="input steps per window (default 30)")
    f.add_argument("--steps", type=positive_int, default=600, help="training steps per run (default 600)")
    f.add_argument("--hidden", type=positive_int, default=32, help="LSTM units (default 32)")
    f.add_argument("--level", action="store_true", help="predict the level instead of the change from the last "
                   "value (the default starts from persistence)")
    f.add_argument("--season", type=positive_int, metavar="M", help="seasonal period of the seasonal-naive baseline "
                   "(default: guessed from the date spacing and printed; 1: leave seasonal naive out)")
    f.add_argument("--repeats", type=positive_int, default=1,
                   help="runs with different seeds; all curves in one figure")
    f.add_argument("--patience", type=positive_int, help="early stopping after N evaluations without improvement")
    f.add_argument("--folds", type=int, default=0, help="time-ordered k-fold cross-validation (k >= 2)")
    f.add_argument("--finalize", action="store_true", help="also retrain on all rows and forecast past the end")
    f.add_argument("--arima", action="store_true", help="add an ARIMA(2,1,2) baseline (needs statsmodels)")
    f.add_argument("--pretrained", metavar="NAME|FILE", help="score a shipped model (e.g. melbourne_temp_lstm) or a "
                   "saved model.safetensors on the CSV's test split instead of training")
    add_out(f, "output directory (default runs/seq_forecast)", metavar="DIR", type=out_dir, default="runs/seq_forecast")
    f.add_argument("--seed", type=int, default=0, help="seed of the first run")
    f.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads (default 1)")


def run(args: argparse.Namespace) -> int:
    """Runs the chosen verb; returns the exit code (user errors propagate as exceptions)."""
    import torch

    torch.set_num_threads(getattr(args, "threads", 1))
    if args.verb == "forecast":
        return _forecast(args)
    if args.sequence_verb == "list":
        from torchworks.sequence.memory_task import EXPERIMENTS

        for name, exp in EXPERIMENTS.items():
            print(f"{name:<15}{exp.summary}")
        return 0
    from torchworks.sequence.experiments import run_experiment

    if args.repeats > 1 and not args.pretrained:
        from torchworks.sequence.experiments import repeat_experiment

        print("\n".join(repeat_experiment(args.experiment, args.repeats, steps=args.steps, out_dir=args.out)))
        return 0
    result = run_experiment(args.experiment, steps=args.steps, out_dir=args.out, seed=args.seed,
                            pretrained=args.pretrained)
    print("\n".join(result.lines()))
    return 0


def _forecast(args: argparse.Namespace) -> int:
    from torchworks.cli._common import read_text
    from torchworks.core.errors import ConfigError
    from torchworks.sequence.forecasting import evaluate_pretrained, run_forecast

    read_text(args.csv, "--csv", "a CSV text file")  # missing, binary or not UTF-8: one line, before any work
    if args.pretrained:
        report = evaluate_pretrained(args.csv, args.pretrained, target=args.column, season=args.season,
                                     out_dir=args.out)
        print("\n".join(report.lines()))
        return 0

    if args.folds == 1 or args.folds < 0:
        raise ConfigError(f"--folds must be 0 (off) or >= 2, got {args.folds}")
    features = [c.strip() for c in args.features.split(",") if c.strip()]
    report = run_forecast(args.csv, args.column, args.horizon, args.window, steps=args.steps, out_dir=args.out,
                          seed=args.seed, repeats=args.repeats, folds=args.folds, finalize=args.finalize,
                          patience=args.patience, season=args.season, arima=args.arima, features=features,
                          hidden_size=args.hidden, delta=not args.level)
    print("\n".join(report.lines()))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m torchworks.cli.sequence_cmd forecast ...``), same error convention."""
    return standalone_main(add_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())

"""The distillation benchmark protocol (issue 7): resnet56 -> resnet20 on CIFAR-10, every method, one budget.

Runs resnet20 without distillation and distilled from the shipped resnet56 teacher with each of the 14
RepDistiller methods (KD, FitNet, AT, SP, CC, VID, RKD, PKT, AB, FT, FSP, NST, CRD, OFD) plus DKD and DIST, at
RepDistiller's schedule rescaled to the budget (``protocol_plan``), then a second seed for the baseline and the
top 4 methods while the measured times say it fits. Everything is resumable: re-running skips finished runs and
continues an interrupted one from its last checkpoint. Then ``report`` writes the protocol section of
``docs/results/distill.md`` and ships the best distilled resnet20::

    nice -n 15 python benchmarks/distill/protocol.py --dry-run      # the queue, the schedule, the time estimate
    nice -n 15 python benchmarks/distill/protocol.py                # run (about 2 hours on 2 cores); Ctrl-C stops
    nice -n 15 python benchmarks/distill/protocol.py                # ... and the same command resumes
    nice -n 15 python benchmarks/distill/protocol.py report         # docs + model export
    python benchmarks/distill/protocol.py --tiny                    # a smoke run: a few steps per method

The first start measures the costs (about 2 minutes; saved in ``results/calibration.json``, which ``--dry-run``
and ``report`` reuse) and computes the schedule from them once, when the state file is created; later starts
keep it, and ``--budget-minutes`` then only decides the second seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from protocol_plan import (  # noqa: E402
    BASELINE,
    DISTILLED,
    MAIN_ORDER,
    TOP_SEEDED,
    calibrate,
    compute_schedule,
    costs_from_dict,
    costs_to_dict,
    run_name,
    tiny_schedule,
)
from protocol_queue import (  # noqa: E402
    STATE_FILE,
    Queue,
    exclusive,
    load_state,
    projected_finish,
    run_child,
    save_state,
    seed_order,
)

ROOT = HERE.parents[1]
RESULTS = HERE / "results"
CALIBRATION = "calibration.json"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", default="run", choices=["run", "report", "calibrate", "_run"])
    p.add_argument("target", nargs="?", help=argparse.SUPPRESS)  # _run: the run's config JSON
    p.add_argument("--dry-run", action="store_true", help="print the queue and the time estimate; run nothing")
    p.add_argument("--tiny", action="store_true", help="a few steps on a small subset (tests and smoke runs)")
    p.add_argument("--only", help="comma-separated methods to run this time (e.g. none,kd,crd)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    p.add_argument("--workers", type=int, help="runs in parallel (default: cores // threads; 0: in-process)")
    p.add_argument("--budget-minutes", type=float, help="wall-time budget (default 120); sets the schedule when "
                                                        "the state is created, and later decides the second seeds")
    p.add_argument("--results", type=Path, help="state/calibration directory (default benchmarks/distill/results; "
                                                "runs/distill_protocol_tiny with --tiny)")
    p.add_argument("--runs-dir", type=Path, help="run directories (default runs/distill_protocol[_tiny])")
    p.add_argument("--data", default="cifar10", choices=["cifar10", "synthetic"], help=argparse.SUPPRESS)
    p.add_argument("--recalibrate", action="store_true", help="measure the costs again for --dry-run / report")
    p.add_argument("--reuse-calibration", action="store_true",
                   help="start from the saved calibration instead of measuring again (a new state normally measures)")
    p.add_argument("--calibration-steps", type=int, default=5)
    p.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)  # simulate a kill (tests; in-process)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "distill.md", help="report: the file")
    p.add_argument("--no-export", action="store_true", help="report: do not export the best student")
    return p


def _paths(args) -> tuple[Path, Path]:
    tiny_dir = ROOT / "runs" / "distill_protocol_tiny"  # smoke runs stay out of the repository's results
    results = args.results or (tiny_dir if args.tiny else RESULTS)
    runs = args.runs_dir or (tiny_dir if args.tiny else ROOT / "runs" / "distill_protocol")
    return results, runs


def _costs(args, results: Path):
    path = results / CALIBRATION
    if path.is_file() and not args.recalibrate:
        return costs_from_dict(json.loads(path.read_text()))
    print(f"measuring per-step costs ({args.calibration_steps} steps per method, 1 thread) ...", flush=True)
    costs = calibrate(steps=args.calibration_steps, dataset=args.data)
    results.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(costs_to_dict(costs), indent=1) + "\n")
    return costs


def new_state(args, results: Path) -> dict:
    """A fresh state: the schedule computed from the costs (or the tiny one) and frozen here."""
    from dataclasses import asdict

    budget = args.budget_minutes or 120.0
    workers = _workers(args)
    costs = None if args.tiny else _costs(args, results)
    schedule = tiny_schedule() if args.tiny else compute_schedule(costs, budget, max(1, workers))
    methods = [*MAIN_ORDER]
    return {
        "version": 1, "created": time.strftime("%Y-%m-%d %H:%M:%S"), "tiny": args.tiny, "dataset": args.data,
        "budget_minutes": budget, "workers": workers, "threads": args.threads, "schedule": asdict(schedule),
        "schedule_text": schedule.describe(), "costs": costs and costs_to_dict(costs),
        "estimates_s": {m: costs.run_s(m, schedule.steps) for m in methods} if costs else {},
        "elapsed_s": 0.0, "runs": {},
    }


def _workers(args) -> int:
    if args.workers is not None:
        return args.workers
    return max(1, (os.cpu_count() or 1) // args.threads)


def dry_run(state: dict, only: list[str] | None) -> float:
    """Prints the queue with per-run estimates; returns the projected wall minutes of what is left."""
    est, runs = state["estimates_s"], state["runs"]
    methods = [m for m in MAIN_ORDER if only is None or m in only]
    workers = max(1, state["workers"])
    print(f"schedule: {state['schedule_text']}")
    if state.get("costs"):
        c = state["costs"]
        print(f"costs: plain student step {1e3 * c['step_s'][BASELINE]:.0f} ms, eval {c['eval_s']:.1f} s, "
              f"set-up {c['setup_s']:.1f} s ({c['note']})")
    print(f"budget {state['budget_minutes']:.0f} min, {state['workers']} worker(s) x {state['threads']} thread(s)")
    print(f"{'run':10s} {'status':9s} {'est. min':>8s}  overhead vs plain step")
    queued = []
    for m in methods:
        name, st = run_name(m, 0), runs.get(run_name(m, 0), {}).get("status", "pending")
        e = est.get(m, 0.0)
        ratio = state["costs"]["step_s"][m] / state["costs"]["step_s"][BASELINE] if state.get("costs") else 0
        print(f"{name:10s} {st:9s} {e / 60:8.1f}  {ratio:.2f}x")
        if st != "finished":
            queued.append(e)
    distilled = [est[m] for m in methods if m in DISTILLED and m in est]
    mean = sum(distilled) / max(1, len(distilled))
    order = seed_order(state, methods)  # known once every seed-0 run has ended
    if order is not None:
        seeds = [(run_name(m, 1), est.get(m, 0.0)) for m in order]
    else:
        seeds = [(run_name(BASELINE, 1), est.get(BASELINE, 0.0))] + [(f"top{i}-s1", mean)
                                                                     for i in range(1, TOP_SEEDED + 1)]
    for name, e in seeds:
        st = runs.get(name, {}).get("status", "if time allows")
        print(f"{name:10s} {st:9s} {e / 60:8.1f}")
        if st not in ("finished", "skipped"):
            queued.append(e)
    total = projected_finish(0.0, [], queued, workers)
    print(f"estimate: {sum(queued) / 60:.0f} core-min of runs left, about {total / 60:.0f} min wall on {workers} "
          f"worker(s) (second seeds included; {state.get('elapsed_s', 0) / 60:.0f} min spent so far)")
    return total / 60


def _stop(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "_run":
        return run_child(args.target)
    import torch

    torch.set_num_threads(args.threads)
    results, runs_dir = _paths(args)
    if args.command == "calibrate":
        args.recalibrate = True
        _costs(args, results)
        return 0
    if args.command == "report":
        from protocol_report import report

        state = load_state(results / STATE_FILE) or new_state(args, results)  # no state yet: the plan
        report(state, args.out, export=not args.no_export)
        return 0
    only = [m.strip().lower() for m in args.only.split(",")] if args.only else None
    unknown = [m for m in only or [] if m not in MAIN_ORDER]
    if unknown:
        raise SystemExit(f"--only: unknown method(s) {unknown}; choose from {', '.join(MAIN_ORDER)}")
    path = results / STATE_FILE
    state = load_state(path)
    if state is not None and state["tiny"] != args.tiny:
        raise SystemExit(f"{path} holds a {'tiny' if state['tiny'] else 'full'} protocol; use another --results")
    if state is None:
        # The schedule is frozen when the state is created: measure the machine as it is now, unless told not to.
        args.recalibrate = args.recalibrate or not (args.dry_run or args.reuse_calibration)
        state = new_state(args, results)
    else:
        if args.budget_minutes:
            state["budget_minutes"] = args.budget_minutes
        state["workers"], state["threads"] = _workers(args), args.threads
    if args.dry_run:
        dry_run(state, only)
        return 0
    previous = signal.signal(signal.SIGTERM, _stop)  # `kill <pid>` stops like Ctrl-C: children too, state saved
    try:
        with exclusive(results):
            save_state(path, state)
            Queue(path, state, runs_dir, state["workers"], only, stop_after=args.stop_after).run()
    except KeyboardInterrupt:
        print(f"stopped; the state is saved in {path}: the same command resumes", flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    done = sum(r["status"] == "finished" for r in state["runs"].values())
    print(f"{done} run(s) finished; state in {path}; next: protocol.py report"
          + (" --results ..." if args.results else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

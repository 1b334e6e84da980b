"""The protocol's resumable queue: a JSON state file, one engine run per entry, seeds decided from measured times.

State (``<results>/protocol_state.json``, rewritten atomically after every change): the frozen schedule and the
costs it came from, the protocol's accumulated wall time, and one record per run (``kd-s0``): status
(``running`` / ``finished`` / ``failed`` / ``skipped``), metrics, and one timing segment per session it ran in.
A finished run is never redone; any other run continues from ``<runs>/<name>/checkpoints/last.ckpt`` through the
engine's exact resume, or starts afresh when it has no checkpoint.

With ``workers >= 1`` every run is a child process (``protocol.py _run <config.json>``, output in the run
directory's ``log.txt``) and this process is the only writer of the state; ``workers = 0`` runs in-process (tests).
Stop with Ctrl-C (the children share the terminal's process group and stop too): the next start resumes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from protocol_plan import BASELINE, DISTILLED, MAIN_ORDER, TOP_SEEDED, run_config, run_name

STATE_FILE = "protocol_state.json"
RESULT_FILE = "result.json"
CONFIG_FILE = "run_config.json"
PID_FILE = "child.pid"


class Interrupted(RuntimeError):
    """Raised inside a run by ``stop_after`` to simulate a kill (tests)."""


# --- state file -------------------------------------------------------------------------------------------------
def load_state(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is none."""
    return json.loads(path.read_text()) if path.is_file() else None


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Writes the state atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def exclusive(results: Path) -> Iterator[None]:
    """Refuses a second queue process on the same results directory."""
    results.mkdir(parents=True, exist_ok=True)
    with open(results / ".protocol.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RuntimeError(f"another protocol process is using {results}") from None
        yield


# --- one run ----------------------------------------------------------------------------------------------------
class StepClock:
    """Wraps ``task.training_step``: the CPU/wall time between consecutive calls is one full engine step
    (data, forward, backward, SGD; an evaluation or checkpoint now and then, which the median ignores)."""

    def __init__(self, fn: Callable[..., Any], stop_after: int | None = None) -> None:
        self.fn, self.stop_after = fn, stop_after
        self.cpu: list[float] = []
        self.wall: list[float] = []
        self.calls = 0
        self._prev: tuple[float, float] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise Interrupted(f"stopped after {self.calls} steps (simulated kill)")
        now = (time.process_time(), time.perf_counter())
        if self._prev is not None:
            self.cpu.append(now[0] - self._prev[0])
            self.wall.append(now[1] - self._prev[1])
        self._prev = now
        self.calls += 1
        return self.fn(*args, **kwargs)


def _median(values: list[float]) -> float | None:
    return sorted(values)[len(values) // 2] if values else None


def execute_run(config: dict[str, Any], stop_after: int | None = None) -> dict[str, Any]:
    """Trains one run through the engine, resuming from its ``last.ckpt`` when there is one.

    Returns:
        ``{"segment": timing of this session, "metrics": accuracies}`` (metrics only when the run finished).
    """
    import torchworks.distill.task  # noqa: F401  (registers the distill task)
    from torchworks.core.config import to_dict
    from torchworks.engine.config import load_run_config
    from torchworks.engine.logging import read_csv
    from torchworks.engine.run import build_task
    from torchworks.engine.trainer import Trainer

    w0, c0 = time.perf_counter(), time.process_time()
    run_cfg, task_cfg = load_run_config(config)
    out = Path(run_cfg.out_dir)
    last = out / "checkpoints" / "last.ckpt"
    resume = last if last.is_file() else None
    from_step = 0
    if resume is not None:
        from torchworks.engine.checkpointing import read_training_checkpoint

        from_step = int(read_training_checkpoint(resume)["step"])
    trainer = Trainer(run_cfg.trainer, seed=run_cfg.seed, run_config=to_dict(run_cfg))
    task = build_task(run_cfg, task_cfg)
    clock = StepClock(task.training_step, stop_after)
    task.training_step = clock
    segment = {"from_step": from_step, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        result = trainer.fit(task, out, resume=resume, overwrite=resume is None)
    except BaseException as exc:  # Ctrl-C included: the caller records the time this session spent
        exc.protocol_segment = _close(segment, clock, from_step, w0, c0)
        raise
    _close(segment, clock, from_step, w0, c0)
    rows, _ = read_csv(out / "metrics.csv")
    evals = [[int(r["step"]), r["val/acc"]] for r in rows if "val/acc" in r]
    best = max(evals, key=lambda e: e[1]) if evals else [None, None]
    metrics = {"last_acc": result.metrics.get("val/acc"), "last_loss": result.metrics.get("val/loss"),
               "best_acc": best[1], "best_step": best[0], "steps": result.step, "evals": evals,
               "checkpoint": str(last)}
    return {"segment": segment, "metrics": metrics}


def _close(segment: dict[str, Any], clock: StepClock, from_step: int, w0: float, c0: float) -> dict[str, Any]:
    step_cpu, step_wall = _median(clock.cpu), _median(clock.wall)
    segment.update(to_step=from_step + clock.calls, wall_s=time.perf_counter() - w0, cpu_s=time.process_time() - c0,
                   step_cpu_ms=step_cpu and 1e3 * step_cpu, step_wall_ms=step_wall and 1e3 * step_wall,
                   timed_steps=len(clock.cpu))
    return segment


# --- decisions --------------------------------------------------------------------------------------------------
def projected_finish(elapsed: float, running_left: list[float], queued: list[float], workers: int) -> float:
    """When the last run ends if ``queued`` runs start in order on the first free of ``workers`` workers.

    ``running_left`` are the remaining seconds of runs in progress (each holds a worker).
    """
    free = sorted([*running_left, *[0.0] * max(0, workers - len(running_left))])
    for q in queued:
        free[0] += q
        free.sort()
    return elapsed + (max(free) if free else 0.0)


def seed_order(state: dict[str, Any], methods: list[str]) -> list[str] | None:
    """Methods to repeat with seed 1: the baseline, then the top distilled ones by last accuracy (then best).

    None while a seed-0 run of ``methods`` is unfinished (the ranking is not known yet).
    """
    runs = state["runs"]
    main = [run_name(m, 0) for m in methods]
    if any(runs.get(n, {}).get("status") not in ("finished", "failed") for n in main):
        return None
    scored = [(runs[run_name(m, 0)]["metrics"]["last_acc"], runs[run_name(m, 0)]["metrics"]["best_acc"], m)
              for m in methods if m in DISTILLED and runs[run_name(m, 0)]["status"] == "finished"]
    top = [m for *_, m in sorted(scored, reverse=True)[:TOP_SEEDED]]
    return ([BASELINE] if BASELINE in methods else []) + top


class Queue:
    """Runs the protocol's queue to the end of the budget (see the module docstring).

    Args:
        state_path: the JSON state file (its ``schedule`` is used as frozen there).
        state: the loaded state.
        runs_dir: where the run directories go.
        workers: parallel single-run child processes (0: in-process, sequential).
        only: restrict this session to these methods (seed-0 runs, and their seed-1 runs if chosen).
        log: progress printer.
        stop_after: simulate a kill after this many steps of the first run started (tests).
    """

    def __init__(self, state_path: Path, state: dict[str, Any], runs_dir: Path, workers: int,
                 only: list[str] | None = None, log: Callable[[str], None] = print,
                 stop_after: int | None = None) -> None:
        self.path, self.state, self.runs_dir = state_path, state, runs_dir
        self.workers, self.log, self.stop_after = workers, log, stop_after
        self.methods = [m for m in MAIN_ORDER if only is None or m in only]
        self.children: dict[str, tuple[subprocess.Popen, float, Any]] = {}
        self._tick = time.perf_counter()

    # state bookkeeping
    def save(self) -> None:
        now = time.perf_counter()
        self.state["elapsed_s"] = self.state.get("elapsed_s", 0.0) + now - self._tick
        self._tick = now
        save_state(self.path, self.state)

    def record(self, name: str, outcome: dict[str, Any] | None, error: str | None = None) -> None:
        rec = self.state["runs"][name]
        if outcome is not None:
            rec.setdefault("segments", []).append(outcome["segment"])
            rec["wall_s"] = sum(s["wall_s"] for s in rec["segments"])
            rec["cpu_s"] = sum(s["cpu_s"] for s in rec["segments"])
        if error is None and outcome is not None and outcome.get("metrics"):
            rec.update(status="finished", metrics=outcome["metrics"], finished=time.strftime("%Y-%m-%d %H:%M:%S"),
                       error=None)
            m = outcome["metrics"]
            self.log(f"finished {name}: last acc {m['last_acc']:.4f}, best {m['best_acc']:.4f} "
                     f"({rec['wall_s'] / 60:.1f} min)")
        else:
            rec.update(status="failed" if error else "interrupted", error=error)
            if error:
                self.log(f"FAILED {name}: {error.splitlines()[-1] if error else ''}")
        self.save()

    def estimate_s(self, name: str) -> float:
        """Expected wall seconds of a whole run: its finished seed-0 twin's measured wall time, else the plan's
        CPU estimate scaled by how much slower (or faster) than planned the finished runs were."""
        runs, planned = self.state["runs"], self.state.get("estimates_s", {})
        method = runs.get(name, {}).get("method", name.rsplit("-s", 1)[0])
        twin = runs.get(run_name(method, 0), {})
        if twin.get("status") == "finished":
            return twin["wall_s"]
        done = [(r["wall_s"], planned[r["method"]]) for r in runs.values()
                if r.get("status") == "finished" and planned.get(r["method"])]
        speed = sum(w for w, _ in done) / sum(p for _, p in done) if done else 1.0
        return speed * planned.get(method, 0.0)

    def _left_s(self, name: str, started: float, now: float) -> float:
        """Expected remaining wall seconds of a run in progress (earlier sessions' segments count as done)."""
        before = sum(s["wall_s"] for s in self.state["runs"][name].get("segments", []))
        return max(0.0, self.estimate_s(name) - before - (now - started))

    # choosing the next run
    def next_run(self) -> str | None:
        runs = self.state["runs"]
        for m in self.methods:
            name = run_name(m, 0)
            rec = runs.setdefault(name, {"method": m, "seed": 0, "status": "pending"})
            if rec["status"] != "finished" and name not in self.children and not rec.get("_tried"):
                return name
        order = seed_order(self.state, self.methods)
        if order is None:  # the ranking is not known yet: only the baseline's second seed can start
            order = [BASELINE] if BASELINE in self.methods else []
        for m in order:
            name = run_name(m, 1)
            rec = runs.setdefault(name, {"method": m, "seed": 1, "status": "pending"})
            if rec["status"] == "finished" or name in self.children or rec.get("_tried"):
                continue
            now = time.perf_counter()
            left = [self._left_s(n, t0, now) for n, (_, t0, _) in self.children.items()]
            finish = projected_finish(self.state.get("elapsed_s", 0.0) + now - self._tick, left,
                                      [self.estimate_s(name)], max(1, self.workers))
            budget = 60 * self.state["budget_minutes"]
            if finish > budget:
                if rec["status"] != "skipped":
                    rec.update(status="skipped", error=f"projected end {finish / 60:.0f} min > budget "
                                                       f"{budget / 60:.0f} min")
                    self.log(f"skipping {name}: {rec['error']}")
                    self.save()
                continue
            return name
        return None

    def config_for(self, name: str) -> dict[str, Any]:
        rec = self.state["runs"][name]
        return run_config(rec["method"], rec["seed"], _schedule(self.state), str(self.runs_dir / name),
                          threads=self.state["threads"], dataset=self.state["dataset"])

    # running
    def run(self) -> None:
        """Runs until nothing is left that fits; returns when every started run has ended."""
        try:
            if self.workers == 0:
                self._run_inline()
            else:
                self._run_children()
        finally:
            for rec in self.state["runs"].values():
                rec.pop("_tried", None)
            self.save()

    def _run_inline(self) -> None:
        while (name := self.next_run()) is not None:
            self._start_record(name)
            try:
                outcome = execute_run(self.config_for(name), stop_after=self.stop_after)
            except BaseException as exc:
                import traceback

                self.state["runs"][name]["_tried"] = True
                partial = {"segment": exc.protocol_segment} if hasattr(exc, "protocol_segment") else None
                if isinstance(exc, Interrupted | KeyboardInterrupt):
                    self.log(f"interrupted {name}: {exc!r}")
                    self.record(name, partial)
                    raise
                self.record(name, partial, error=traceback.format_exc(limit=4))
                continue
            self.record(name, outcome)
            self.stop_after = None

    def _start_record(self, name: str) -> None:
        rec = self.state["runs"][name]
        resumed = (self.runs_dir / name / "checkpoints" / "last.ckpt").is_file()
        rec.update(status="running", attempts=rec.get("attempts", 0) + 1)
        self.log(f"{'resuming' if resumed else 'starting'} {name}")
        self.save()

    def _run_children(self) -> None:
        try:
            self._children_loop()
        except KeyboardInterrupt:  # stop the children too (a terminal's Ctrl-C reached them already), keep their time
            deadline = time.monotonic() + 10
            for name, (proc, _, logf) in list(self.children.items()):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                    try:
                        proc.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                logf.close()
                result = self.runs_dir / name / RESULT_FILE
                self.record(name, json.loads(result.read_text()) if result.is_file() else None)
            self.children.clear()
            raise

    def _children_loop(self) -> None:
        script = Path(__file__).with_name("protocol.py")
        while True:
            while len(self.children) < self.workers and (name := self.next_run()) is not None:
                run_dir = self.runs_dir / name
                if _orphan_alive(run_dir):
                    self.state["runs"][name]["_tried"] = True
                    self.log(f"not starting {name}: a child of an earlier session is still training it "
                             f"(pid {(run_dir / PID_FILE).read_text().strip()}); stop it or wait, then re-run")
                    continue
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / RESULT_FILE).unlink(missing_ok=True)
                config = self.config_for(name)
                if self.stop_after is not None:  # test hook: the first child simulates a kill
                    config["protocol_stop_after"], self.stop_after = self.stop_after, None
                (run_dir / CONFIG_FILE).write_text(json.dumps(config, indent=1))
                self._start_record(name)
                logf = open(run_dir / "log.txt", "a")  # noqa: SIM115  (closed when the child ends)
                env = {**os.environ, "OMP_NUM_THREADS": str(self.state["threads"])}
                proc = subprocess.Popen([sys.executable, str(script), "_run", str(run_dir / CONFIG_FILE)],
                                        stdout=logf, stderr=subprocess.STDOUT, env=env)
                (run_dir / PID_FILE).write_text(str(proc.pid))
                self.children[name] = (proc, time.perf_counter(), logf)
            if not self.children:
                return
            time.sleep(2.0)
            self.save()
            for name, (proc, _, logf) in list(self.children.items()):
                if proc.poll() is None:
                    continue
                logf.close()
                del self.children[name]
                result = self.runs_dir / name / RESULT_FILE
                outcome = json.loads(result.read_text()) if result.is_file() else None
                if proc.returncode == 0 and outcome is not None:
                    self.record(name, outcome)
                else:
                    self.state["runs"][name]["_tried"] = True
                    tail = (self.runs_dir / name / "log.txt").read_text()[-2000:]
                    self.record(name, outcome, error=f"exit code {proc.returncode}\n{tail}")


def _orphan_alive(run_dir: Path) -> bool:
    """Whether the child that last trained ``run_dir`` still runs (its parent was killed without it)."""
    try:
        pid = int((run_dir / PID_FILE).read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return str(run_dir / CONFIG_FILE).encode() in cmdline  # a reused pid would show another command line


def _schedule(state: dict[str, Any]):
    from protocol_plan import Schedule

    return Schedule(**state["schedule"])


def run_child(config_path: str) -> int:
    """Entry point of a child process: one run, its outcome written beside its config."""
    config = json.loads(Path(config_path).read_text())
    stop_after = config.pop("protocol_stop_after", None)
    out = Path(config["out_dir"]) / RESULT_FILE
    try:
        outcome = execute_run(config, stop_after=stop_after)
    except BaseException as exc:  # leave the time spent for the parent, then fail
        if hasattr(exc, "protocol_segment"):
            _write_json(out, {"segment": exc.protocol_segment, "metrics": None})
        raise
    _write_json(out, outcome)
    return 0


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)

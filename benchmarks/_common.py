"""What the benchmark scripts share: their section of a results file, the machine they ran on, a resumable run store.

A script under ``benchmarks/<area>/`` imports it after putting this folder on the path::

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from _common import Machine, RunStore, write_section

* Sections: a results file (``docs/results/<area>.md``) is shared by several scripts; each owns the text between
  ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` and rewrites only that, atomically.
* Machine: what the numbers were measured on (CPU, cores, torch and its threads, the load average at the start and
  at the end), measured rather than assumed; the load says how far wall times are inflated by other jobs.
* RunStore: a JSON file of jobs that several processes share (claim, mark, result); every change re-reads the file
  under an exclusive lock and writes it back atomically, so a queue survives kills and never loses a result.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import platform
import socket
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from torchworks.core.atomic import atomic_write_text  # re-exported: the scripts import it from here

__all__ = ["Machine", "RunStore", "atomic_write_text", "exclusive", "load_average", "markers", "read_section",
           "replace_section", "write_section"]

T = TypeVar("T")


# --- sections of a results file ---------------------------------------------------------------------------------
def markers(name: str) -> tuple[str, str]:
    """``("<!-- name:start -->", "<!-- name:end -->")``."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def replace_section(doc: str, name: str, body: str, heading: str | None = None) -> str:
    """``doc`` with the section ``name`` holding ``body``; a missing section is appended (after ``heading``).

    Raises:
        ValueError: a marker is missing or repeated, or the end marker comes first.
    """
    start, end = markers(name)
    n_start, n_end = doc.count(start), doc.count(end)
    block = f"{start}\n{body.strip()}\n{end}"
    if n_start == n_end == 0:
        sep = "" if not doc or doc.endswith("\n\n") else ("\n" if doc.endswith("\n") else "\n\n")
        title = f"{heading}\n\n" if heading else ""
        return f"{doc}{sep}{title}{block}\n"
    if n_start != 1 or n_end != 1:
        raise ValueError(f"section {name!r}: expected one start and one end marker, found {n_start} and {n_end}")
    i, j = doc.index(start), doc.index(end)
    if j < i:
        raise ValueError(f"section {name!r}: the end marker comes before the start marker")
    return doc[:i] + block + doc[j + len(end):]


def read_section(doc: str, name: str) -> str | None:
    """The text between the markers of ``name`` (markers excluded), or None if the section is absent."""
    start, end = markers(name)
    if start not in doc or end not in doc:
        return None
    return doc[doc.index(start) + len(start):doc.index(end)].strip("\n")


def write_section(path: str | Path, name: str, body: str, heading: str | None = None,
                  title: str | None = None) -> None:
    """Rewrites the section ``name`` of the file at ``path`` atomically, keeping the rest byte for byte.

    Args:
        heading: put before the section when it is appended (the file had no such section).
        title: the first line of a file that does not exist yet (e.g. ``"# Sequence models"``).
    """
    p = Path(path)
    doc = p.read_text(encoding="utf-8") if p.exists() else (f"{title}\n\n" if title else "")
    atomic_write_text(p, replace_section(doc, name, body, heading))


# --- the machine ------------------------------------------------------------------------------------------------
def load_average() -> float:
    """The 1-minute load average (NaN where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


@dataclass
class Machine:
    """The machine a benchmark ran on. ``Machine.measure()`` at the start, ``.finish()`` at the end.

    ``cores`` is ``os.cpu_count()``; ``load_start`` / ``load_end`` are 1-minute load averages: above ``cores``,
    other jobs competed for the CPU and wall times are inflated (process CPU time much less so).
    """

    arch: str
    cpu: str
    cores: int
    torch: str
    threads: int
    python: str
    load_start: float
    load_end: float | None = None

    @classmethod
    def measure(cls, threads: int | None = None) -> Machine:
        """The machine now; ``threads`` defaults to ``torch.get_num_threads()``."""
        try:
            import torch

            version, n = torch.__version__, threads or torch.get_num_threads()
        except ImportError:
            version, n = "not installed", threads or 1
        return cls(platform.machine(), _cpu_model(), os.cpu_count() or 1, version, n, platform.python_version(),
                   load_average())

    def finish(self) -> Machine:
        """Records the load average at the end of the measurement; returns self."""
        self.load_end = load_average()
        return self

    @property
    def busy(self) -> bool:
        """Whether the load exceeded the core count at the start or the end."""
        return max(self.load_start, self.load_end or 0.0) > self.cores

    def load_text(self) -> str:
        end = "" if self.load_end is None else f", {self.load_end:.1f} at the end"
        return f"load average {self.load_start:.1f} at the start{end}"

    def describe(self) -> str:
        """One line, e.g. ``x86_64 AMD EPYC 7B13, 8 cores, torch 2.13.0+cpu, 1 torch thread, Python 3.12.3, load
        average 0.4 at the start, 1.2 at the end``."""
        return (f"{self.arch} {self.cpu}, {self.cores} cores, torch {self.torch}, {self.threads} torch "
                f"thread{'s' if self.threads != 1 else ''}, Python {self.python}, {self.load_text()}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Machine:
        return cls(**data)


# --- the resumable run store ------------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def exclusive(lock: str | Path, what: str = "this folder") -> Iterator[None]:
    """Holds a non-blocking exclusive lock on the file ``lock`` while the block runs.

    Raises:
        RuntimeError: another process holds it (naming ``what``).
    """
    p = Path(lock)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RuntimeError(f"another process is using {what}") from None
        yield


class RunStore:
    """A JSON state file of jobs, shared safely by several processes.

    ``data`` is the whole file: ``initial`` until the file exists, with the jobs under ``data[jobs_key]``
    (``{job_id: {"status": ..., "result": ..., ...}}``). Every change (:meth:`mark`, :meth:`claim`,
    :meth:`update`) re-reads the file under an exclusive ``fcntl`` lock on ``<file>.lock``, applies the change and
    writes the file back atomically, so two workers never lose each other's results. A worker *claims* a job
    before running it: the job is marked ``running`` with the worker's pid and host, and other workers skip it
    while that process is alive; a job left ``running`` by a process that died can be claimed again.

    Args:
        path: the JSON file (created on the first write).
        initial: the content of a new file.
        check: called with the content read from disk before it is used (e.g. to refuse another plan's file).
        jobs_key: where the jobs are.
        done_status: the status of a finished job (never claimed again).
        sort_keys: keys sorted in the file (stable diffs of a committed state).
    """

    def __init__(self, path: str | Path, initial: dict[str, Any], check: Callable[[dict[str, Any]], None] | None = None,
                 jobs_key: str = "jobs", done_status: str = "done", sort_keys: bool = True) -> None:
        self.path = Path(path)
        self.data: dict[str, Any] = copy.deepcopy(initial)
        self.data.setdefault(jobs_key, {})
        self._check, self.jobs_key, self.done_status, self.sort_keys = check, jobs_key, done_status, sort_keys
        self.refresh()

    @property
    def jobs(self) -> dict[str, dict[str, Any]]:
        return self.data[self.jobs_key]

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Holds the exclusive lock of the file (blocking until other processes release it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read(self) -> None:
        if not self.path.exists():
            return
        data = json.loads(self.path.read_text(encoding="utf-8"))
        if self._check is not None:
            self._check(data)
        data.setdefault(self.jobs_key, {})
        self.data = data

    def _write(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=1, sort_keys=self.sort_keys) + "\n")

    def refresh(self) -> None:
        """Re-reads the file (other processes may have changed it)."""
        with self.locked():
            self._read()

    def save(self) -> None:
        """Writes the in-memory state as it is (a new file, or a change made in place by a single writer)."""
        with self.locked():
            self._write()

    def update(self, change: Callable[[dict[str, Any]], T]) -> T:
        """Re-reads the file, applies ``change(data)`` and writes it back, all under the lock; returns its result."""
        with self.locked():
            self._read()
            out = change(self.data)
            self._write()
            return out

    def status(self, job_id: str) -> str | None:
        return self.jobs.get(job_id, {}).get("status")

    def done(self, job_id: str) -> bool:
        return self.status(job_id) == self.done_status

    def result(self, job_id: str) -> Any:
        return self.jobs.get(job_id, {}).get("result")

    def mark(self, job_id: str, **fields: Any) -> None:
        """Sets ``fields`` of the job (creating it)."""
        self.update(lambda d: d[self.jobs_key].setdefault(job_id, {}).update(fields))

    def claim(self, job_id: str, **fields: Any) -> bool:
        """Marks ``job_id`` running by this process unless it is done or a live process on this host runs it."""
        me, host = os.getpid(), socket.gethostname()

        def take(data: dict[str, Any]) -> bool:
            job = data[self.jobs_key].get(job_id, {})
            owner = job.get("pid")
            if job.get("status") == self.done_status or (
                    job.get("status") == "running" and owner and owner != me and job.get("host") == host
                    and _alive(int(owner))):
                return False
            data[self.jobs_key].setdefault(job_id, {}).update(status="running", pid=me, host=host, **fields)
            return True

        with self.locked():
            self._read()
            if not take(self.data):
                return False
            self._write()
            return True

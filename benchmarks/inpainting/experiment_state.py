"""The experiment's state file, shared safely by several worker processes.

Every change re-reads the file under an exclusive ``fcntl`` lock (``<state>.lock``), applies the change and writes
the file back atomically, so two workers (``experiment.py --workers``, or two shells) never lose each other's
results. A worker *claims* a job before running it: the job is marked ``running`` with the worker's pid and host,
and other workers skip it while that process is alive. A job left ``running`` by a process that died (the end of
a session) can be claimed again and resumes from its checkpoint.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from experiment_plan import Preset, plan_hash


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class State:
    """The JSON state file: finished jobs with their results, calibration times; saved atomically under a lock."""

    def __init__(self, path: Path, preset: Preset) -> None:
        self.path, self.hash = path, plan_hash(preset)
        self.data: dict[str, Any] = {"preset": preset.name, "plan_hash": self.hash, "jobs": {}, "calibration": {}}
        self.refresh()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".json.lock"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read(self) -> None:
        if not self.path.exists():
            return
        data = json.loads(self.path.read_text())
        if data.get("plan_hash") != self.hash:
            raise SystemExit(f"{self.path} belongs to another plan (hash {data.get('plan_hash')} != "
                             f"{self.hash}); use another --results-dir or delete it")
        self.data = data

    def _write(self) -> None:
        tmp = self.path.with_suffix(f".json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self.path)

    def refresh(self) -> None:
        """Re-reads the file (other workers may have finished jobs)."""
        with self._locked():
            self._read()

    def done(self, job_id: str) -> bool:
        return self.data["jobs"].get(job_id, {}).get("status") == "done"

    def result(self, job_id: str) -> dict[str, Any] | None:
        return self.data["jobs"].get(job_id, {}).get("result")

    def mark(self, job_id: str, **fields: Any) -> None:
        with self._locked():
            self._read()
            self.data["jobs"].setdefault(job_id, {}).update(fields)
            self._write()

    def set_calibration(self, model: str, value: dict[str, Any] | None) -> None:
        """Stores (or with ``None`` drops) one model's measured step times."""
        with self._locked():
            self._read()
            if value is None:
                self.data["calibration"].pop(model, None)
            else:
                self.data["calibration"][model] = value
            self._write()

    def claim(self, job_id: str, **fields: Any) -> bool:
        """Marks ``job_id`` running by this process unless it is done or a live process already runs it."""
        me, host = os.getpid(), socket.gethostname()
        with self._locked():
            self._read()
            job = self.data["jobs"].get(job_id, {})
            if job.get("status") == "done":
                return False
            owner = job.get("pid")
            if (job.get("status") == "running" and owner and owner != me and job.get("host") == host
                    and _alive(int(owner))):
                return False
            self.data["jobs"].setdefault(job_id, {}).update(status="running", pid=me, host=host, **fields)
            self._write()
            return True

    def save(self) -> None:
        """Writes the in-memory state (a new file, or calibration changed in place)."""
        with self._locked():
            self._write()

"""The experiment's state file: a :class:`_common.RunStore` guarded by the plan's hash, plus measured step times.

The file holds ``{"preset", "plan_hash", "jobs": {job_id: {...}}, "calibration": {model: {...}}}``, keys sorted,
one space of indentation; the lock is ``<state>.lock``. Several workers (``experiment.py --workers``, or two
shells) share it through the store's claims; a job left ``running`` by a dead process resumes from its checkpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import RunStore  # noqa: E402
from experiment_plan import Preset, plan_hash  # noqa: E402


class State(RunStore):
    """The JSON state file: finished jobs with their results, calibration times; saved atomically under a lock.

    Raises:
        SystemExit: the file on disk belongs to another plan (its ``plan_hash`` differs).
    """

    def __init__(self, path: Path, preset: Preset) -> None:
        self.hash = plan_hash(preset)
        super().__init__(path, {"preset": preset.name, "plan_hash": self.hash, "jobs": {}, "calibration": {}},
                         check=self._same_plan)

    def _same_plan(self, data: dict[str, Any]) -> None:
        if data.get("plan_hash") != self.hash:
            raise SystemExit(f"{self.path} belongs to another plan (hash {data.get('plan_hash')} != "
                             f"{self.hash}); use another --results-dir or delete it")

    def set_calibration(self, model: str, value: dict[str, Any] | None) -> None:
        """Stores (or with ``None`` drops) one model's measured step times."""
        def change(data: dict[str, Any]) -> None:
            if value is None:
                data["calibration"].pop(model, None)
            else:
                data["calibration"][model] = value

        self.update(change)

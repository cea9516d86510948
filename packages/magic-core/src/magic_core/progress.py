"""``RUN_DIR/progress.json``: where a run is, for ``magic status`` and requeue scripts.

The contract (read by other tools, so keep it stable)::

    {"status": "running|preempted|done|failed",
     "phase": "<a phase the run declared>|done",
     "step": int, "total": int, "phases_done": [str],
     "history": [{"phase": str, "step": int, "total": int}],
     "last_checkpoint": {"phase": str, "step": int, "path": str, "time": iso8601} | null,
     "resumed_from": {"phase": str, "step": int, "written": iso8601} | null,
     "updated": iso8601, "host": str, "pid": int, "slurm_job_id": str | null}

The phases are the caller's (an attribution run's ``train``, ``query`` and
``backward``; an unlearning run's own, declared by magic-unlearn): the code that
runs them declares them with `ProgressFile.declare` or the ``phases`` argument, and
`start` then refuses any other; ``done`` is reserved for the end. ``history``
lists the phases that ended, in order, with the steps each ran; a phase may
appear twice (an unlearning run evaluates after unlearning and again after
relearning), unlike in ``phases_done``. ``total`` 0: the phase has no steps to
count (an evaluation). Files written before ``history`` existed lack it.
``resumed_from`` names the checkpoint this process continued from (null: it
started afresh); files written before it existed lack it.

Written atomically, at phase changes, checkpoints and the end immediately,
and during a phase at most every ``interval`` seconds (a step costs one clock
read). Only one process of a job should write it (``enabled``: rank 0).
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .atomic import write_json
from .preemption import Preempted

FILENAME = "progress.json"
DONE = "done"  # the phase of a finished run, whoever ran it
STATUSES = ("running", "preempted", "done", "failed")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ProgressFile:
    """The run's progress file; as a context manager it records how the run ended.

    Nothing is written before the first phase starts, so a run refused during
    setup leaves no run directory behind, unless one existed already (a
    rerun), in which case it says ``running`` again at once.
    """

    def __init__(self, run_dir: str | os.PathLike, *, phases: tuple[str, ...] = (),
                 enabled: bool = True, interval: float = 5.0):
        self.path = Path(run_dir) / FILENAME
        self.phases: list[str] = []
        self.declare(*phases)
        self.enabled = enabled
        self.interval = interval
        self.state: dict[str, Any] = {
            "status": "running", "phase": None, "step": 0, "total": 0,
            "phases_done": [], "history": [], "last_checkpoint": None, "resumed_from": None}
        self._written_at: float | None = None
        # The phase a previous process was in when it stopped: until this process
        # starts it again, it has not ended, whatever phase comes next.
        self._interrupted: str | None = None
        if enabled and self.path.is_file():
            try:
                previous = json.loads(self.path.read_text())
            except (OSError, ValueError):
                previous = {}
            for key in ("phase", "step", "total", "phases_done", "history", "last_checkpoint"):
                if key in previous:
                    self.state[key] = previous[key]
            self.state["status"] = "running"
            self._interrupted = self.state["phase"]
            self.write()

    def __enter__(self) -> ProgressFile:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.finish("done")
        else:
            self.finish("preempted" if isinstance(exc, Preempted) else "failed")

    # -- updates ---------------------------------------------------------------
    def declare(self, *phases: str) -> None:
        """The phases the run may enter; `start` refuses others once any are declared."""
        for phase in phases:
            if not isinstance(phase, str) or not phase or phase == DONE:
                raise ValueError(f"a phase is a name other than {DONE!r}, got {phase!r}")
            if phase not in self.phases:
                self.phases.append(phase)

    def start(self, phase: str, total: int, step: int = 0) -> None:
        """Enter ``phase`` (of ``total`` steps, ``step`` already done); the previous one is done."""
        if phase == DONE or (self.phases and phase not in self.phases):
            raise ValueError(f"unknown phase {phase!r}; this run declared "
                             f"{', '.join(self.phases) or 'none'}")
        current = self.state["phase"]
        if current not in (None, phase, DONE):
            if current == self._interrupted:
                self.mark_done(current)
            else:
                self._end(current)
        self._interrupted = None
        self.state.update(status="running", phase=phase, step=step, total=total)
        self.write()

    def _end(self, phase: str) -> None:
        """``phase``, the current one, ran to its end: record it with its steps."""
        self.mark_done(phase)
        entry = {"phase": phase, "step": self.state["step"], "total": self.state["total"]}
        history = self.state["history"]
        if history and history[-1]["phase"] == phase:
            history[-1] = entry  # done again after an interruption: a resumed run re-evaluates
        else:
            history.append(entry)

    def mark_done(self, *phases: str) -> None:
        for phase in phases:
            if phase not in self.state["phases_done"]:
                self.state["phases_done"].append(phase)

    def advance(self, step: int) -> None:
        """``step`` steps of the current phase are done; written if ``interval`` has passed."""
        self.state["step"] = step
        if self._written_at is None or time.monotonic() - self._written_at >= self.interval:
            self.write()

    def checkpoint(self, phase: str, step: int, path: str | os.PathLike, time_iso: str | None = None) -> None:
        self.state["last_checkpoint"] = {"phase": phase, "step": step, "path": str(path),
                                         "time": time_iso or now_iso()}
        self.write()

    def resumed(self, phase: str, step: int, written: str) -> None:
        """This process continues from the checkpoint after ``step`` of ``phase``."""
        self.state["resumed_from"] = {"phase": phase, "step": step, "written": written}
        self.write()

    def finish(self, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        if self._written_at is None and not self.path.is_file():
            return  # refused before the first phase: leave no run directory behind
        self.state["status"] = status
        if status == "done":
            if self.state["phase"] not in (None, DONE):
                self._end(self.state["phase"])
            self.state.update(phase=DONE, step=self.state["total"])
        self.write()

    # -- output ----------------------------------------------------------------
    def write(self) -> None:
        if not self.enabled:
            return
        write_json(self.path, {
            **self.state,
            "updated": now_iso(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        })
        self._written_at = time.monotonic()

"""What a run's loops see of the outside: progress, stop requests, phase checkpoints.

A loop calls `RunControl.after_step` after every finished step with a
function that snapshots its state. The snapshot is taken when the run stops
and, so that a run killed outright (SIGKILL, the OOM killer, a lost node)
loses at most ``checkpoint_every`` seconds, at the first step boundary after
that many seconds passed since the last checkpoint. Between checkpoints a
step costs one clock read and one flag check (one tiny all-reduce under
torch.distributed) and a progress write every few seconds.

A stop request must finish before the scheduler's kill (Slurm's KillWait,
30 s by default). When the run's own earlier checkpoints took longer than
``stop_grace`` to write, the final one would not finish in time (a 7B run's
takes minutes), so the run exits at once and resumes from its last periodic
checkpoint instead, losing at most one interval of steps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .durations import parse_duration
from .phase_checkpoint import Checkpoint, CheckpointStore, Snapshot
from .preemption import Preempted, any_rank, stop_requested
from .progress import ProgressFile

DEFAULT_CHECKPOINT_EVERY = 600.0  # seconds: what a killed run may lose at most
DEFAULT_STOP_GRACE = 20.0  # seconds: well inside Slurm's default KillWait of 30 s
log = logging.getLogger(__name__)


class RunControl:
    """One run's checkpoint store and (rank 0's) progress file.

    ``checkpoint_every``: seconds between periodic checkpoints; None writes
    one only when a stop is requested. ``on_saved(referenced)`` is called
    after each checkpoint with the files outside the checkpoint it lists
    (whoever owns spill files may delete the others). ``saves`` records each
    checkpoint's phase, step, seconds and bytes written. ``stop_grace``:
    seconds a final checkpoint on a stop request may take, judged by the
    slowest earlier one of the same phase (None: always write it).
    """

    def __init__(self, store: CheckpointStore, progress: ProgressFile | None = None, *,
                 checkpoint_every: float | None = DEFAULT_CHECKPOINT_EVERY,
                 stop_grace: float | None = DEFAULT_STOP_GRACE):
        self.store = store
        self.progress = progress
        self.checkpoint_every = checkpoint_every
        self.stop_grace = stop_grace
        self.on_saved: Callable[[set[Path]], None] | None = None
        self.saves: list[dict] = []
        self._durable_at = time.monotonic()
        self._last_checkpoint: tuple[str, int, Path] | None = None  # phase, step, where

    @classmethod
    def for_job(cls, store: CheckpointStore, progress: ProgressFile | None, job) -> RunControl:
        """A control checkpointing as ``job``'s ``output.checkpoint_every`` and
        ``output.stop_grace`` say (default 10 min and 20 s)."""
        return cls(store, progress, checkpoint_every=checkpoint_interval(job),
                   stop_grace=stop_grace(job))

    def begin(self, phase: str, total: int, step: int = 0) -> None:
        if self.progress is not None:
            self.progress.start(phase, total, step)

    def after_step(self, phase: str, step: int, total: int, snapshot: Callable[[], Snapshot]) -> None:
        """``step`` of ``total`` steps of ``phase`` are done; checkpoint when due, and on a stop
        request also raise `Preempted`."""
        if self.progress is not None:
            self.progress.advance(step)
        due = (self.checkpoint_every is not None
               and time.monotonic() - self._durable_at >= self.checkpoint_every)
        stop, due = any_rank(stop_requested() is not None, due)
        if not (stop or due):
            return
        reason = stop_requested() or "another rank"
        # Every rank must agree: a checkpoint is written by all ranks together.
        if stop and self._last_checkpoint is not None and not any_rank(not self._too_slow(phase))[0]:
            last_phase, last_step, last_path = self._last_checkpoint
            log.warning("stopping without a final checkpoint: earlier ones took up to %.0f s, "
                        "more than output.stop_grace (%.0f s); the rerun resumes after %s step %d",
                        self._slowest(phase), self.stop_grace, last_phase, last_step)
            raise Preempted(phase, step, total, last_path, reason,
                            resumes_at=f"{last_phase} step {last_step}")
        path = self.save(phase, step, total, snapshot)
        if stop:
            raise Preempted(phase, step, total, path, reason)

    def _slowest(self, phase: str) -> float:
        """Seconds of the slowest checkpoint written so far in ``phase`` (else in any phase)."""
        same = [s["seconds"] for s in self.saves if s["phase"] == phase]
        return max(same or [s["seconds"] for s in self.saves] or [0.0])

    def _too_slow(self, phase: str) -> bool:
        return self.stop_grace is not None and self._slowest(phase) > self.stop_grace

    def save(self, phase: str, step: int, total: int, snapshot: Callable[[], Snapshot]) -> Path:
        """Write a checkpoint now (every rank calls this at the same step)."""
        t0 = time.perf_counter()
        path = self.store.save(phase, step, total, snapshot())
        if self.on_saved is not None:
            self.on_saved(self.store.referenced)
        seconds = time.perf_counter() - t0
        self.saves.append({"phase": phase, "step": step, "seconds": seconds,
                           "bytes": self.store.last_written})
        log.info("checkpoint after %s step %d/%d: %.2f s, %d bytes written", phase, step, total,
                 seconds, self.store.last_written)
        self._durable_at = time.monotonic()
        self._last_checkpoint = (phase, step, path)
        if self.progress is not None:
            self.progress.checkpoint(phase, step, path)
        return path

    def resume(self, device: str | torch.device = "cpu",
               phases: tuple[str, ...] = ()) -> Checkpoint | None:
        """The verified checkpoint to continue from, or None to start afresh.

        ``phases`` lists the run's phases in order; those before the
        checkpoint's are recorded as done in the progress file.
        """
        if self.progress is not None:
            self.progress.declare(*phases)
        checkpoint = self.store.load(device)
        if checkpoint is not None and self.progress is not None:
            if checkpoint.phase in phases:
                self.progress.mark_done(*phases[: phases.index(checkpoint.phase)])
            self.progress.checkpoint(checkpoint.phase, checkpoint.step, checkpoint.directory,
                                     checkpoint.written)
            self.progress.resumed(checkpoint.phase, checkpoint.step, checkpoint.written)
        if checkpoint is not None:
            self._last_checkpoint = (checkpoint.phase, checkpoint.step, checkpoint.directory)
        self._durable_at = time.monotonic()
        return checkpoint

    def finished(self) -> None:
        """The run's outputs are written: its checkpoint is no longer needed."""
        self.store.clear()


def checkpoint_interval(job, default: float | None = DEFAULT_CHECKPOINT_EVERY) -> float | None:
    """A job's ``output.checkpoint_every`` in seconds (None: off); ``default`` when it has none."""
    value = getattr(getattr(job, "output", None), "checkpoint_every", None)
    return default if value is None else parse_duration(value, "output.checkpoint_every")


def stop_grace(job, default: float | None = DEFAULT_STOP_GRACE) -> float | None:
    """A job's ``output.stop_grace`` in seconds (None: always write the final checkpoint)."""
    value = getattr(getattr(job, "output", None), "stop_grace", None)
    return default if value is None else parse_duration(value, "output.stop_grace")

"""What a run's loops see of the outside: progress, stop requests, phase checkpoints.

A loop calls `RunControl.after_step` after every finished step with a
function that snapshots its state. The snapshot is taken only when the run
stops, so an uninterrupted run pays one flag check per step (one tiny
all-reduce under torch.distributed) and a progress write every few seconds.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .phase_checkpoint import Checkpoint, CheckpointStore, Snapshot
from .preemption import Preempted, stop_agreed, stop_requested
from .progress import ProgressFile


class RunControl:
    """One run's checkpoint store and (rank 0's) progress file."""

    def __init__(self, store: CheckpointStore, progress: ProgressFile | None = None):
        self.store = store
        self.progress = progress

    def begin(self, phase: str, total: int, step: int = 0) -> None:
        if self.progress is not None:
            self.progress.start(phase, total, step)

    def after_step(self, phase: str, step: int, total: int, snapshot: Callable[[], Snapshot]) -> None:
        """``step`` of ``total`` steps of ``phase`` are done; on a stop request, save and raise."""
        if self.progress is not None:
            self.progress.advance(step)
        if not stop_agreed():
            return
        path = self.store.save(phase, step, total, snapshot())
        if self.progress is not None:
            self.progress.checkpoint(phase, step, path)
        raise Preempted(phase, step, total, path, stop_requested() or "another rank")

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
        return checkpoint

    def finished(self) -> None:
        """The run's outputs are written: its checkpoint is no longer needed."""
        self.store.clear()

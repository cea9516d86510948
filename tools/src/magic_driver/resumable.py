"""A run directory that survives preemption: its checkpoints, progress file and signals.

``magic attribute`` and ``magic unlearn`` run inside `resumable_run`: SIGTERM
or SIGUSR1 stop the run after its current step with a phase checkpoint in
``RUN_DIR/checkpoints/`` (the CLI then exits with `EXIT_PREEMPTED`), and
running the same command on the same run directory continues from it.
``--restart`` discards the checkpoint instead. A finished run removes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from magic_core.phase_checkpoint import CheckpointStore
from magic_core.progress import FILENAME as PROGRESS
from magic_core.progress import ProgressFile
from magic_core.run_control import RunControl
from magic_core.typed_config import to_mapping

CHECKPOINTS = "checkpoints"
# Sections that do not change a run's numbers: where it writes, the device
# name (the device type the job resolves to is fingerprinted by the run), and
# the Slurm resources (a timed-out job comes back with a longer time limit).
UNFINGERPRINTED = ("output", "device", "slurm")


def job_fingerprint(job, skip: tuple[str, ...] = ()) -> dict:
    """The job's sections, one fingerprint key each, so that a mismatch names the section.

    ``skip``: sections the run fingerprints itself, as they act.
    """
    return {f"job.{k}": v for k, v in to_mapping(job).items()
            if k not in UNFINGERPRINTED + tuple(skip)}


@contextmanager
def resumable_run(run_dir: Path, job, *, restart: bool = False, is_main: bool = True,
                  skip: tuple[str, ...] = ()) -> Iterator[RunControl]:
    """A `RunControl` for ``run_dir``; the progress file records how the block ends.

    Every rank enters it (the checkpoint store's collectives need all of
    them); only the main rank writes the progress file. The caller calls
    ``control.finished()`` once the run's outputs are written.
    """
    store = CheckpointStore(Path(run_dir) / CHECKPOINTS, job_fingerprint(job, skip))
    if restart:
        store.clear()
        if is_main:
            (Path(run_dir) / PROGRESS).unlink(missing_ok=True)  # its phases and checkpoint are gone
    with ProgressFile(run_dir, enabled=is_main) as progress:
        yield RunControl.for_job(store, progress, job)

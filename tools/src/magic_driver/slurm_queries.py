"""What Slurm says about a job, from whichever of squeue, sacct and scontrol answers."""

from __future__ import annotations

import shutil
import subprocess

_TIMEOUT = 15


def _run(command: list[str]) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def job_state(job_id: str) -> str | None:
    """``RUNNING``, ``PENDING (BeginTime)``, ``COMPLETED``...; None when no tool knows the job.

    squeue knows queued and running jobs, sacct finished ones where accounting
    is kept, and scontrol finished ones for a few minutes (MinJobAge).
    """
    queued = _run(["squeue", "-h", "-j", job_id, "-o", "%T %r"])
    if queued:
        tasks = sorted({line.strip() for line in queued.splitlines()})  # array tasks
        return ", ".join(_with_reason(s) for s in tasks)
    accounted = _run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"])
    if accounted:
        return ", ".join(sorted(set(accounted.split())))
    shown = _run(["scontrol", "-o", "show", "job", job_id])
    if shown:
        states = {f.split("=", 1)[1] for f in shown.split() if f.startswith("JobState=")}
        return ", ".join(sorted(states)) or None
    return None


def _with_reason(line: str) -> str:
    state, _, reason = line.partition(" ")
    return f"{state} ({reason})" if reason and reason != "None" else state

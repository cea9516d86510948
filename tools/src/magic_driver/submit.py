"""`magic submit`: freeze a job into its run directory, render its batch script, sbatch it.

The run directory gets ``slurm/job.yaml`` (the job with every override
applied, so a requeue reruns exactly what was submitted), ``slurm/job.sbatch``
and, once Slurm accepted it, ``slurm/submission.json``; the job's logs go to
``slurm/JOBID.out``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml
from magic_core import ConfigError
from magic_core.atomic import write_json, write_text
from magic_core.typed_config import to_mapping

from .clusters import load_profile
from .job_kinds import build_any_job
from .jobs import read_mapping
from .sbatch_script import ScriptSpec, render
from .slurm_queries import job_state
from .sweep_grid import grid

SLURM_DIR = "slurm"
JOB_FILE = "job.yaml"
SCRIPT = "job.sbatch"
SUBMISSION = "submission.json"


class SubmitError(ConfigError):
    """Slurm refused or is missing: one line, exit 2 (a ConfigError for the CLI)."""


@dataclass(frozen=True)
class Prepared:
    spec: ScriptSpec
    script: str
    job: dict  # the frozen job file's mapping


def prepare(source: str, overrides: tuple[str, ...] = (), params: tuple[str, ...] = (),
            array: bool = False, cluster: str = "local", out_dir: Path | None = None) -> Prepared:
    """Validate everything and render the script; touches no file."""
    data = read_mapping(source)
    job = build_any_job(data, overrides)
    profile = load_profile(cluster)
    if (params or array) and job.kind != "unlearn":
        raise ConfigError("--param/--array sweep unlearning jobs; this is an attribution job "
                          "(submit one job per setting instead)")
    if array and not params:
        raise ConfigError("--array needs the grid: add --param KEY=V1,V2,...")
    if job.kind == "unlearn" and job.slurm.tasks > 1:
        raise ConfigError(f"slurm: unlearning runs in one process, but nodes x tasks_per_node = "
                          f"{job.slurm.tasks}; set slurm.nodes: 1 and slurm.tasks_per_node: 1")
    points = tuple(grid(params)) if params else ()
    for point in points:  # every point must be a valid job before anything is queued
        build_any_job(data, overrides + point)
    run_dir = Path(out_dir or job.output.dir).absolute()
    frozen = to_mapping(job)
    spec = ScriptSpec(
        kind="sweep" if params else job.kind, job_file=run_dir / SLURM_DIR / JOB_FILE,
        run_dir=run_dir, workdir=Path.cwd(), slurm=job.slurm, profile=profile,
        profile_name=cluster, source=_describe(source, overrides, params, array, cluster),
        points=points, params=tuple(params), array=array,
    )
    return Prepared(spec, render(spec), frozen)


def _describe(source, overrides, params, array, cluster) -> str:
    words = [str(source), *(f"--set {o}" for o in overrides), *(f"--param {p}" for p in params)]
    return " ".join(words + (["--array"] if array else []) + [f"--cluster {cluster}"])


@dataclass(frozen=True)
class Submitted:
    job_id: str
    exit_code: int | None  # the job's, with wait=True


_ACTIVE = ("PENDING", "RUNNING", "REQUEUE", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING")


def _refuse_busy_run_dir(run_dir: Path) -> None:
    """A queued or running job of the same run directory would read the files we replace."""
    path = run_dir / SLURM_DIR / SUBMISSION
    if not path.is_file():
        return
    try:
        previous = json.loads(path.read_text()).get("job_id")
    except (OSError, ValueError, AttributeError):
        return
    state = job_state(str(previous)) if previous else None
    if state and any(word in state for word in _ACTIVE):
        raise SubmitError(f"{run_dir} belongs to Slurm job {previous}, which is {state}; wait for "
                          f"it, `scancel {previous}`, or submit with another --out")


class _Staged:
    """Files written for a submission, undone (previous contents back) if Slurm refuses it."""

    def __init__(self):
        self._previous: list[tuple[Path, bytes | None]] = []
        self._new_dirs: list[Path] = []

    def write(self, path: Path, text: str) -> None:
        for folder in reversed([path.parent, *path.parent.parents]):
            if not folder.exists():
                self._new_dirs.append(folder)
        self._previous.append((path, path.read_bytes() if path.is_file() else None))
        write_text(path, text)

    def undo(self) -> None:
        for path, content in reversed(self._previous):
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)
        for folder in reversed(self._new_dirs):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def submit(prepared: Prepared, wait: bool = False) -> Submitted:
    """Write the run directory's slurm/ files and sbatch the script (with ``wait``, to its end)."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise SubmitError("sbatch is not on PATH: submit from a Slurm login node, or look at the "
                          "script with --dry-run")
    spec = prepared.spec
    _refuse_busy_run_dir(spec.run_dir)
    folder = spec.run_dir / SLURM_DIR
    staged = _Staged()
    staged.write(folder / JOB_FILE, yaml.safe_dump(prepared.job, sort_keys=False))
    staged.write(folder / SCRIPT, prepared.script)
    if spec.array:
        # `magic report RUN_DIR` rebuilds the sweep's table from the points this describes.
        staged.write(spec.run_dir / "sweep.json", json.dumps(
            {"params": list(spec.params), "overrides": [], "points": len(spec.points),
             "array": True}, indent=2) + "\n")
    command = [sbatch, "--parsable", *(["--wait"] if wait else []), str(folder / SCRIPT)]
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        staged.undo()
        raise SubmitError(f"cannot run {sbatch}: {exc}") from None
    assert proc.stdout is not None and proc.stderr is not None  # both are pipes
    # --parsable prints "JOBID[;CLUSTER]" at once; with --wait sbatch then blocks until the end.
    first = proc.stdout.readline().strip()
    job_id = first.split(";")[0]
    if not job_id.isdigit():
        proc.wait()
        staged.undo()
        message = (proc.stderr.read().strip().splitlines() or [first or "no job id printed"])[-1]
        raise SubmitError(f"sbatch refused the job ({message}); nothing was submitted")
    write_json(folder / SUBMISSION, {
        "job_id": job_id, "script": str(folder / SCRIPT), "cluster": spec.profile_name,
        "array_tasks": len(spec.points) if spec.array else None,
        "submitted": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": spec.source,
    })
    proc.wait()
    return Submitted(job_id, proc.returncode if wait else None)

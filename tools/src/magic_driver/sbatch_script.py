"""Rendering the batch script of one submitted job (pure: text in, text out)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from .clusters import ClusterProfile
from .exit_codes import EXIT_PREEMPTED
from .slurm_section import SlurmSection


@dataclass(frozen=True)
class ScriptSpec:
    """Everything the script says; paths are absolute so the job runs from anywhere."""

    kind: str  # attribute | unlearn | sweep
    job_file: Path  # the frozen job (overrides applied) in the run directory
    run_dir: Path
    workdir: Path  # where relative paths inside the job resolve (the submit directory)
    slurm: SlurmSection
    profile: ClusterProfile
    profile_name: str
    source: str  # what the user submitted, for the header
    # Sweep grid points, each a list of --set assignments; with `array`, one array task each.
    points: tuple[tuple[str, ...], ...] = ()
    params: tuple[str, ...] = ()  # the sweep's --param values (a sweep in one task)
    array: bool = False


def _q(value) -> str:
    return shlex.quote(str(value))


def sbatch_options(spec: ScriptSpec) -> list[str]:
    s, p = spec.slurm, spec.profile
    logs = spec.run_dir / "slurm" / ("%A_%a.out" if spec.array else "%j.out")
    options = [
        f"--job-name={s.job_name or f'magic-{spec.kind}-{spec.run_dir.name}'}",
        f"--nodes={s.nodes}",
        f"--ntasks-per-node={s.tasks_per_node}",
    ]
    if s.gpus_per_node:
        options.append(f"--gpus-per-node={s.gpus_per_node}")
    if s.cpus_per_task:
        options.append(f"--cpus-per-task={s.cpus_per_task}")
    if s.mem:
        options.append(f"--mem={s.mem}")
    options.append(f"--time={s.time}")
    if s.partition or p.partition:
        options.append(f"--partition={s.partition or p.partition}")
    if s.account or p.account:
        options.append(f"--account={s.account or p.account}")
    if spec.array:
        options.append(f"--array=0-{len(spec.points) - 1}")
    options += [f"--chdir={spec.workdir}", f"--output={logs}", "--open-mode=append"]
    if s.requeue:
        # The warning goes to the run's tasks (not this shell): they checkpoint and exit.
        options += ["--requeue", f"--signal=USR1@{s.checkpoint_before_end}"]
    return options + list(p.sbatch) + list(s.sbatch)


def _run_lines(spec: ScriptSpec) -> list[str]:
    """The srun line(s) of the job, with $run_dir set to where the run writes."""
    srun = " ".join(["srun", *map(_q, spec.profile.srun)])
    magic = spec.profile.magic
    job = _q(spec.job_file)
    if spec.array:
        cases = [f"  {i}) point=({' '.join(f'--set {_q(a)}' for a in point)}) ;;"
                 for i, point in enumerate(spec.points)]
        return [
            "# One grid point per array task, in `magic sweep` order and layout.",
            'case "$SLURM_ARRAY_TASK_ID" in',
            *cases,
            '  *) echo "no grid point for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;',
            "esac",
            f'run_dir={_q(spec.run_dir)}/$(printf %03d "$SLURM_ARRAY_TASK_ID")',
            f'{srun} {magic} unlearn {job} "${{point[@]}}" --out "$run_dir" --quiet',
        ]
    if spec.kind == "sweep":
        params = " ".join(f"--param {_q(p)}" for p in spec.params)
        return [f"run_dir={_q(spec.run_dir)}",
                f'{srun} {magic} sweep {job} {params} --out "$run_dir" --quiet']
    return [f"run_dir={_q(spec.run_dir)}",
            f'{srun} {magic} {spec.kind} {job} --out "$run_dir" --quiet']


def render(spec: ScriptSpec) -> str:
    s = spec.slurm
    lines = [
        "#!/bin/bash",
        f"# Written by `magic submit {spec.source}` for cluster profile {spec.profile_name!r}.",
        *(f"#SBATCH {option}" for option in sbatch_options(spec)),
        "",
        f"# Cluster profile {spec.profile_name!r}.",
        *spec.profile.setup,
        "",
    ]
    if s.tasks > 1:
        lines += [
            "# Every rank meets the first node of the allocation (magic_core.distributed",
            "# derives the port from the job id).",
            'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
            "export MASTER_ADDR",
            "",
        ]
    lines += [
        "# Slurm signals this shell itself only when it cancels, preempts or requeues the",
        "# job, and then it decides what happens next; remember that instead of dying.",
        "stopped_by_slurm=0",
        "trap 'stopped_by_slurm=1' TERM",
        "",
        *_run_lines(spec),
        "status=$?",
    ]
    if s.requeue:
        lines += [
            f'if [ "$status" -eq {EXIT_PREEMPTED} ] && [ "$stopped_by_slurm" -eq 0 ]; then',
            "  # The time-limit warning: the run checkpointed; queue it again to resume.",
            '  scontrol requeue "$SLURM_JOB_ID"',
            "fi",
        ]
    if spec.array:
        lines += [
            "# Each finished point refreshes the sweep's table.",
            f'[ "$status" -eq 0 ] && {spec.profile.magic} report {_q(spec.run_dir)} > /dev/null',
        ]
    lines.append('exit "$status"')
    return "\n".join(lines) + "\n"

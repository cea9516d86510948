"""Cluster commands of `magic`: submit, status and cluster profiles."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from click.shell_completion import CompletionItem


def complete_job(ctx, param, incomplete: str) -> list[CompletionItem]:
    """Job files (the shell's file completion) and shipped presets as preset:NAME."""
    from .presets import PREFIX, list_presets

    presets = [CompletionItem(f"{PREFIX}{p.name}", help=p.description) for p in list_presets()
               if f"{PREFIX}{p.name}".startswith(incomplete)]
    return [*presets, CompletionItem(incomplete, type="file")]


def complete_cluster(ctx, param, incomplete: str) -> list[CompletionItem]:
    from .clusters import profile_sources

    return [CompletionItem(name) for name in profile_sources() if name.startswith(incomplete)]


@click.command()
@click.argument("job", metavar="JOB", shell_complete=complete_job)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a job value, e.g. --set slurm.time=02:00:00 (repeatable).")
@click.option("--param", "params", multiple=True, metavar="KEY=V1,V2,...",
              help="Sweep an unlearning job over these values (repeatable: a grid).")
@click.option("--array", is_flag=True,
              help="With --param: one array task per grid point instead of one task for all.")
@click.option("--cluster", default="local", show_default=True, envvar="MAGIC_CLUSTER",
              shell_complete=complete_cluster,
              help="Cluster profile (see `magic clusters list`; env MAGIC_CLUSTER).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run directory (default: output.dir of the job).")
@click.option("--dry-run", is_flag=True, help="Print the batch script; write and submit nothing.")
@click.option("--wait", is_flag=True, help="Block until the job ends; exit with its exit code.")
@click.option("--parsable", is_flag=True, help="Print only the job id.")
def submit(job: str, overrides, params, array, cluster, out_dir, dry_run, wait, parsable):
    """Submit a job file (or preset:NAME) to Slurm as one batch job.

    The job's `slurm:` section sets nodes, tasks_per_node (one rank per GPU),
    gpus_per_node, cpus_per_task, mem, time, partition and account; the
    cluster profile adds module loads, the Python environment and defaults.
    The script runs `magic attribute|unlearn|sweep` under srun, asks for
    SIGUSR1 before the time limit (the run checkpoints and exits 75) and then
    requeues itself; a rerun resumes. RUN_DIR/slurm/ gets the frozen job
    (job.yaml), the script (job.sbatch), submission.json and the logs.

    \b
    Examples:
      magic submit preset:attr-wikitext --cluster gh200
      magic submit job.yaml --set slurm.time=02:00:00 --dry-run
      magic submit preset:unlearn-bs4-adam --array --param lr=5e-6,1e-5,5e-5,1e-4
      magic status runs/attr-wikitext
    """
    from .submit import prepare
    from .submit import submit as run_sbatch

    prepared = prepare(job, overrides, params, array, cluster, out_dir)
    if dry_run:
        click.echo(prepared.script, nl=False)
        return
    submitted = run_sbatch(prepared, wait=wait)
    run_dir = prepared.spec.run_dir
    if parsable:
        click.echo(submitted.job_id)
    else:
        tasks = f" ({len(prepared.spec.points)} array tasks)" if array else ""
        click.echo(f"submitted batch job {submitted.job_id}{tasks}: {run_dir}; follow it with "
                   f"`magic status {run_dir}`")
    if wait and submitted.exit_code:
        click.echo(f"job {submitted.job_id} ended with exit code {submitted.exit_code}; "
                   f"log: {run_dir}/slurm/", err=True)
        sys.exit(submitted.exit_code)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--no-slurm", is_flag=True, help="Do not ask squeue/sacct/scontrol.")
def status(run_dir: Path, as_json: bool, no_slurm: bool):
    """Where a run is: status, phase, step, last checkpoint, result and Slurm job state.

    Reads RUN_DIR/progress.json (written by running jobs), the results of a
    finished run, and RUN_DIR/slurm/submission.json of `magic submit`. A
    directory holding several runs (a sweep, `magic demo`'s output or its
    unlearn/ folder) gets one line per run.

    \b
    Examples:
      magic status runs/attr-wikitext
      watch -n 30 magic status runs/attr-wikitext
      magic status runs/attr-wikitext --json | jq .progress.step
      magic status runs/demo
    """
    from .run_status import collect, format_status

    info = collect(run_dir, ask_slurm=not no_slurm)
    click.echo(json.dumps(info, indent=2) if as_json else format_status(info))


@click.group()
def clusters():
    """Cluster profiles for `magic submit --cluster NAME`.

    \b
    Examples:
      magic clusters list
      magic clusters show gh200
      magic clusters init mycluster --from gh200     # then edit the file it names
    """


@clusters.command("list")
def clusters_list():
    """Every profile: its name, where it is defined and what it is for.

    \b
    Built in: local (this machine's Slurm) and the examples gh200 (the seed
    pipeline's 4x GH200 nodes) and generic. Yours are NAME.yaml files in
    $MAGIC_CLUSTER_CONFIG or ~/.config/magic/clusters; one named like a
    built-in profile replaces it. Example:
      magic clusters list
    """
    from .clusters import BUILT_IN, built_in_names, load_profile, profile_dir, profile_sources
    from .text_table import columns

    replaced = set(built_in_names())
    rows = [("name", "defined in", "description")]
    rows += [(name, where if where == BUILT_IN or name not in replaced
              else f"{where} (replaces the built-in one)", load_profile(name).description)
             for name, where in profile_sources().items()]
    click.echo(columns(rows))
    click.echo(f"(profile folder: {profile_dir()})")


@clusters.command("show")
@click.argument("name", shell_complete=complete_cluster)
def clusters_show(name: str):
    """One profile as YAML (every setting, defaults included, as the script uses it).

    \b
    Example:
      magic clusters show gh200
    """
    import yaml
    from magic_core import to_mapping

    from .clusters import load_profile

    click.echo(yaml.safe_dump(to_mapping(load_profile(name)), sort_keys=False).rstrip())


@clusters.command("init")
@click.argument("name")
@click.option("--from", "template", default="generic", show_default=True,
              shell_complete=complete_cluster, help="The profile to copy (comments included).")
@click.option("--force", is_flag=True, help="Replace an existing profile file of that name.")
def clusters_init(name: str, template: str, force: bool):
    """Write profile NAME into your profile folder, a copy of another one to edit.

    The file is NAME.yaml in $MAGIC_CLUSTER_CONFIG or ~/.config/magic/clusters;
    set its partition, account and setup (modules, Python environment) for your
    cluster, then submit with --cluster NAME. An existing file is kept unless
    --force.

    \b
    Examples:
      magic clusters init mycluster --from gh200
      magic submit preset:attr-wikitext --cluster mycluster --dry-run
    """
    from .clusters import init_profile

    path = init_profile(name, template, force)
    click.echo(f"wrote {path} (a copy of {template!r}); edit it, then "
               f"`magic submit JOB --cluster {name}`")

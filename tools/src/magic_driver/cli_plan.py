"""`magic plan`: what an attribution job will take, before it is submitted."""

from __future__ import annotations

from pathlib import Path

import click

from .cli_cluster import complete_cluster, complete_job


@click.command()
@click.argument("job", metavar="JOB", shell_complete=complete_job)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a job value, e.g. --set attribution.sharding=fsdp (repeatable).")
@click.option("--cluster", default="local", show_default=True, envvar="MAGIC_CLUSTER",
              shell_complete=complete_cluster,
              help="Cluster profile: its GPUs, GPU memory and node memory (see `magic clusters "
              "list`; env MAGIC_CLUSTER).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("plan.json"), show_default=True, help="Where to write the plan.")
def plan(job: str, overrides: tuple[str, ...], cluster: str, json_path: Path):
    """Estimate what an attribution job takes, without loading weights or data.

    Builds the model on the meta device from its config and prints: parameters,
    the bytes of one training state (whole and per rank under the job's
    sharding), the kept-state schedule `auto` resolves to and where the states
    go (device, host, disk), the disk the spill and the checkpoints need, peak
    memory per GPU (or rank) in training and in the backward, and the time of
    both, with one warning line for what will not fit (GPU memory, host
    memory, disk, the Slurm time limit) naming the setting that fixes it. The
    ranks are the job's slurm: section's (nodes x tasks_per_node, one GPU each
    when gpus_per_node > 0). Writes the numbers to plan.json. Exit code 0 with
    warnings (a plan is advice), 2 for a job `magic attribute` would refuse.
    See docs/planning.md for the formulas and how they compare with real runs.

    \b
    Examples:
      magic plan preset:attr-wikitext --cluster gh200
      magic plan preset:attr-wikitext --cluster gh200 --set attribution.sharding=fsdp
      magic plan job.yaml --json runs/plans/job.json
    """
    from magic_core.atomic import write_json

    from .plan_make import make_plan
    from .plan_report import table, to_json

    made, warnings = make_plan(job, overrides, cluster)
    click.echo(table(made))
    for line in warnings:
        click.echo(f"warning: {line}", err=True)
    report = to_json(made, warnings, {"source": job, "overrides": list(overrides),
                                      "cluster": cluster})
    for line in report["notes"]:
        click.echo(f"note: {line}", err=True)
    write_json(json_path, report)
    click.echo(f"wrote {json_path}")

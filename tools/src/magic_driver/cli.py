"""The `magic` command."""

from __future__ import annotations

import errno
import importlib
import importlib.util
import json
import sys
from pathlib import Path

import click
from magic_core import ConfigError
from magic_datasets import DatasetError
from magic_unlearn import UnlearnError

from .exit_codes import EXIT_PREEMPTED
from .log_setup import DEFAULT_LEVEL, LEVELS, level_from_flags
from .log_setup import configure as configure_logging

# Light modules only: every command, `--help` and shell completion start here,
# and none of them may pay for importing torch (commands import what they run).
USER_ERRORS = (ConfigError, DatasetError, UnlearnError)
RESTART_HELP = ("Discard the run directory's checkpoint and start over (by default a preempted "
                "run resumes from it); over finished results (kept by default, refused if of "
                "another job), compute new ones and swap them in once complete.")

CHECKPOINT_EVERY_HELP = (
    "Write a checkpoint to resume from at most this often (30s, 10m, 1h; 0 or off: only on "
    "SIGTERM/SIGUSR1), so that a run killed outright loses at most that much; default: "
    "output.checkpoint_every of the config (10m).")


def checkpoint_every_option(command):
    return click.option("--checkpoint-every", "checkpoint_every", metavar="DURATION", default=None,
                        help=CHECKPOINT_EVERY_HELP)(command)


def with_checkpoint_every(overrides: tuple[str, ...], value: str | None) -> tuple[str, ...]:
    """``overrides`` plus ``--checkpoint-every`` as the job file's key (checked first, so that
    a bad value is refused under the option's name)."""
    if value is None:
        return overrides
    from magic_core.durations import parse_duration

    parse_duration(value, "--checkpoint-every")
    return (*overrides, f"output.checkpoint_every={json.dumps(value)}")


# Commands kept in their own modules (name -> module, attribute), imported when
# invoked or listed. A module that is not there (yet) leaves its command out.
ELSEWHERE = {
    "submit": ("cli_cluster", "submit"), "status": ("cli_cluster", "status"),
    "clusters": ("cli_cluster", "clusters"), "report": ("cli_info", "report"),
    "recipes": ("cli_info", "recipes"), "presets": ("cli_info", "presets"),
    "patch": ("cli_info", "patch"), "completion": ("cli_info", "completion"),
    "pretrain": ("cli_pretrain", "pretrain"), "plan": ("cli_plan", "plan"),
}


def _preempted(exc: BaseException) -> bool:
    # The module defining Preempted imports torch; whatever raised one has loaded it.
    preemption = sys.modules.get("magic_core.preemption")
    return preemption is not None and isinstance(exc, preemption.Preempted)


# What the file system says about a path a user chose, and what they can do about it.
FILE_SYSTEM_FIXES = {
    errno.EACCES: "make it writable, or write elsewhere (--out)",
    errno.EPERM: "make it writable, or write elsewhere (--out)",
    errno.EROFS: "write elsewhere (--out)",
    errno.ENOSPC: "free some space, or write elsewhere (--out)",
    errno.EDQUOT: "free some space, or write elsewhere (--out)",
    errno.EISDIR: "give a file there, not a directory",
    errno.ENOTDIR: "a part of the path is a file; choose another path",
    errno.ENAMETOOLONG: "choose a shorter path",
}


class UsageMistake(click.ClickException):
    """click's own refusals (a missing argument, a directory given for a file) in the
    one-line form of every other user mistake."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.message}", err=True)


def _one_line(exc: click.ClickException) -> UsageMistake:
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        message = f"{message.rstrip('.')}; see `{ctx.command_path} --help`"
    return UsageMistake(message)


def file_system_problem(exc: OSError) -> str | None:
    """One line for a file system refusal on a named path; None for any other OSError."""
    fix = FILE_SYSTEM_FIXES.get(exc.errno) if exc.errno is not None else None
    if fix is None or exc.filename is None:
        return None
    return f"{exc.filename}: {exc.strerror}; {fix}"


class MagicGroup(click.Group):
    """Turns user mistakes into one line on stderr and exit code 2, no traceback: the
    project's errors, click's usage errors and the file system's refusals (a
    read-only or full output directory); a preempted run into one line and
    `EXIT_PREEMPTED`. Loads the commands of `ELSEWHERE` on first use."""

    def list_commands(self, ctx):
        present = [name for name, (module, _) in ELSEWHERE.items() if _module_exists(module)]
        return sorted({*self.commands, *present})

    def get_command(self, ctx, name):
        if name not in self.commands and name in ELSEWHERE:
            module, attribute = ELSEWHERE[name]
            if _module_exists(module):
                loaded = importlib.import_module(f".{module}", __package__)
                self.add_command(getattr(loaded, attribute), name)
        return self.commands.get(name)

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent, **extra)
        except UsageMistake:
            raise
        except click.ClickException as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except UsageMistake:
            raise
        except click.ClickException as exc:
            raise _one_line(exc) from None
        except OSError as exc:
            problem = file_system_problem(exc)
            if problem is None:
                raise
            click.echo(f"error: {problem}", err=True)
            ctx.exit(2)
        except Exception as exc:
            if not _preempted(exc):
                raise
            from magic_core.distributed import launch_from_environment

            if launch_from_environment().is_main:
                click.echo(str(exc), err=True)
            ctx.exit(EXIT_PREEMPTED)


def _module_exists(module: str) -> bool:
    return importlib.util.find_spec(f".{module}", __package__) is not None


@click.group(cls=MagicGroup)
@click.version_option(package_name="magic-driver")
@click.option("-v", "--verbose", count=True,
              help="Log more: -v shows what a run decided (INFO: schedule, memory tiers, spill "
              "directory, world size), -vv everything (DEBUG).")
@click.option("--log-level", type=click.Choice(LEVELS, case_sensitive=False),
              envvar="MAGIC_LOG_LEVEL", show_envvar=True, default=None,
              help=f"Level of the log on stderr (default {DEFAULT_LEVEL}); overrides -v.")
def main(verbose: int, log_level: str | None):
    """Exact data attribution (MAGIC) and attribution-weighted unlearning.

    \b
    Quick start:
      magic demo --out runs/demo          # the whole pipeline on the built-in world
      magic attribute job.yaml            # a configured attribution run
      magic -v attribute job.yaml         # the same, logging the resolved plan
      magic datasets list                 # what data is installed
      magic submit preset:attr-wikitext --cluster NAME   # a Slurm job (see magic presets list)
      magic status runs/attr-wikitext     # where a run is
    """
    configure_logging(level_from_flags(log_level, verbose))


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/demo"), show_default=True, help="Output directory.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1 or auto.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--restart", is_flag=True,
              help="Replace the runs of another version of the demo in OUT (by default they are "
              "refused; the same demo's runs are always recomputed and replaced).")
def demo(out_dir: Path, device: str, quiet: bool, restart: bool):
    """Run the whole pipeline on the built-in offline world.

    Builds (or reuses) the world's base model, fine-tunes it on 64 documents
    of which 8 are planted hazard documents, attributes the hazard questions
    to every document and token, writes the run directory OUT/attribution
    (scores, tables, report), then unlearns the hazard facts with each recipe
    over a small lr grid (OUT/unlearn) and summarises it all in OUT/summary.json.

    \b
    Example:
      magic demo --out runs/demo && cat runs/demo/summary.json
    """
    from magic_core.device_names import device_problem

    if problem := device_problem(device):
        raise ConfigError(f"--device: {problem}")
    from .demo import run_demo

    summary = run_demo(out_dir, device, progress=not quiet, restart=restart)
    click.echo(json.dumps(summary, indent=2))


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set train.lr=1e-4 (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run directory (default: output.dir of the config).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--restart", is_flag=True, help=RESTART_HELP)
@checkpoint_every_option
def attribute(config: Path | None, overrides: tuple[str, ...], out_dir: Path | None, quiet: bool,
              restart: bool, checkpoint_every: str | None):
    """Attribute a query to every training document (and token) of a fine-tuning run.

    CONFIG is a YAML job file with sections model, data, query, train,
    attribution, output (see docs/configuration.md); without it the built-in
    world's defaults are used. SIGTERM/SIGUSR1 stop the run after its current
    step with a checkpoint (exit code 75); the same command resumes it.

    \b
    Examples:
      magic attribute job.yaml
      magic attribute job.yaml --set train.lr=1e-4 --set attribution.kept_states=log
    """
    from .jobs import load_job
    from .quiet import library_progress_bars
    from .run_attribute import run_attribute

    job = load_job(config, with_checkpoint_every(overrides, checkpoint_every))
    with library_progress_bars(not quiet):  # also the datasets bars of loading the corpus
        manifest = run_attribute(job, out_dir, progress=not quiet, restart=restart)
    target = out_dir or Path(job.output.dir)
    from magic_core.distributed import launch_from_environment

    if launch_from_environment().is_main:
        click.echo(f"wrote {target} ({manifest['corpus']['documents']} documents, "
                   f"{manifest['training']['steps']} steps, {manifest['timings']['total']:.1f} s)")


@main.group()
def datasets():
    """Installed dataset plugins (entry-point group magic.datasets).

    \b
    Examples:
      magic datasets list
      magic datasets show wmdp-bio-robust
    """


@datasets.command("list")
def datasets_list():
    """Every dataset offered by installed plugins: name, kind, source, plugin package.

    \b
    Example:
      magic datasets list
    """
    import magic_datasets as md

    rows = [(s.name, s.kind.value, s.source, s.package) for s in md.list_datasets()]
    widths = [max(len(r[i]) for r in rows + [("name", "kind", "source", "package")]) for i in range(4)]
    for row in [("name", "kind", "source", "package"), *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    for package, error in md.default_registry().broken.items():
        click.echo(f"warning: plugin package {package!r} failed to import: {error}", err=True)


@datasets.command("show")
@click.argument("name")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A loader option for the sample row, e.g. --option data_dir=data (repeatable).")
@click.option("--no-sample", is_flag=True, help="Do not load the dataset for a sample row.")
def datasets_show(name: str, options: tuple[str, ...], no_sample: bool):
    """One dataset: source, gating, size, schema, options and a sample row.

    \b
    Examples:
      magic datasets show world-attribution
      magic datasets show wikitext-103 --option data_dir=/data/hub
    """
    from .dataset_info import describe_dataset

    click.echo(describe_dataset(name, options, sample=not no_sample))


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set optim.lr=1e-4 (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory (default: output.dir of the config).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--restart", is_flag=True, help=RESTART_HELP)
@checkpoint_every_option
def unlearn(config: Path | None, overrides: tuple[str, ...], out_dir: Path | None, quiet: bool,
            restart: bool, checkpoint_every: str | None):
    """Unlearn with one recipe; evaluate accuracy before/after and after relearning.

    CONFIG is a YAML file with sections model, forget, retain, scores, recipe,
    optim, eval, relearn, output (see docs/unlearning.md). Writes
    OUT/result.json, OUT/table.md, OUT/table.json and OUT/model (save_pretrained).
    SIGTERM/SIGUSR1 stop it after the current step with a checkpoint (exit
    code 75); the same command resumes it, also after SIGKILL (from the last
    periodic checkpoint, see --checkpoint-every).

    \b
    Examples:
      magic unlearn unlearn.yaml
      magic unlearn unlearn.yaml --set recipe.name=gradient-ascent --set optim.lr=1e-4
      magic unlearn unlearn.yaml --checkpoint-every 30s
    """
    from .quiet import library_progress_bars
    from .run_unlearn import run_unlearn
    from .unlearn_jobs import load_unlearn_job

    job = load_unlearn_job(config, with_checkpoint_every(overrides, checkpoint_every))
    with library_progress_bars(not quiet):
        run_unlearn(job, out_dir, progress=not quiet, restart=restart)
    click.echo((Path(out_dir or job.output.dir) / "table.md").read_text().rstrip())


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--param", "params", multiple=True, metavar="KEY=V1,V2,...",
              help="Values to sweep, e.g. --param lr=5e-6,1e-5,5e-5 (repeatable: a grid).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value for every point (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory (default: output.dir of the config).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--restart", is_flag=True, help="Recompute every point, replacing finished ones "
              "(another grid's included) once each new point is complete.")
@checkpoint_every_option
def sweep(config: Path | None, params: tuple[str, ...], overrides: tuple[str, ...],
          out_dir: Path | None, quiet: bool, restart: bool, checkpoint_every: str | None):
    """Run an unlearning config over a grid of values; write one table.

    Short keys: lr, steps, recipe, preset, selection, normalization; any
    dotted config key works too. OUT/NNN/ holds each point's run. Rerun after
    a stop (SIGTERM/SIGUSR1, or SIGKILL: see --checkpoint-every), it keeps the
    finished points and resumes the one it was in.

    \b
    Examples:
      magic sweep unlearn.yaml --param lr=5e-6,1e-5,5e-5,1e-4
      magic sweep unlearn.yaml --param recipe=attribution-weighted,gradient-ascent --param lr=5e-5,1e-4
    """
    from .quiet import library_progress_bars
    from .sweep import run_sweep

    overrides = with_checkpoint_every(overrides, checkpoint_every)
    with library_progress_bars(not quiet):
        target = run_sweep(config, params, overrides, out_dir, progress=not quiet,
                           restart=restart)
    click.echo((target / "table.md").read_text().rstrip())


if __name__ == "__main__":
    sys.exit(main())

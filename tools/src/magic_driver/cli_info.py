"""Inspection commands of `magic`: recipes, presets, patch, report and shell completion."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.group()
def recipes():
    """Unlearning recipes (entry-point group magic.recipes).

    \b
    Examples:
      magic recipes list
      magic recipes show attribution-weighted
    """


@recipes.command("list")
def recipes_list():
    """Every recipe of the installed plugins: name, whether it needs scores, package.

    \b
    Example:
      magic recipes list
    """
    from .recipe_info import broken_plugins, recipes_table

    click.echo(recipes_table())
    for package, error in broken_plugins().items():
        click.echo(f"warning: recipe plugin package {package!r} failed to import: {error}",
                   err=True)


@recipes.command("show")
@click.argument("name")
def recipes_show(name: str):
    """One recipe: description, options with their defaults, whether it needs scores.

    \b
    Example:
      magic recipes show attribution-weighted
    """
    from .recipe_info import describe_recipe

    click.echo(describe_recipe(name))


@click.group()
def presets():
    """Job files shipped with magic (use them as preset:NAME).

    \b
    Examples:
      magic presets list
      magic presets show attr-forget > my-job.yaml
      magic submit preset:attr-forget --cluster gh200
    """


@presets.command("list")
def presets_list():
    """Every shipped preset: name, kind and what it runs.

    \b
    Examples:
      magic presets list
      magic submit preset:attr-wikitext --cluster gh200
    """
    from .presets import list_presets
    from .text_table import columns

    rows = [("name", "kind", "description")]
    rows += [(p.name, p.kind, p.description) for p in list_presets()]
    click.echo(columns(rows))


@presets.command("show")
@click.argument("name")
def presets_show(name: str):
    """A preset's job file, comments included (a starting point for your own).

    \b
    Examples:
      magic presets show attr-forget
      magic presets show attr-forget > my-job.yaml && magic submit my-job.yaml --dry-run
    """
    from .presets import get_preset

    click.echo(get_preset(name).text, nl=False)


@click.group()
def patch():
    """The torch-dtensor-patch state of this torch (twice-differentiable DTensor).

    \b
    Examples:
      magic patch status
      magic patch verify
    """


@patch.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def patch_status(as_json: bool):
    """Each component: upstream (torch has it), patched, or missing.

    \b
    Example:
      magic patch status
    """
    from .patch_report import status_report

    report, text = status_report()
    click.echo(json.dumps(report, indent=2) if as_json else text)


@patch.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--no-patch", is_flag=True, help="Check torch as installed (shows what is broken).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
def patch_verify(as_json: bool, no_patch: bool, device: str):
    """Run double-backward checks on 2 gloo ranks; exit 1 if any fails.

    \b
    Examples:
      magic patch verify
      magic patch verify --no-patch     # what this torch gets wrong without the patch
    """
    from .patch_report import verify_report

    data, text, ok = verify_report(False if no_patch else None, device)
    click.echo(json.dumps(data, indent=2, default=str) if as_json else text)
    if not ok:
        sys.exit(1)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
def report(run_dir: Path):
    """Re-render a run's human-readable files from its machine-readable ones.

    Attribution run: report.md, token_heatmap.html, score_histogram.png from
    scores.safetensors, documents.parquet and manifest.json. Unlearning run or
    sweep: table.md and table.json from the result.json files. A directory
    holding several runs (`magic demo`'s output, its unlearn/ folder) has each
    of them re-rendered.

    \b
    Examples:
      magic report runs/attr-wikitext
      magic report runs/unlearn-bs4-adam      # after array tasks of a sweep
      magic report runs/demo
    """
    from .rerender import rerender

    for path in rerender(run_dir):
        click.echo(f"wrote {path}")


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str):
    """Print the shell completion script of `magic`.

    \b
    Examples:
      eval "$(magic completion bash)"                      # this shell
      magic completion bash > ~/.local/share/bash-completion/completions/magic
      magic completion zsh > "${fpath[1]}/_magic"
      magic completion fish > ~/.config/fish/completions/magic.fish
    """
    from click.shell_completion import get_completion_class

    root = click.get_current_context().find_root()
    completion = get_completion_class(shell)
    assert completion is not None  # shell is one of click's, by the option's choices
    source = completion(root.command, {}, "magic", "_MAGIC_COMPLETE").source()
    click.echo(source)

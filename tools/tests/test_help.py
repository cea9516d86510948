"""Every command and command group explains itself with examples in --help."""

import click
import pytest
from click.testing import CliRunner
from magic_driver.cli import main


def _commands(group: click.Group, prefix=()):
    # list_commands/get_command, not group.commands: `magic` loads subcommands lazily.
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


@pytest.mark.parametrize("path", [" ".join(p) for p in _commands(main)])
def test_help_has_examples(path):
    result = CliRunner().invoke(main, [*path.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`magic {path} --help` shows no example"
    assert f"magic {path.split()[0]}" in result.output.split("Example", 1)[1]


def test_top_level_help_names_the_cluster_commands():
    text = CliRunner().invoke(main, ["--help"]).output
    for command in ("submit", "status", "report", "presets", "recipes", "patch", "completion"):
        assert f"  {command} " in text

"""One-line notices of what a long command is doing, on stderr (stdout stays machine-readable)."""

from __future__ import annotations

import click


def notice(message: str) -> None:
    click.echo(f"magic: {message}", err=True)

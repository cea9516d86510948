"""The hooks a dataset plugin may implement (pluggy project ``magic.datasets``).

A plugin is any importable module exposed through the ``magic.datasets``
entry-point group that implements these hooks with `magic_datasets.hookimpl`.
See docs/writing-a-dataset-plugin.md.
"""

from __future__ import annotations

import pluggy

PROJECT = "magic.datasets"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def magic_datasets_register() -> list:  # type: ignore[empty-body]  # list[DatasetSpec]
    """Return the `DatasetSpec` objects this plugin offers."""

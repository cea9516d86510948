"""The hooks a recipe plugin may implement (pluggy project ``magic.recipes``).

A plugin is an importable module exposed through the ``magic.recipes``
entry-point group that implements these hooks with `magic_unlearn.hookimpl`.
"""

from __future__ import annotations

import pluggy

PROJECT = "magic.recipes"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def magic_recipes_register() -> list:  # type: ignore[empty-body]  # list[RecipeSpec]
    """Return the `RecipeSpec` objects this plugin offers."""

"""Discovering recipe plugins (entry-point group ``magic.recipes``) and looking recipes up."""

from __future__ import annotations

import difflib
from dataclasses import replace
from functools import lru_cache
from typing import Any, cast

import pluggy
from magic_datasets import plugins

from . import hookspecs
from .errors import UnlearnError
from .spec import RecipeSpec

ENTRY_POINT_GROUP = "magic.recipes"


class RecipeRegistry:
    """Recipes of every installed plugin; a broken plugin is set aside, not fatal."""

    def __init__(self, load_entry_points: bool = True):
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self.broken: dict[str, str] = {}
        self._package_of: dict[str, str] = {}
        if load_entry_points:
            loaded, self.broken = plugins.load_entry_points(ENTRY_POINT_GROUP, "recipe")
            for name, package, module in loaded:
                self.register(module, name=name, package=package)

    def register(self, plugin: Any, name: str | None = None, package: str = "") -> None:
        registered = self._pm.register(plugin, name=name)
        if registered is not None:  # None: a blocked name, which pluggy leaves out
            self._package_of[registered] = package or registered

    def recipes(self) -> dict[str, RecipeSpec]:
        found: dict[str, RecipeSpec] = {}
        for impl in self._pm.hook.magic_recipes_register.get_hookimpls():
            package = self._package_of.get(impl.plugin_name, impl.plugin_name)
            for spec in cast("list[RecipeSpec]", impl.function()):
                if spec.name in found:
                    raise UnlearnError(f"recipe {spec.name!r} is registered by both "
                                       f"{found[spec.name].package!r} and {package!r}; uninstall one")
                found[spec.name] = replace(spec, package=package)
        return found

    def get(self, name: str) -> RecipeSpec:
        recipes = self.recipes()
        if name not in recipes:
            close = difflib.get_close_matches(name, list(recipes), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(recipes))}"
            raise UnlearnError(f"unknown recipe {name!r}; {hint}")
        return recipes[name]


@lru_cache(maxsize=1)
def default_registry() -> RecipeRegistry:
    return RecipeRegistry()


def get_recipe(name: str) -> RecipeSpec:
    return default_registry().get(name)


def list_recipes() -> list[RecipeSpec]:
    recipes = default_registry().recipes()
    return [recipes[n] for n in sorted(recipes)]

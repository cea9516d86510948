"""Discovering dataset plugins and answering list / get / load.

Plugins come from the ``magic.datasets`` entry-point group. A plugin that
fails to import is set aside (named in `Registry.broken`) so that the others
still load; two plugins offering one name make that name unusable until one
is removed, and the error names both packages.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

import pluggy

from . import hookspecs
from .errors import DatasetError
from .plugins import load_entry_points
from .spec import REQUIRED_COLUMNS, DatasetSpec

if TYPE_CHECKING:
    import datasets

ENTRY_POINT_GROUP = "magic.datasets"


class Registry:
    """The datasets offered by every installed plugin (plus any registered by hand)."""

    def __init__(self, load_entry_points: bool = True):
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._package_of: dict[str, str] = {}
        self.broken: dict[str, str] = {}
        if load_entry_points:
            self._load_entry_points()
        self._specs: dict[str, DatasetSpec] | None = None
        self._conflicts: dict[str, list[str]] = {}

    def _load_entry_points(self) -> None:
        loaded, self.broken = load_entry_points(ENTRY_POINT_GROUP, "dataset")
        for name, package, module in loaded:
            self.register(module, name=name, package=package)

    def register(self, plugin: Any, name: str | None = None, package: str = "") -> None:
        """Register a plugin object by hand (tests, notebooks)."""
        registered = self._pm.register(plugin, name=name)
        if registered is not None:  # None: a blocked name, which pluggy leaves out
            self._package_of[registered] = package or registered
        self._specs = None

    def _collect(self) -> dict[str, DatasetSpec]:
        if self._specs is not None:
            return self._specs
        specs: dict[str, DatasetSpec] = {}
        owners: dict[str, list[str]] = {}
        for impl in self._pm.hook.magic_datasets_register.get_hookimpls():
            package = self._package_of.get(impl.plugin_name, impl.plugin_name)
            for spec in cast("list[DatasetSpec]", impl.function()):
                spec = replace(spec, package=package)
                owners.setdefault(spec.name, []).append(package)
                specs.setdefault(spec.name, spec)
        self._conflicts = {n: p for n, p in owners.items() if len(p) > 1}
        self._specs = specs
        return specs

    def list(self) -> list[DatasetSpec]:
        """Every offered dataset, sorted by name."""
        return [self._collect()[n] for n in sorted(self._collect())]

    def get(self, name: str) -> DatasetSpec:
        specs = self._collect()
        if name in self._conflicts:
            a, b, *_ = self._conflicts[name]
            raise DatasetError(
                f"dataset name {name!r} is registered by two plugins, {a!r} and {b!r}; "
                f"uninstall one of them (pip uninstall {b})"
            )
        if name not in specs:
            close = difflib.get_close_matches(name, list(specs), n=3)
            hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            broken = (
                f" (plugin packages that failed to import: {', '.join(sorted(self.broken))})"
                if self.broken
                else ""
            )
            raise DatasetError(
                f"unknown dataset {name!r}; {hint or 'see `magic datasets list`'}{broken}"
            )
        return specs[name]

    def load(self, name: str, **options: Any) -> datasets.Dataset:
        """Load dataset ``name`` with the given loader options, schema-checked."""
        spec = self.get(name)
        unknown = sorted(set(options) - set(spec.options))
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(spec.options), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            accepted = ", ".join(sorted(spec.options)) or "none"
            raise DatasetError(
                f"dataset {name!r} has no option {unknown[0]!r}{hint}; it accepts: {accepted}"
            )
        dataset = spec.loader(**options)
        missing = [c for c in REQUIRED_COLUMNS[spec.kind] if c not in dataset.column_names]
        if missing:
            raise DatasetError(
                f"dataset {name!r} (plugin {spec.package!r}) lacks column {missing[0]!r} "
                f"required for a {spec.kind.value} set; it has {dataset.column_names}"
            )
        return dataset


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The process-wide registry built from installed entry points."""
    return Registry()


def list_datasets() -> list[DatasetSpec]:
    return default_registry().list()


def get(name: str) -> DatasetSpec:
    return default_registry().get(name)


def load(name: str, **options: Any) -> datasets.Dataset:
    return default_registry().load(name, **options)

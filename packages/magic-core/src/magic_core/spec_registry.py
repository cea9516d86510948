"""Named specs of one kind (objectives, optimizers): the built-ins and installed plugins'.

A registry reads one entry-point group through `magic_datasets.plugins` (an
entry point names a spec or a list of them). A plugin that fails to import, or
names something other than a spec, is set aside (named in ``broken``) so that
the others still load; a name offered by two packages is refused when used,
naming both. Imports no torch: job files are checked without it.
"""

from __future__ import annotations

import builtins
import difflib
import warnings
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, ClassVar, Generic, TypeVar, cast

from magic_datasets import plugins  # public API; imports neither datasets nor torch

from .errors import ConfigError

S = TypeVar("S")


class SpecRegistry(Generic[S]):
    """Specs of type ``spec_type`` by name; subclasses say which kind and where errors point."""

    spec_type: ClassVar[type]
    kind: ClassVar[str]  # "objective": names the plugins in messages
    group: ClassVar[str]  # the entry-point group
    key: ClassVar[str]  # the job-file key a bad name is reported under

    def __init__(self, load_entry_points: bool = True):
        self._specs: dict[str, S] = {}
        self._owners: dict[str, list[str]] = {}
        self.broken: dict[str, str] = {}
        if load_entry_points:
            self._load()

    def _load(self) -> None:
        loaded, self.broken = plugins.load_entry_points(self.group, self.kind)
        for name, package, obj in loaded:
            try:
                specs = self._specs_of(obj)
            except TypeError as exc:
                self.broken[package] = f"TypeError: {exc}"
                warnings.warn(f"{self.kind} plugin {name!r} from package {package!r} is not "
                              f"usable ({exc}); its {self.kind}s are unavailable", stacklevel=3)
                continue
            for spec in specs:
                self.register(spec, package)

    def _specs_of(self, obj: Any) -> list[S]:
        specs = ([obj] if isinstance(obj, self.spec_type)
                 else list(obj) if isinstance(obj, Iterable) else [])
        if not specs or not all(isinstance(s, self.spec_type) for s in specs):
            raise TypeError(f"expected a {self.spec_type.__name__} or a list of them, got {obj!r}")
        return cast(list[S], specs)

    def register(self, spec: S, package: str = "") -> None:
        """Register ``spec`` by hand (tests, notebooks)."""
        spec = replace(spec, package=package or spec.package)  # type: ignore[type-var, attr-defined]
        self._owners.setdefault(spec.name, []).append(spec.package)  # type: ignore[attr-defined]
        self._specs.setdefault(spec.name, spec)  # type: ignore[attr-defined]

    def names(self) -> builtins.list[str]:
        return sorted(self._specs)

    def list(self) -> list[S]:
        return [self._specs[n] for n in self.names()]

    def problem(self, name: str) -> str | None:
        """What is wrong with ``name`` as a spec name, or None."""
        return self._problem(name, self.names())

    def _problem(self, name: str, known: builtins.list[str]) -> str | None:
        if name in known:
            owners = self._owners[name]
            if len(owners) > 1:
                return (f"{self.kind} {name!r} is registered by two packages, {owners[0]!r} and "
                        f"{owners[1]!r}; uninstall one of them (pip uninstall {owners[1]})")
            return None
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        broken = (f"; {self.kind} plugins that failed to import: {', '.join(sorted(self.broken))}"
                  if self.broken else "")
        return f"expected one of {', '.join(repr(n) for n in known)}, got {name!r}{hint}{broken}"

    def get(self, name: str) -> S:
        problem = self.problem(name)
        if problem:
            raise ConfigError(f"{self.key}: {problem}")
        return self._specs[name]

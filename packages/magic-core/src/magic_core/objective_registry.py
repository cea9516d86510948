"""Query objectives by name: the built-ins and those of installed plugins.

An objective is declared once, as an `ObjectiveSpec`: its name, the dataset kinds
it reads, its options and how to build it. Plugins offer specs through the
``magic.objectives`` entry-point group (an entry point names an `ObjectiveSpec` or a
list of them); magic-core's own are registered the same way, from
`magic_core.builtin_objectives`. Job validation and the driver read this registry
only, so a new objective is one spec in one place.

This module and the spec modules it loads import no torch: `magic submit --dry-run`
and the listing commands check objective names without it. A spec's ``build``
imports what it needs when it is called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .errors import ConfigError
from .spec_registry import SpecRegistry

ENTRY_POINT_GROUP = "magic.objectives"


@dataclass(frozen=True)
class ObjectiveInput:
    """What a spec's ``build`` gets: the query's rows and the job's settings for it."""

    name: str  # the query dataset's name, for the objective's description
    rows: Any  # the query dataset's rows (a datasets.Dataset); None for a composite
    options: dict[str, Any]  # every option the spec declares, with the job's value or its default
    tokenizer: Any
    max_len: int  # the model's context length: longer rows are cut from the left
    parts: tuple = ()  # a composite's built parts, in the order of ``spec.parts``


@dataclass(frozen=True)
class ObjectiveSpec:
    """One named query objective.

    A leaf objective scores the rows of one query dataset whose kind (a
    `magic_datasets.Kind` value) is in ``reads``; a composite one combines the
    objectives of the sub-queries named by ``parts`` (query keys, e.g.
    ``("positive", "negative")``) and reads no dataset itself.

    ``build(ObjectiveInput) -> QueryObjective`` makes it. ``options`` maps each
    option to its default; the job sets an option under the query key of that name
    where the query section has one (``prompt_style``, ``text_column``, ``weight``),
    else in ``query.objective_options``. ``column_options`` are the options whose
    value names a column the rows must have (checked before any model is built).
    ``texts(rows, options)`` returns the texts the objective tokenizes, for the
    check that the model's tokenizer can read them (default: the ``text`` column).
    ``use`` completes "set query.objective: NAME ..." in the refusal of a dataset of
    a kind the chosen objective cannot read, e.g. "to score its text".
    """

    name: str
    build: Callable[[ObjectiveInput], Any]
    reads: tuple[str, ...] = ()
    parts: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    column_options: tuple[str, ...] = ()
    texts: Callable[[Any, dict[str, Any]], list[str]] | None = None
    description: str = ""
    use: str = ""
    # Filled in by the registry: the distribution that registered the spec.
    package: str = ""

    def __post_init__(self):
        if bool(self.reads) == bool(self.parts):
            raise ConfigError(f"objective {self.name!r}: give exactly one of reads (the dataset "
                              "kinds it scores) and parts (the sub-queries it combines)")
        unknown = [o for o in self.column_options if o not in self.options]
        if unknown:
            raise ConfigError(f"objective {self.name!r}: column option {unknown[0]!r} is not "
                              "one of its options; add it to options with its default")

    @property
    def composite(self) -> bool:
        return bool(self.parts)

    def query_texts(self, rows, options: dict[str, Any]) -> list[str]:
        """The texts this objective tokenizes from ``rows``."""
        if self.texts is not None:
            return list(self.texts(rows, options))
        return list(rows["text"]) if "text" in rows.column_names else []


class ObjectiveRegistry(SpecRegistry[ObjectiveSpec]):
    """The objectives of every installed plugin (plus any registered by hand)."""

    spec_type = ObjectiveSpec
    kind = "objective"
    group = ENTRY_POINT_GROUP
    key = "objective"

    def names(self, composite: bool = True) -> list[str]:
        """Every objective name, sorted (``composite=False``: only the leaf ones)."""
        return sorted(n for n, s in self._specs.items() if composite or not s.composite)

    def problem(self, name: str, composite: bool = True) -> str | None:
        """What is wrong with ``name`` as a query's objective, or None."""
        return self._problem(name, self.names(composite))


@lru_cache(maxsize=1)
def default_registry() -> ObjectiveRegistry:
    """The process-wide registry built from installed entry points."""
    return ObjectiveRegistry()


def get_objective(name: str) -> ObjectiveSpec:
    return default_registry().get(name)


def list_objectives() -> list[ObjectiveSpec]:
    return default_registry().list()

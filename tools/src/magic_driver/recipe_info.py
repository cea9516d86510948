"""`magic recipes list|show`: the unlearning recipes installed plugins register."""

from __future__ import annotations

import magic_unlearn as mu
from magic_unlearn.registry import default_registry


def columns(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def recipes_table() -> str:
    rows = [("name", "scores", "package", "description")]
    rows += [(r.name, "needed" if r.needs_scores else "-", r.package, r.description)
             for r in mu.list_recipes()]
    return columns(rows)


def broken_plugins() -> dict[str, str]:
    """Plugin packages whose import failed (they are left out of the list)."""
    return dict(default_registry().broken)


def describe_recipe(name: str) -> str:
    r = mu.get_recipe(name)
    lines = [f"name:        {r.name}", f"package:     {r.package}",
             f"description: {r.description}",
             f"scores:      {'needed (scores.forget)' if r.needs_scores else 'not used'}",
             "options:" if r.options else "options:     none"]
    lines += [f"  {key}: {value!r}" for key, value in r.options.items()]
    lines.append(f"use:         recipe: {{name: {r.name}, options: {{...}}}} in an unlearning job")
    return "\n".join(lines)

"""`magic recipes list|show`: the unlearning recipes installed plugins register."""

from __future__ import annotations

import magic_unlearn as mu
import yaml
from magic_unlearn.registry import default_registry

from .text_table import columns


def recipes_table() -> str:
    rows = [("name", "scores", "package", "description")]
    rows += [(r.name, "needed" if r.needs_scores else "-", r.package, r.description)
             for r in mu.list_recipes()]
    return columns(rows)


def broken_plugins() -> dict[str, str]:
    """Plugin packages whose import failed (they are left out of the list)."""
    return dict(default_registry().broken)


def options_yaml(options: dict) -> str:
    """The options as the YAML of a job's ``recipe.options`` (null, true, 0.0001), not Python."""
    text = yaml.safe_dump(dict(options), sort_keys=False, default_flow_style=False, width=1000)
    return text.rstrip("\n")


def describe_recipe(name: str) -> str:
    r = mu.get_recipe(name)
    lines = [f"name:        {r.name}", f"package:     {r.package}",
             f"description: {r.description}",
             f"scores:      {'needed (scores.forget)' if r.needs_scores else 'not used'}",
             "options:" if r.options else "options:     none"]
    if r.options:
        lines += [f"  {line}" for line in options_yaml(r.options).splitlines()]
    lines.append(f"use:         recipe: {{name: {r.name}, options: {{...}}}} in an unlearning job")
    return "\n".join(lines)

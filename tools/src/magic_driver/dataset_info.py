"""`magic datasets show`: what a dataset plugin declares, plus one sample row."""

from __future__ import annotations

import json

import datasets
import magic_datasets as md
import yaml
from magic_datasets.spec import KIND_TEXT

PREVIEW_CHARS = 300


def parse_options(assignments: tuple[str, ...]) -> dict:
    options = {}
    for assignment in assignments:
        if "=" not in assignment:
            raise md.DatasetError(f"--option {assignment!r}: expected KEY=VALUE, e.g. n=4")
        key, _, raw = assignment.partition("=")
        options[key.strip()] = yaml.safe_load(raw)
    return options


def _load_sample(name: str, spec: md.DatasetSpec, options: dict) -> datasets.Dataset | str:
    """The rows to sample from, or why there are none."""
    # Hub corpora can be large: ask for one row unless the user chose a selection.
    if "n" in spec.options and "n" not in options:
        options = {**options, "n": 1}
    try:
        return md.load(name, **options)
    except md.DatasetError as exc:
        return f"unavailable ({exc})"


def _sample(rows: datasets.Dataset | str) -> str:
    if isinstance(rows, str):
        return rows
    if len(rows) == 0:
        return "none (the dataset is empty)"
    row = {k: (v[:PREVIEW_CHARS] + "..." if isinstance(v, str) and len(v) > PREVIEW_CHARS else v)
           for k, v in rows[0].items()}
    return json.dumps(row, ensure_ascii=False, default=str)


def type_name(feature) -> str:
    """A column's type as the `columns` of a spec write it: string, int64, list[string]."""
    if isinstance(feature, datasets.Value):
        return feature.dtype
    if isinstance(feature, datasets.ClassLabel):
        return "class label"
    inner = getattr(feature, "feature", None)
    if inner is not None:  # List, LargeList, Sequence
        return f"list[{type_name(inner)}]"
    if isinstance(feature, list) and feature:
        return f"list[{type_name(feature[0])}]"
    if isinstance(feature, dict):
        return "{" + ", ".join(f"{k}: {type_name(v)}" for k, v in feature.items()) + "}"
    return type(feature).__name__


def column_lines(spec: md.DatasetSpec, rows: datasets.Dataset | str) -> list[str]:
    """The columns the kind requires, those the plugin declares, and any others
    the loaded rows really have (a plugin need not declare them)."""
    required = md.REQUIRED_COLUMNS[spec.kind]
    loaded = {} if isinstance(rows, str) else dict(rows.features)
    columns = {c: spec.columns.get(c) or (type_name(loaded[c]) if c in loaded else "")
               for c in [*required, *spec.columns, *loaded]}
    return [f"  {c}: {t}".rstrip(": ") + (" (required)" if c in required else "")
            for c, t in columns.items()]


def describe_dataset(name: str, options: tuple[str, ...] = (), sample: bool = True) -> str:
    spec = md.get(name)
    parsed = parse_options(options)
    rows = _load_sample(name, spec, parsed) if sample else "not loaded"
    lines = [
        f"name:        {spec.name}",
        f"kind:        {spec.kind.value}",
        f"package:     {spec.package}",
        f"source:      {spec.source}",
        f"description: {spec.description}",
        f"size:        {spec.size or 'not declared'}",
        f"license:     {spec.license or 'not declared'}",
        f"gated:       {'yes' if spec.gated else 'no'}" + (f" ({spec.access})" if spec.gated else ""),
        f"text:        {spec.text or KIND_TEXT[spec.kind]}",
        f"selection:   {spec.selection or 'not declared'}",
        "columns:",
    ]
    lines += column_lines(spec, rows)
    lines.append("options:" if spec.options else "options:     none")
    lines += [f"  {k}: {json.dumps(v)}" for k, v in spec.options.items()]
    if sample:
        lines.append(f"sample:      {_sample(rows)}")
    return "\n".join(lines)

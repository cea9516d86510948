"""`magic datasets show`: what a dataset plugin declares, plus one sample row."""

from __future__ import annotations

import json

import magic_datasets as md
import yaml

PREVIEW_CHARS = 300


def parse_options(assignments: tuple[str, ...]) -> dict:
    options = {}
    for assignment in assignments:
        if "=" not in assignment:
            raise md.DatasetError(f"--option {assignment!r}: expected KEY=VALUE, e.g. n=4")
        key, _, raw = assignment.partition("=")
        options[key.strip()] = yaml.safe_load(raw)
    return options


def _sample(name: str, spec: md.DatasetSpec, options: dict) -> str:
    # Hub corpora can be large: ask for one row unless the user chose a selection.
    if "n" in spec.options and "n" not in options:
        options = {**options, "n": 1}
    try:
        rows = md.load(name, **options)
    except md.DatasetError as exc:
        return f"unavailable ({exc})"
    if len(rows) == 0:
        return "none (the dataset is empty)"
    row = {k: (v[:PREVIEW_CHARS] + "..." if isinstance(v, str) and len(v) > PREVIEW_CHARS else v)
           for k, v in rows[0].items()}
    return json.dumps(row, ensure_ascii=False, default=str)


def describe_dataset(name: str, options: tuple[str, ...] = (), sample: bool = True) -> str:
    spec = md.get(name)
    parsed = parse_options(options)
    lines = [
        f"name:        {spec.name}",
        f"kind:        {spec.kind.value}",
        f"package:     {spec.package}",
        f"source:      {spec.source}",
        f"description: {spec.description}",
        f"size:        {spec.size or 'not declared'}",
        f"license:     {spec.license or 'not declared'}",
        f"gated:       {'yes' if spec.gated else 'no'}" + (f" ({spec.access})" if spec.gated else ""),
        f"text:        {spec.text or 'the text column'}",
        f"selection:   {spec.selection or 'not declared'}",
        "columns:",
    ]
    required = md.REQUIRED_COLUMNS[spec.kind]
    columns = spec.columns or {c: "" for c in required}
    lines += [f"  {c}: {t}".rstrip(": ") + (" (required)" if c in required else "")
              for c, t in columns.items()]
    lines.append("options:" if spec.options else "options:     none")
    lines += [f"  {k}: {json.dumps(v)}" for k, v in spec.options.items()]
    if sample:
        lines.append(f"sample:      {_sample(name, spec, parsed)}")
    return "\n".join(lines)

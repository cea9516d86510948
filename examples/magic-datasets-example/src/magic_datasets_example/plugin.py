"""Registers the example datasets with magic-datasets.

`magic` finds this module through the ``magic.datasets`` entry point in
pyproject.toml and calls its `magic_datasets_register` hook.
"""

from __future__ import annotations

import datasets
from magic_datasets import DatasetError, DatasetSpec, Kind, hookimpl

from .data import NOTES, QUERIES


def _rows(texts: list[str], prefix: str, n: int | None) -> datasets.Dataset:
    if n is not None and not 0 < n <= len(texts):
        # User mistakes are one-line DatasetErrors naming the fix.
        raise DatasetError(f"{prefix}: n must be between 1 and {len(texts)}, got {n}")
    texts = texts if n is None else texts[:n]
    # Stable ids let scores be traced back to a row on any machine.
    return datasets.Dataset.from_dict(
        {"id": [f"{prefix}-{i:02d}" for i in range(len(texts))], "text": texts}
    )


def load_notes(n: int | None = None) -> datasets.Dataset:
    return _rows(NOTES, "kitchen-note", n)


def load_queries(n: int | None = None) -> datasets.Dataset:
    return _rows(QUERIES, "kitchen-query", n)


@hookimpl
def magic_datasets_register() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            "example-kitchen-notes", Kind.TRAINING_CORPUS, load_notes,
            description="example plugin: short notes about cooking",
            source="built into magic-datasets-example", license="CC0-1.0",
            options={"n": None}, columns={"id": "string", "text": "string"},
            size=f"{len(NOTES)} notes", selection="the first n notes (None: all)",
        ),
        DatasetSpec(
            "example-kitchen-queries", Kind.LM, load_queries,
            description="example plugin: sentences whose loss the notes should lower",
            source="built into magic-datasets-example", license="CC0-1.0",
            options={"n": None}, columns={"id": "string", "text": "string"},
            size=f"{len(QUERIES)} sentences", selection="the first n sentences (None: all)",
        ),
    ]

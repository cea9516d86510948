"""The top-level sections only one kind of job file has, which tell the kinds apart
when a file has no ``kind:`` key (a test keeps them equal to the job dataclasses)."""

from __future__ import annotations

KIND_SECTIONS = {
    "attribute": ("data", "query", "train", "attribution"),
    "unlearn": ("forget", "retain", "scores", "recipe", "optim", "eval", "relearn", "max_seq_len"),
}


def kind_by_sections(data: dict) -> str | None:
    """The one kind whose own sections ``data`` has, or None (neither, or both)."""
    kinds = [kind for kind, sections in KIND_SECTIONS.items() if set(sections) & set(data)]
    return kinds[0] if len(kinds) == 1 else None

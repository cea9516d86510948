"""Which command a job file is for (``kind: attribute | unlearn``), and loading it as such."""

from __future__ import annotations

import copy
from pathlib import Path

from magic_core import ConfigError, from_mapping

from .job_sections import KIND_SECTIONS
from .jobs import AttributeJob, apply_override, read_mapping
from .unlearn_jobs import UnlearnJob, build_job

KINDS = tuple(KIND_SECTIONS)


def job_kind(data: dict) -> str:
    kind = data.get("kind")
    if kind is None:
        return "unlearn" if set(KIND_SECTIONS["unlearn"]) & set(data) else "attribute"
    if kind not in KINDS:
        raise ConfigError(f"kind: expected one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    return kind


def build_any_job(data: dict, overrides: tuple[str, ...] = ()) -> AttributeJob | UnlearnJob:
    """The typed job of either kind (every key and override checked)."""
    if job_kind(data) == "unlearn":
        return build_job(data, overrides)
    data = copy.deepcopy(data)  # overrides edit nested sections
    for assignment in overrides:
        apply_override(data, assignment)
    return from_mapping(AttributeJob, data)


def load_any_job(source: str | Path | None, overrides: tuple[str, ...] = ()):
    """``(mapping as read, typed job)`` of a job file or ``preset:NAME``."""
    data = read_mapping(source)
    return data, build_any_job(data, overrides)

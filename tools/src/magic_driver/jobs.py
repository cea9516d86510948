"""Job files: YAML in, typed and validated config out (with ``--set key=value`` overrides)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from magic_core import AttributionConfig, ConfigError, TrainConfig, from_mapping


@dataclass(frozen=True)
class ModelSection:
    # A local directory or hub id for from_pretrained, or "builtin:world-base".
    path: str = "builtin:world-base"
    tokenizer: str | None = None  # defaults to the model's own


@dataclass(frozen=True)
class DataSection:
    dataset: str = "world-attribution"
    options: dict[str, Any] = field(default_factory=dict)
    n_docs: int | None = None  # first N rows; None: all
    text_column: str = "text"
    # Documents longer than train.max_seq_len: "truncate" keeps the first
    # tokens; "chunk" trains on every max_seq_len piece, each scored on its
    # own and tagged with its document's source_id.
    long_documents: Literal["truncate", "chunk"] = "truncate"


@dataclass(frozen=True)
class QuerySpec:
    objective: Literal["multiple-choice", "lm"] = "multiple-choice"
    dataset: str = "world-hazard-mcqa"
    options: dict[str, Any] = field(default_factory=dict)
    prompt_style: Literal["lm-eval", "seed"] = "lm-eval"
    limit: int | None = None
    text_column: str = "text"


@dataclass(frozen=True)
class QuerySection:
    objective: Literal["multiple-choice", "lm", "contrast"] = "multiple-choice"
    dataset: str = "world-hazard-mcqa"
    options: dict[str, Any] = field(default_factory=dict)
    prompt_style: Literal["lm-eval", "seed"] = "lm-eval"
    limit: int | None = None
    text_column: str = "text"
    # objective: contrast -> positive - weight * negative
    positive: QuerySpec | None = None
    negative: QuerySpec | None = None
    weight: float = 1.0

    def __post_init__(self):
        if self.objective == "contrast" and (self.positive is None or self.negative is None):
            raise ConfigError("query: objective 'contrast' needs query.positive and query.negative")


@dataclass(frozen=True)
class OutputSection:
    dir: str = "runs/attribution"


@dataclass(frozen=True)
class AttributeJob:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    query: QuerySection = field(default_factory=QuerySection)
    train: TrainConfig = field(default_factory=TrainConfig)
    attribution: AttributionConfig = field(default_factory=AttributionConfig)
    output: OutputSection = field(default_factory=OutputSection)
    device: str = "auto"


def apply_override(data: dict, assignment: str) -> None:
    """``train.lr=1e-4`` -> data["train"]["lr"] = 1e-4 (the value is parsed as YAML)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. train.lr=1e-4")
    key, _, raw = assignment.partition("=")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def read_mapping(path: str | Path | None) -> dict:
    """A job file's top-level mapping ({} without a file)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"job file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def load_job(path: str | Path | None, overrides: tuple[str, ...] = ()) -> AttributeJob:
    data = read_mapping(path)
    for assignment in overrides:
        apply_override(data, assignment)
    return from_mapping(AttributeJob, data)

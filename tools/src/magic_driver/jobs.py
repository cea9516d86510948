"""Job files: YAML in, typed and validated config out (with ``--set key=value`` overrides)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from magic_core import AttributionConfig, ConfigError, TrainConfig, from_mapping
from magic_core.device_names import device_problem
from magic_core.typed_config import setting

from . import presets
from .job_sections import KIND_SECTIONS, kind_by_sections
from .slurm_section import SlurmSection


def device_setting():
    """Every job's ``device`` key; whether that device is present is known only where it runs."""
    return setting("auto", check=device_problem)


@dataclass(frozen=True)
class ModelSection:
    # A local directory or hub id for from_pretrained, or "builtin:world-base".
    path: str = "builtin:world-base"
    tokenizer: str | None = None  # defaults to the model's own


@dataclass(frozen=True)
class DataSection:
    dataset: str = "world-attribution"
    options: dict[str, Any] = field(default_factory=dict)
    n_docs: int | None = setting(None, ge=1, hint="leave it out for every row")  # first N rows
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
    limit: int | None = setting(None, ge=1, hint="leave it out for every row")
    text_column: str = "text"


@dataclass(frozen=True)
class QuerySection:
    objective: Literal["multiple-choice", "lm", "contrast"] = "multiple-choice"
    dataset: str = "world-hazard-mcqa"
    options: dict[str, Any] = field(default_factory=dict)
    prompt_style: Literal["lm-eval", "seed"] = "lm-eval"
    limit: int | None = setting(None, ge=1, hint="leave it out for every row")
    text_column: str = "text"
    # objective: contrast -> positive - weight * negative
    positive: QuerySpec | None = None
    negative: QuerySpec | None = None
    weight: float = setting(1.0, ge=0)

    def __post_init__(self):
        if self.objective == "contrast" and (self.positive is None or self.negative is None):
            raise ConfigError("query: objective 'contrast' needs query.positive and query.negative")


def check_query_kind(spec: QuerySpec | QuerySection, kind: str, key: str = "query") -> None:
    """Refuse a query objective that cannot read its dataset's kind (a dataset
    kind value of magic_datasets), naming the objective that can.

    Checked before the rows are loaded, so a mismatch never waits on a download.
    """
    if spec.objective == "multiple-choice" and kind != "multiple-choice":
        raise ConfigError(
            f"{key}.dataset {spec.dataset!r} is a {kind} set, not multiple-choice; set "
            f"{key}.objective: lm to score its text, or choose a multiple-choice dataset"
        )
    if spec.objective == "lm" and kind == "multiple-choice":
        raise ConfigError(
            f"{key}.dataset {spec.dataset!r} is multiple-choice (question, choices, answer; no "
            f"text column); set {key}.objective: multiple-choice"
        )


@dataclass(frozen=True)
class OutputSection:
    dir: str = "runs/attribution"


@dataclass(frozen=True)
class AttributeJob:
    # Lets `magic submit` (and a reader) tell job files apart; a mismatch is refused.
    kind: Literal["attribute"] = "attribute"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    query: QuerySection = field(default_factory=QuerySection)
    train: TrainConfig = field(default_factory=TrainConfig)
    attribution: AttributionConfig = field(default_factory=AttributionConfig)
    output: OutputSection = field(default_factory=OutputSection)
    device: str = device_setting()
    slurm: SlurmSection = field(default_factory=SlurmSection)  # used by `magic submit` only


def apply_override(data: dict, assignment: str) -> None:
    """``train.lr=1e-4`` -> data["train"]["lr"] = 1e-4 (the value is parsed as YAML)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. train.lr=1e-4")
    key, _, raw = assignment.partition("=")
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {assignment!r}: {key!r} is not a dotted key; write e.g. train.lr=1e-4")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        problem = str(exc).strip().splitlines()[0]
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({problem}); quote it "
                          f"or drop tabs and brackets, e.g. --set {key}=1e-4") from None
    node = data
    for part in parts[:-1]:
        if node.get(part) is None:  # `train:` with nothing under it reads as None
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {part} is not a section")
    node[parts[-1]] = value


def read_mapping(path: str | Path | None) -> dict:
    """A job file's top-level mapping ({} without a file); ``preset:NAME`` reads a shipped preset."""
    if path is None:
        return {}
    if presets.is_preset_reference(str(path)):
        return presets.get_preset(str(path)).mapping()
    path = Path(path)
    if not path.is_file():
        known = {p.name for p in presets.list_presets()}
        hint = f"; for the shipped preset write preset:{path}" if str(path) in known else ""
        raise ConfigError(f"job file {str(path)!r} does not exist{hint}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file (byte {exc.object[exc.start]:#04x} at offset "
                          f"{exc.start} is not UTF-8); give a YAML job file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read job file {str(path)!r}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def check_kind(data: dict, expected: str) -> None:
    """A job file of the other kind gets the command to use, not a list of unknown keys;
    without a ``kind:`` key its sections tell."""
    kind = data.get("kind")
    if kind is None:
        kind = kind_by_sections(data)
        if kind is not None and kind != expected:
            own = ", ".join(s for s in KIND_SECTIONS[kind] if s in data)
            raise ConfigError(f"this is an {kind} job (sections {own}); run it with "
                              f"`magic {kind}` (or `magic submit`)")
    elif kind != expected and kind in KIND_SECTIONS:
        raise ConfigError(f"kind: this is an {kind} job; run it with `magic {kind}` "
                          f"(or `magic submit`)")


def load_job(path: str | Path | None, overrides: tuple[str, ...] = ()) -> AttributeJob:
    data = read_mapping(path)
    check_kind(data, "attribute")
    for assignment in overrides:
        apply_override(data, assignment)
    return from_mapping(AttributeJob, data)

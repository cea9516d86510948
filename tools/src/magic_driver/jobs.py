"""Job files: YAML in, typed and validated config out (with ``--set key=value`` overrides)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from magic_core import AttributionConfig, ConfigError, TrainConfig, from_mapping, objective_registry
from magic_core.device_names import device_problem
from magic_core.durations import duration_problem
from magic_core.typed_config import setting

from . import presets
from .job_sections import KIND_SECTIONS, kind_by_sections
from .slurm_section import SlurmSection


def device_setting():
    """Every job's ``device`` key; whether that device is present is known only where it runs."""
    return setting("auto", check=device_problem)


@dataclass(frozen=True)
class ModelSection:
    """The model whose fine-tuning data is attributed."""

    path: str = "builtin:world-base"
    """A local directory or hub id for ``from_pretrained``, or ``builtin:world-base`` (the
    built-in world's model, shipped with the package and verified by sha256)."""
    tokenizer: str | None = None
    """Where to load the tokenizer from; null: the model's own."""


@dataclass(frozen=True)
class DataSection:
    """The training corpus: the documents that get scores."""

    dataset: str = "world-attribution"
    """A training-corpus dataset (`magic datasets list`)."""
    options: dict[str, Any] = field(default_factory=dict)
    """The dataset loader's options (`magic datasets show NAME`)."""
    n_docs: int | None = setting(None, ge=1, hint="leave it out for every row")
    """Train on the first N rows; null: every row."""
    text_column: str = "text"
    """The column holding each document's text."""
    long_documents: Literal["truncate", "chunk"] = "truncate"
    """Documents longer than the job's ``max_seq_len`` (``train.max_seq_len`` in an attribution
    job): ``truncate`` keeps their first tokens;
    ``chunk`` trains on every ``max_seq_len`` piece, each scored on its own and tagged with
    its document's ``source_id``."""


def _objective_problem(name: str) -> str | None:
    return objective_registry.default_registry().problem(name)


def _part_objective_problem(name: str) -> str | None:
    # a sub-query has no parts of its own
    return objective_registry.default_registry().problem(name, composite=False)


@dataclass(frozen=True)
class QuerySpec:
    """One sub-query of a composite objective (``query.positive``, ``query.negative``)."""

    objective: str = setting("multiple-choice", check=_part_objective_problem)
    """A registered objective that reads one dataset (not a composite such as ``contrast``)."""
    dataset: str = "world-hazard-mcqa"
    """The query dataset; its kind must be one the objective reads."""
    options: dict[str, Any] = field(default_factory=dict)
    """The dataset loader's options."""
    prompt_style: Literal["lm-eval", "seed"] = "lm-eval"
    """How ``multiple-choice`` writes a question as a prompt."""
    limit: int | None = setting(None, ge=1, hint="leave it out for every row")
    """Use the first N rows; null: every row."""
    text_column: str = "text"
    """The column ``lm`` scores."""
    objective_options: dict[str, Any] = field(default_factory=dict)
    """Options of the objective that have no key of their own here (a plugin's objective)."""


@dataclass(frozen=True)
class QuerySection:
    """The query: the scalar whose dependence on each training document is measured."""

    objective: str = setting("multiple-choice", check=_objective_problem)
    """A registered objective: ``multiple-choice`` (answer-letter cross-entropy), ``lm``
    (token cross-entropy of a text set), ``contrast`` (``positive`` minus ``weight`` x
    ``negative``), or one a plugin adds (docs/adding-an-objective.md)."""
    dataset: str = "world-hazard-mcqa"
    """The query dataset; its kind must be one the objective reads."""
    options: dict[str, Any] = field(default_factory=dict)
    """The dataset loader's options."""
    prompt_style: Literal["lm-eval", "seed"] = "lm-eval"
    """How ``multiple-choice`` writes a question as a prompt."""
    limit: int | None = setting(None, ge=1, hint="leave it out for every row")
    """Use the first N rows; null: every row."""
    text_column: str = "text"
    """The column ``lm`` scores."""
    positive: QuerySpec | None = None
    """``contrast``: the sub-query whose objective counts positively."""
    negative: QuerySpec | None = None
    """``contrast``: the sub-query whose objective is subtracted, times ``weight``."""
    weight: float = setting(1.0, ge=0)
    """``contrast``: the weight of the negative sub-query."""
    objective_options: dict[str, Any] = field(default_factory=dict)
    """Options of the objective that have no key of their own here (a plugin's objective)."""

    def __post_init__(self):
        check_query(self, "query")


def check_query(query: QuerySpec | QuerySection, key: str) -> None:
    """Refuse a query whose objective lacks its sub-queries or gets options it does not have."""
    spec = objective_registry.get_objective(query.objective)
    if any(getattr(query, part, None) is None for part in spec.parts):
        raise ConfigError(f"{key}: objective {spec.name!r} needs "
                          + " and ".join(f"{key}.{part}" for part in spec.parts))
    for option in query.objective_options:
        if hasattr(query, option):
            raise ConfigError(f"{key}.objective_options.{option}: {option} is a query key; "
                              f"write {key}.{option} instead")
        if option not in spec.options:
            close = difflib.get_close_matches(option, list(spec.options), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            accepted = ", ".join(o for o in spec.options if not hasattr(query, o)) or "none"
            raise ConfigError(f"{key}.objective_options: objective {spec.name!r} has no option "
                              f"{option!r}{hint}; it accepts: {accepted}")
    for part in spec.parts:
        check_query(getattr(query, part), f"{key}.{part}")


def objective_options(query: QuerySpec | QuerySection) -> dict[str, Any]:
    """Every option of the query's objective: from its query key, its objective_options
    entry, or the objective's default."""
    spec = objective_registry.get_objective(query.objective)
    return {name: getattr(query, name) if hasattr(query, name)
            else query.objective_options.get(name, default)
            for name, default in spec.options.items()}


# How a refusal describes a dataset of each kind (magic_datasets.Kind values) that an
# objective cannot read; other kinds read "a KIND set, not WHAT_IT_READS".
_KIND_WORDS = {"multiple-choice": "multiple-choice (question, choices, answer; no text column)"}


def check_query_kind(spec: QuerySpec | QuerySection, kind: str, key: str = "query") -> None:
    """Refuse a query objective that cannot read its dataset's kind (a dataset
    kind value of magic_datasets), naming the objectives that can.

    Checked before the rows are loaded, so a mismatch never waits on a download.
    """
    objective = objective_registry.get_objective(spec.objective)
    if objective.composite or kind in objective.reads:
        return
    reads = " or ".join(objective.reads)
    what = _KIND_WORDS.get(kind, f"a {kind} set, not {reads}")
    readers = [s for s in objective_registry.list_objectives() if kind in s.reads]
    fixes = [f"set {key}.objective: " + " or ".join(
        f"{s.name} {s.use}".strip() for s in readers)] if readers else []
    if len(objective.reads) == 1 or not readers:  # one kind to name as the other way out
        fixes.append(f"choose a {reads} dataset")
    raise ConfigError(f"{key}.dataset {spec.dataset!r} is {what}; {', or '.join(fixes)}")


def checkpoint_every_setting():
    """``output.checkpoint_every`` of every job kind: a duration, 10 minutes by default."""
    return setting("10m", check=duration_problem)


def stop_grace_setting():
    """``output.stop_grace`` of every job kind: a duration, 20 seconds by default."""
    return setting("20s", check=duration_problem)


@dataclass(frozen=True)
class OutputSection:
    """Where the run is written."""

    dir: str = "runs/attribution"
    """The run directory (``--out`` overrides it)."""
    checkpoint_every: str | float | bool = checkpoint_every_setting()
    """How often the running job writes a checkpoint to resume from should it be killed
    outright (SIGKILL, out of memory, a lost node), at the next step boundary: ``30s``,
    ``10m``, ``1h``; ``0`` or ``off``: only when stopped by SIGTERM/SIGUSR1
    (``--checkpoint-every`` overrides it; see docs/preemption.md)."""
    stop_grace: str | float | bool = stop_grace_setting()
    """How long the final checkpoint after SIGTERM/SIGUSR1 may take: when the run's
    earlier checkpoints took longer, it exits at once and resumes from its last periodic
    checkpoint instead (the default stays inside Slurm's 30 s KillWait; raise it to the
    ``--signal`` lead time you ask for); ``off``: always write it."""


@dataclass(frozen=True)
class AttributeJob:
    """An attribution job file (`magic attribute`)."""

    kind: Literal["attribute"] = "attribute"
    """Tells `magic submit` (and a reader) which command runs the file; a mismatch is
    refused."""
    model: ModelSection = field(default_factory=ModelSection)
    """The model."""
    data: DataSection = field(default_factory=DataSection)
    """The training corpus."""
    query: QuerySection = field(default_factory=QuerySection)
    """The query objective."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The fine-tuning run whose data is attributed."""
    attribution: AttributionConfig = field(default_factory=AttributionConfig)
    """How the metagradient is computed."""
    output: OutputSection = field(default_factory=OutputSection)
    """Where the run is written."""
    device: str = device_setting()
    """``auto`` (a GPU when one is visible, else the CPU), ``cpu``, ``cuda``, ``cuda:N`` or
    ``mps``."""
    slurm: SlurmSection = field(default_factory=SlurmSection)
    """Resources `magic submit` asks for; other commands ignore it."""


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

"""Unlearning job files: YAML in, a typed `UnlearnJob` out (``--set``/``--param`` overrides)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml
from magic_core import from_mapping
from magic_core.typed_config import setting
from magic_unlearn import OptimConfig, RelearnConfig, apply_preset

from .jobs import (
    DataSection,
    ModelSection,
    apply_override,
    check_kind,
    checkpoint_every_setting,
    device_setting,
    read_mapping,
    stop_grace_setting,
)
from .slurm_section import SlurmSection

DEFAULT_MAX_SEQ_LEN = 128  # UnlearnJob.max_seq_len's docstring names it


@dataclass(frozen=True)
class ScoresSection:
    """Attribution scores of the forget corpus, from earlier `magic attribute` runs."""

    forget: str | None = None
    """Run directory of `magic attribute` on the forget corpus with the hazard query
    (per-token); needed by ``attribution-weighted``, ``npo-attribution`` and
    ``rmu-attribution``."""
    retain: str | None = None
    """Run directory of scores of the same corpus for a retain query; needed by
    ``selection: selective``."""


@dataclass(frozen=True)
class RecipeSection:
    """How the forget and retain corpora make the unlearning loss."""

    name: str = "attribution-weighted"
    """A recipe from `magic recipes list`."""
    options: dict[str, Any] = field(default_factory=dict)
    """The recipe's options (`magic recipes show NAME`)."""


@dataclass(frozen=True)
class OptimSection(OptimConfig):
    """`OptimConfig` plus a preset that sets optimizer and batch_size to one of the seed's jobs."""

    steps: int = setting(40, ge=1)
    """Optimizer steps."""
    preset: Literal["seed-bs4-adam", "seed-bs16-adam", "seed-bs16-adamw"] | None = None
    """Sets optimizer and batch_size to one of the seed pipeline's jobs: ``seed-bs4-adam``,
    ``seed-bs16-adam``, ``seed-bs16-adamw``."""

    def resolve(self) -> OptimConfig:
        plain = OptimConfig(**{f.name: getattr(self, f.name) for f in fields(OptimConfig)})
        return apply_preset(plain, self.preset)


@dataclass(frozen=True)
class QuestionsSection:
    """A multiple-choice question set."""

    dataset: str
    """A multiple-choice set from `magic datasets list`."""
    options: dict[str, Any] = field(default_factory=dict)
    """Its loader's options."""
    limit: int | None = setting(None, ge=1, hint="leave it out for every question")
    """Use the first N questions; null: all."""


@dataclass(frozen=True)
class EvalSection:
    """The multiple-choice sets scored before, after, and after relearning."""

    hazard: QuestionsSection = QuestionsSection("world-hazard-mcqa")
    """The WMDP-bio-robust role: accuracy to bring to chance."""
    general: QuestionsSection = QuestionsSection("world-general-mcqa")
    """The MMLU role: accuracy to keep."""


@dataclass(frozen=True)
class UnlearnOutput:
    """Where the run is written."""

    dir: str = "runs/unlearn"
    """The output directory (``--out`` overrides it)."""
    save_model: bool = True
    """Write the unlearned model to ``OUT/model`` (``save_pretrained``)."""
    checkpoint_every: str | float | bool = checkpoint_every_setting()
    """How often the running job (each point of a sweep) writes a checkpoint to resume from
    should it be killed outright (SIGKILL, out of memory, a lost node), at the next
    unlearning or relearning step: ``30s``, ``10m``, ``1h``; ``0`` or ``off``: only when
    stopped by SIGTERM/SIGUSR1 (``--checkpoint-every`` overrides it; see docs/preemption.md)."""
    stop_grace: str | float | bool = stop_grace_setting()
    """How long the final checkpoint after SIGTERM/SIGUSR1 may take: when the run's
    earlier checkpoints took longer, it exits at once and resumes from its last periodic
    checkpoint instead (the default stays inside Slurm's 30 s KillWait); ``off``: always
    write it."""


@dataclass(frozen=True)
class UnlearnJob:
    """An unlearning job file (`magic unlearn`)."""

    kind: Literal["unlearn"] = "unlearn"
    """Tells `magic submit` (and a reader) which command runs the file; a mismatch is
    refused."""
    model: ModelSection = field(default_factory=ModelSection)
    """The model the forget corpus is unlearned from."""
    forget: DataSection = DataSection("world-forget-corpus")
    """The corpus to unlearn (keys of an attribution job's ``data:``)."""
    retain: DataSection = DataSection("world-retain-corpus")
    """Text whose behaviour is kept (the retain terms of a recipe)."""
    scores: ScoresSection = field(default_factory=ScoresSection)
    """Attribution scores of the forget corpus, from earlier `magic attribute` runs."""
    recipe: RecipeSection = field(default_factory=RecipeSection)
    """How the forget and retain corpora make the unlearning loss."""
    optim: OptimSection = field(default_factory=OptimSection)
    """The unlearning run's optimizer (plain ``torch.optim``) and its steps."""
    eval: EvalSection = field(default_factory=EvalSection)
    """Multiple-choice sets scored before, after, and after relearning: ``hazard`` (the
    WMDP-bio-robust role, accuracy to bring to chance) and ``general`` (the MMLU role,
    accuracy to keep)."""
    relearn: RelearnConfig = field(default_factory=RelearnConfig)
    """The relearning attack: fine-tune the unlearned model on a few forget documents,
    then evaluate again (tamper resistance)."""
    output: UnlearnOutput = field(default_factory=UnlearnOutput)
    """Where the run is written."""
    max_seq_len: int | None = setting(None, ge=1)
    """Tokens per row, at most the model's positions. Used only without scores (with them,
    the scores run's length); null: 128, or the model's positions where it has fewer."""
    device: str = device_setting()
    """``auto`` (a GPU when one is visible, else the CPU), ``cpu``, ``cuda``, ``cuda:N`` or
    ``mps``."""
    slurm: SlurmSection = field(default_factory=SlurmSection)
    """Resources `magic submit` asks for; other commands ignore it."""


def build_job(data: dict, overrides: tuple[str, ...] = ()) -> UnlearnJob:
    check_kind(data, "unlearn")
    data = yaml.safe_load(yaml.safe_dump(data))  # a deep copy overrides may edit
    # DataSection's own default dataset is the attribution corpus; here the
    # sections default to the world's forget and retain corpora.
    for section, dataset in (("forget", "world-forget-corpus"), ("retain", "world-retain-corpus")):
        if isinstance(data.get(section, {}), dict):
            data.setdefault(section, {}).setdefault("dataset", dataset)
    for assignment in overrides:
        apply_override(data, assignment)
    return from_mapping(UnlearnJob, data)


def load_unlearn_job(path: str | Path | None, overrides: tuple[str, ...] = ()) -> UnlearnJob:
    return build_job(read_mapping(path), overrides)

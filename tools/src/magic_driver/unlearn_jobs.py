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
    device_setting,
    read_mapping,
)
from .slurm_section import SlurmSection

DEFAULT_MAX_SEQ_LEN = 128


@dataclass(frozen=True)
class ScoresSection:
    forget: str | None = None  # run dir of forget-query per-token scores of the forget corpus
    retain: str | None = None  # run dir of retain-query scores of the same corpus (selective)


@dataclass(frozen=True)
class RecipeSection:
    name: str = "attribution-weighted"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimSection(OptimConfig):
    """`OptimConfig` plus a preset that sets optimizer and batch_size to one of the seed's jobs."""

    steps: int = setting(40, ge=1)
    preset: Literal["seed-bs4-adam", "seed-bs16-adam", "seed-bs16-adamw"] | None = None

    def resolve(self) -> OptimConfig:
        plain = OptimConfig(**{f.name: getattr(self, f.name) for f in fields(OptimConfig)})
        return apply_preset(plain, self.preset)


@dataclass(frozen=True)
class QuestionsSection:
    dataset: str
    options: dict[str, Any] = field(default_factory=dict)
    limit: int | None = setting(None, ge=1, hint="leave it out for every question")


@dataclass(frozen=True)
class EvalSection:
    hazard: QuestionsSection = QuestionsSection("world-hazard-mcqa")  # WMDP-bio-robust role
    general: QuestionsSection = QuestionsSection("world-general-mcqa")  # MMLU role


@dataclass(frozen=True)
class UnlearnOutput:
    dir: str = "runs/unlearn"
    save_model: bool = True


@dataclass(frozen=True)
class UnlearnJob:
    kind: Literal["unlearn"] = "unlearn"
    model: ModelSection = field(default_factory=ModelSection)
    forget: DataSection = DataSection("world-forget-corpus")
    retain: DataSection = DataSection("world-retain-corpus")
    scores: ScoresSection = field(default_factory=ScoresSection)
    recipe: RecipeSection = field(default_factory=RecipeSection)
    optim: OptimSection = field(default_factory=OptimSection)
    eval: EvalSection = field(default_factory=EvalSection)
    relearn: RelearnConfig = field(default_factory=RelearnConfig)
    output: UnlearnOutput = field(default_factory=UnlearnOutput)
    # Used only without scores (with them, the scores run's length); at most the model's
    # positions. None: DEFAULT_MAX_SEQ_LEN, or the model's positions where it has fewer.
    max_seq_len: int | None = setting(None, ge=1)
    device: str = device_setting()
    slurm: SlurmSection = field(default_factory=SlurmSection)  # used by `magic submit` only


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

"""Checks of a job against its data, made where the data is first known and before any
model is built: dataset kinds, counts bounded by a corpus, scores of the same corpus."""

from __future__ import annotations

from pathlib import Path

import magic_datasets as md
from magic_core import ConfigError
from magic_core.outputs import MANIFEST
from magic_core.run_reader import DamagedRun, read_manifest
from magic_core.typed_config import to_mapping

from .jobs import DataSection

# What decides a corpus's rows, as a scores run's manifest records it (config.data).
CORPUS_KEYS = ("dataset", "options", "n_docs", "text_column", "long_documents")


def check_corpus_kind(dataset: str, key: str) -> None:
    """A corpus section (data, forget, retain) must name text to train on."""
    if md.get(dataset).kind == md.Kind.MULTIPLE_CHOICE:
        raise ConfigError(f"{key}.dataset {dataset!r} is multiple-choice (questions, no text to "
                          f"train on); choose a training corpus (see `magic datasets list`)")


def check_questions_kind(dataset: str, key: str) -> None:
    """An evaluation set must be multiple-choice (checked before its options are read)."""
    kind = md.get(dataset).kind
    if kind != md.Kind.MULTIPLE_CHOICE:
        raise ConfigError(f"{key}.dataset {dataset!r} is a {kind.value} set, not multiple-choice; "
                          f"choose a multiple-choice dataset (see `magic datasets list`)")


def check_relearn_docs(n_docs: int, enabled: bool, forget_dataset: str, n_forget: int) -> None:
    if enabled and n_docs > n_forget:
        raise ConfigError(f"relearn.n_docs={n_docs} but the forget corpus {forget_dataset!r} has "
                          f"only {n_forget} documents; set relearn.n_docs to {n_forget} or less")


def check_scores_source(scores_dir: str, role: str, forget, section: DataSection) -> None:
    """Refuse a scores run of another corpus than ``forget`` (the rows ``section`` loads),
    naming the settings that differ from those its manifest records; fingerprints alone
    do not say which."""
    path = Path(scores_dir) / MANIFEST
    if not path.is_file():
        return  # the scores loader says what is missing
    try:
        manifest = read_manifest(Path(scores_dir))
    except DamagedRun as exc:
        raise ConfigError(f"scores.{role}: {exc}") from None
    if manifest.get("fingerprints", {}).get("dataset") == md.dataset_fingerprint(forget):
        return
    data = manifest.get("config", {}).get("data")
    if data is None:
        return  # no record of its corpus: the scores check compares fingerprints
    # Manifests written before a key existed hold its default.
    recorded = {**to_mapping(DataSection()), **data}
    wanted = to_mapping(section)
    differ = [f"forget.{key} ({recorded[key]!r} there, {wanted[key]!r} here)"
              for key in CORPUS_KEYS if recorded.get(key) != wanted[key]]
    if not differ:
        return  # same settings, other rows (the data changed): the scores check says so
    raise ConfigError(f"scores.{role} {scores_dir} was computed on another corpus: "
                      f"{'; '.join(differ)}; set forget: as the data section of its attribution "
                      "job, or attribute this corpus")

"""Multiple-choice query / evaluation sets on the hub: WMDP-bio-robust and MMLU."""

from __future__ import annotations

import datasets

from ..errors import DatasetError
from .selection import select_rows
from .source import HubSource, load_source
from .text import add_ids, require_columns

MCQA_COLUMNS = ("question", "choices", "answer")

WMDP_BIO_ROBUST_ID = "EleutherAI/wmdp_bio_robust_mcqa"
#: the six topic configs whose ``robust`` splits make the 868 questions
WMDP_BIO_ROBUST_CONFIGS = (
    "bioweapons_and_bioterrorism",
    "dual_use_virology",
    "enhanced_potential_pandemic_pathogens",
    "expanding_access_to_threat_vectors",
    "reverse_genetics_and_easy_editing",
    "viral_vector_research",
)
MMLU = HubSource("cais/mmlu", "all", "test")

MC_OPTIONS = {"data_dir": None, "revision": None, "n": None, "select": "first", "seed": 0}


def _one_config(source: HubSource, data_dir, prefix: str) -> datasets.Dataset:
    rows = load_source(source, data_dir)
    require_columns(rows, source, MCQA_COLUMNS)
    return add_ids(rows, prefix)


def load_wmdp_bio_robust(configs: list[str] | None = None, data_dir=None, revision=None,
                         n=None, select="first", seed=0) -> datasets.Dataset:
    """The robust split of every topic config, concatenated; column ``subset`` names the config."""
    configs = list(configs or WMDP_BIO_ROBUST_CONFIGS)
    unknown = [c for c in configs if c not in WMDP_BIO_ROBUST_CONFIGS]
    if unknown:
        raise DatasetError(f"wmdp-bio-robust: unknown config {unknown[0]!r}; choose from "
                           f"{', '.join(WMDP_BIO_ROBUST_CONFIGS)}")
    parts = []
    for config in configs:
        source = HubSource(WMDP_BIO_ROBUST_ID, config, "robust", revision)
        rows = _one_config(source, data_dir, f"wmdp-bio-robust-{config}-")
        keep = ["id", *MCQA_COLUMNS]
        rows = rows.select_columns(keep).cast_column("answer", datasets.Value("int64"))
        parts.append(rows.add_column("subset", [config] * len(rows)))
    rows = datasets.concatenate_datasets(parts)
    return select_rows(rows, "wmdp-bio-robust", n, select, seed, column="question")


def load_mmlu(subjects: list[str] | None = None, data_dir=None, revision=None, n=None,
              select="first", seed=0) -> datasets.Dataset:
    source = MMLU if revision is None else HubSource(MMLU.hub_id, MMLU.config, MMLU.split, revision)
    rows = _one_config(source, data_dir, "mmlu-")
    if subjects:
        require_columns(rows, source, ("subject",))
        wanted = set(subjects)
        missing = sorted(wanted - set(rows.unique("subject")))
        if missing:
            raise DatasetError(f"mmlu: no subject {missing[0]!r} in {source.describe()}; "
                               "subjects are lower_snake_case, e.g. college_biology")
        rows = rows.filter(lambda b: [s in wanted for s in b["subject"]], batched=True)
    # ClassLabel answers (A-D) become plain indices, as the kind requires.
    rows = rows.cast_column("answer", datasets.Value("int64"))
    return select_rows(rows, "mmlu", n, select, seed, column="question",
                       after="after the subject filter" if subjects else "")

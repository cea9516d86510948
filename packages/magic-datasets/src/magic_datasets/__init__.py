"""Dataset plugins for MAGIC attribution and unlearning.

Public API: `list_datasets`, `get`, `load` (the process-wide registry built
from the ``magic.datasets`` entry points), `Registry`, `DatasetSpec`, `Kind`,
`hookimpl`, `DatasetError`, fingerprints, the multiple-choice prompt format and
`tokenize` (truncated or chunked token rows, cached on disk).
"""

from .errors import DatasetError
from .fingerprint import dataset_fingerprint, tokenizer_fingerprint
from .hookspecs import hookimpl
from .mcqa import LM_EVAL, PROMPT_STYLES, SEED, answer_continuation, format_prompt
from .registry import ENTRY_POINT_GROUP, Registry, default_registry, get, list_datasets, load
from .spec import REQUIRED_COLUMNS, DatasetSpec, Kind
from .tokenized import MODES as TOKENIZE_MODES
from .tokenized import tokenize

__all__ = [
    "ENTRY_POINT_GROUP", "LM_EVAL", "PROMPT_STYLES", "REQUIRED_COLUMNS", "SEED",
    "DatasetError", "DatasetSpec", "Kind", "Registry", "answer_continuation",
    "dataset_fingerprint", "default_registry", "format_prompt", "get", "hookimpl",
    "list_datasets", "load", "tokenize", "TOKENIZE_MODES", "tokenizer_fingerprint",
]

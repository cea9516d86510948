"""Dataset plugins for MAGIC attribution and unlearning.

Public API: `list_datasets`, `get`, `load` (the process-wide registry built
from the ``magic.datasets`` entry points), `Registry`, `DatasetSpec`, `Kind`,
`hookimpl`, `DatasetError`, `load_entry_points` (the plugin loading every
registry of the project shares), fingerprints, the multiple-choice prompt format and
`tokenize` (truncated or chunked token rows, cached on disk).

Each public name loads its own module on first use (lazy_loader, PEP 562), so
importing the package (or only `DatasetError`) does not import the `datasets` library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "errors": ["DatasetError"],
    "fingerprint": ["dataset_fingerprint", "tokenizer_fingerprint"],
    "hookspecs": ["hookimpl"],
    "mcqa": ["LM_EVAL", "PROMPT_STYLES", "SEED", "answer_continuation", "format_prompt"],
    "plugins": ["load_entry_points"],
    "registry": ["ENTRY_POINT_GROUP", "Registry", "default_registry", "get", "list_datasets",
                 "load"],
    "spec": ["REQUIRED_COLUMNS", "DatasetSpec", "Kind"],
    "tokenized": ["TOKENIZE_MODES", "tokenize"],
})

if TYPE_CHECKING:
    from .errors import DatasetError
    from .fingerprint import dataset_fingerprint, tokenizer_fingerprint
    from .hookspecs import hookimpl
    from .mcqa import LM_EVAL, PROMPT_STYLES, SEED, answer_continuation, format_prompt
    from .plugins import load_entry_points
    from .registry import ENTRY_POINT_GROUP, Registry, default_registry, get, list_datasets, load
    from .spec import REQUIRED_COLUMNS, DatasetSpec, Kind
    from .tokenized import TOKENIZE_MODES, tokenize

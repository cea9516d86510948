"""Dataset plugins for MAGIC attribution and unlearning.

Public API: `list_datasets`, `get`, `load` (the process-wide registry built
from the ``magic.datasets`` entry points), `Registry`, `DatasetSpec`, `Kind`,
`hookimpl`, `DatasetError`, fingerprints, the multiple-choice prompt format and
`tokenize` (truncated or chunked token rows, cached on disk).

Each public name loads its own module on first use (PEP 562), so importing the
package (or only `DatasetError`) does not import the `datasets` library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Public name -> (module defining it, its name there).
_EXPORTS = {
    "DatasetError": ("errors", "DatasetError"),
    "dataset_fingerprint": ("fingerprint", "dataset_fingerprint"),
    "tokenizer_fingerprint": ("fingerprint", "tokenizer_fingerprint"),
    "hookimpl": ("hookspecs", "hookimpl"),
    **{name: ("mcqa", name) for name in
       ("LM_EVAL", "PROMPT_STYLES", "SEED", "answer_continuation", "format_prompt")},
    **{name: ("registry", name) for name in
       ("ENTRY_POINT_GROUP", "Registry", "default_registry", "get", "list_datasets", "load")},
    **{name: ("spec", name) for name in ("REQUIRED_COLUMNS", "DatasetSpec", "Kind")},
    "TOKENIZE_MODES": ("tokenized", "MODES"),
    "tokenize": ("tokenized", "tokenize"),
}

__all__ = [
    "DatasetError", "DatasetSpec", "ENTRY_POINT_GROUP", "Kind", "LM_EVAL", "PROMPT_STYLES",
    "REQUIRED_COLUMNS", "Registry", "SEED", "TOKENIZE_MODES", "answer_continuation",
    "dataset_fingerprint", "default_registry", "format_prompt", "get", "hookimpl",
    "list_datasets", "load", "tokenize", "tokenizer_fingerprint",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(f".{module}", __name__), attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from .errors import DatasetError
    from .fingerprint import dataset_fingerprint, tokenizer_fingerprint
    from .hookspecs import hookimpl
    from .mcqa import LM_EVAL, PROMPT_STYLES, SEED, answer_continuation, format_prompt
    from .registry import ENTRY_POINT_GROUP, Registry, default_registry, get, list_datasets, load
    from .spec import REQUIRED_COLUMNS, DatasetSpec, Kind
    from .tokenized import MODES as TOKENIZE_MODES
    from .tokenized import tokenize

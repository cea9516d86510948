"""magic-core: exact data attribution (MAGIC metagradients) on bergson's engine.

Importing it leaves logging alone and imports neither torch nor bergson: each
public name loads its own module on first use (PEP 562), so a command that
only needs `ConfigError` or `from_mapping` starts in milliseconds.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Public name -> the module defining it.
_EXPORTS = {
    "AttributionResult": "attribution", "attribute": "attribution",
    "AttributionConfig": "config", "TrainConfig": "config",
    "TokenizedCorpus": "corpus", "tokenize_corpus": "corpus",
    "ConfigError": "errors",
    "ContrastObjective": "objectives", "LanguageModelObjective": "objectives",
    "MultipleChoiceObjective": "objectives", "QueryObjective": "objectives",
    "resolve_precision": "precision",
    "from_mapping": "typed_config", "to_mapping": "typed_config",
}

__all__ = [
    "AttributionConfig", "AttributionResult", "ConfigError", "ContrastObjective",
    "LanguageModelObjective", "MultipleChoiceObjective", "QueryObjective", "TokenizedCorpus",
    "TrainConfig", "attribute", "from_mapping", "resolve_precision", "to_mapping",
    "tokenize_corpus",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from .attribution import AttributionResult, attribute
    from .config import AttributionConfig, TrainConfig
    from .corpus import TokenizedCorpus, tokenize_corpus
    from .errors import ConfigError
    from .objectives import (
        ContrastObjective,
        LanguageModelObjective,
        MultipleChoiceObjective,
        QueryObjective,
    )
    from .precision import resolve_precision
    from .typed_config import from_mapping, to_mapping

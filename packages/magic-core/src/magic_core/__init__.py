"""magic-core: exact data attribution (MAGIC metagradients) on bergson's engine.

Importing it leaves logging alone and imports neither torch nor bergson: each
public name loads its own module on first use (lazy_loader, PEP 562), so a command that
only needs `ConfigError` or `from_mapping` starts in milliseconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

__version__ = "0.1.0"

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "attribution": ["AttributionResult", "attribute"],
    "config": ["AttributionConfig", "TrainConfig"],
    "corpus": ["TokenizedCorpus", "tokenize_corpus"],
    "errors": ["ConfigError"],
    "objectives": ["ContrastObjective", "LanguageModelObjective", "MultipleChoiceObjective",
                   "QueryObjective"],
    "objective_registry": ["ObjectiveInput", "ObjectiveSpec", "get_objective", "list_objectives"],
    "optimizer_registry": ["OptimizerSpec", "get_optimizer", "list_optimizers"],
    "precision": ["resolve_precision"],
    "typed_config": ["from_mapping", "to_mapping"],
})

if TYPE_CHECKING:
    from .attribution import AttributionResult, attribute
    from .config import AttributionConfig, TrainConfig
    from .corpus import TokenizedCorpus, tokenize_corpus
    from .errors import ConfigError
    from .objective_registry import ObjectiveInput, ObjectiveSpec, get_objective, list_objectives
    from .objectives import (
        ContrastObjective,
        LanguageModelObjective,
        MultipleChoiceObjective,
        QueryObjective,
    )
    from .optimizer_registry import OptimizerSpec, get_optimizer, list_optimizers
    from .precision import resolve_precision
    from .typed_config import from_mapping, to_mapping

"""magic-core: exact data attribution (MAGIC metagradients) on bergson's engine.

Importing it leaves logging alone and does not import bergson; the engine is
loaded on first use.
"""

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

__version__ = "0.1.0"

__all__ = [
    "AttributionConfig", "AttributionResult", "ConfigError", "ContrastObjective",
    "LanguageModelObjective", "MultipleChoiceObjective", "QueryObjective", "TokenizedCorpus",
    "TrainConfig", "attribute", "from_mapping", "resolve_precision", "to_mapping",
    "tokenize_corpus",
]

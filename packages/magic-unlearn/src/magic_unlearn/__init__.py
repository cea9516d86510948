"""magic-unlearn: attribution-weighted unlearning recipes.

Not implemented yet (tracked as its own issue); the package exists so the
workspace layout and dependency graph are in place.
"""

__version__ = "0.1.0"

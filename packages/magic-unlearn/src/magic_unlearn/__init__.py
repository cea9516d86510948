"""magic-unlearn: attribution-weighted unlearning recipes, evaluated by accuracy.

Recipes come from the ``magic.recipes`` entry-point group (built-in:
``attribution-weighted``, ``gradient-ascent``, ``gradient-difference``).
Sign convention: a token's loss weight multiplies its next-token loss, so a
negative weight is gradient ascent on that token.

Each public name loads its own module on first use (PEP 562), so importing the
package (or only `UnlearnError`) does not import torch.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_MODULES = {
    "data": ("prepare_data",),
    "errors": ("UnlearnError",),
    "evaluate": ("EvalSets", "evaluate"),
    "hookspecs": ("hookimpl",),
    "optim_config": ("OptimConfig", "RelearnConfig"),
    "presets": ("PRESETS", "apply_preset"),
    "registry": ("ENTRY_POINT_GROUP", "RecipeRegistry", "get_recipe", "list_recipes"),
    "relearn": ("relearn",),
    "run": ("run_recipe", "save_pretrained", "unlearn"),
    "scores": ("ScoresRun", "check_scores", "load_scores"),
    "spec": ("RecipeSpec", "UnlearnData", "WeightedRows"),
    "table": ("flat_row", "markdown", "write_table"),
    "training": ("train_weighted",),
    "weights": ("score_weights",),
}
# Public name -> the module defining it.
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "ENTRY_POINT_GROUP", "EvalSets", "OptimConfig", "PRESETS", "RecipeRegistry", "RecipeSpec",
    "RelearnConfig", "ScoresRun", "UnlearnData", "UnlearnError", "WeightedRows", "apply_preset",
    "check_scores", "evaluate", "flat_row", "get_recipe", "hookimpl", "list_recipes",
    "load_scores", "markdown", "prepare_data", "relearn", "run_recipe", "save_pretrained",
    "score_weights", "train_weighted", "unlearn", "write_table",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


class _Package(types.ModuleType):
    """`evaluate` and `relearn` name a submodule and the function exported from it.

    Importing a submodule binds it to the package's attribute of that name,
    which would hide the function once something imports the submodule; the
    exported function wins, as it did when this file imported everything.
    """

    def __setattr__(self, name: str, value) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:
    from .data import prepare_data
    from .errors import UnlearnError
    from .evaluate import EvalSets, evaluate
    from .hookspecs import hookimpl
    from .optim_config import OptimConfig, RelearnConfig
    from .presets import PRESETS, apply_preset
    from .registry import ENTRY_POINT_GROUP, RecipeRegistry, get_recipe, list_recipes
    from .relearn import relearn
    from .run import run_recipe, save_pretrained, unlearn
    from .scores import ScoresRun, check_scores, load_scores
    from .spec import RecipeSpec, UnlearnData, WeightedRows
    from .table import flat_row, markdown, write_table
    from .training import train_weighted
    from .weights import score_weights

"""magic-unlearn: attribution-weighted unlearning recipes, evaluated by accuracy.

Recipes come from the ``magic.recipes`` entry-point group (built-in:
``attribution-weighted``, ``gradient-ascent``, ``gradient-difference``,
``npo``, ``npo-attribution``, ``rmu``, ``rmu-attribution``).
Sign convention: a token's loss weight multiplies its next-token loss, so a
negative weight is gradient ascent on that token.

Each public name loads its own module on first use (PEP 562), so importing the
package (or only `UnlearnError`) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

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

# lazy_loader also keeps `evaluate` and `relearn` the functions once their
# same-named submodules are imported.
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs=_MODULES)


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

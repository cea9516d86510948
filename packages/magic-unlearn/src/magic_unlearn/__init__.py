"""magic-unlearn: attribution-weighted unlearning recipes, evaluated by accuracy.

Recipes come from the ``magic.recipes`` entry-point group (built-in:
``attribution-weighted``, ``gradient-ascent``, ``gradient-difference``).
Sign convention: a token's loss weight multiplies its next-token loss, so a
negative weight is gradient ascent on that token.
"""

from .data import prepare_data
from .errors import UnlearnError
from .evaluate import EvalSets, evaluate
from .hookspecs import hookimpl
from .presets import PRESETS, apply_preset
from .registry import ENTRY_POINT_GROUP, RecipeRegistry, get_recipe, list_recipes
from .relearn import RelearnConfig, relearn
from .run import run_recipe, save_pretrained, unlearn
from .scores import ScoresRun, check_scores, load_scores
from .spec import RecipeSpec, UnlearnData, WeightedRows
from .table import flat_row, markdown, write_table
from .training import OptimConfig, train_weighted
from .weights import score_weights

__version__ = "0.1.0"

__all__ = [
    "ENTRY_POINT_GROUP", "PRESETS", "EvalSets", "OptimConfig", "RecipeRegistry", "RecipeSpec",
    "RelearnConfig", "ScoresRun", "UnlearnData", "UnlearnError", "WeightedRows", "apply_preset",
    "check_scores", "evaluate", "flat_row", "get_recipe", "hookimpl", "list_recipes",
    "load_scores", "markdown", "prepare_data", "relearn", "run_recipe", "save_pretrained",
    "score_weights", "train_weighted", "unlearn", "write_table",
]

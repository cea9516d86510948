"""The built-in recipes (entry point ``builtin`` of ``magic.recipes``).

The token-weight recipes train on the same forget corpus for the same steps;
they differ only in the per-token weights (see `spec` for the sign
convention) and in the retain-preserving terms they add (descent on the
retain corpus, ``retain_weight``; KL to the base model on it, ``retain_kl``).
The stronger baselines, each with an attribution-weighted variant, live in
their own modules: `npo` (Negative Preference Optimization) and `rmu`
(Representation Misdirection for Unlearning).
"""

from __future__ import annotations

from . import npo, rmu
from .hookspecs import hookimpl
from .recipe_parts import (
    ATTRIBUTION_BOUNDS,
    RETAIN_BOUNDS,
    attribution_forget_weights,
    retain_parts,
    uniform,
)
from .spec import RecipeSpec, UnlearnData, WeightedRows
from .weights import Normalization, Selection


def gradient_ascent(data: UnlearnData, retain_kl: float = 0.0) -> list[WeightedRows]:
    return [uniform(data.forget, -1.0, "forget"), *retain_parts(data, 0.0, retain_kl)]


def gradient_difference(data: UnlearnData, retain_weight: float = 1.0,
                        retain_kl: float = 0.0) -> list[WeightedRows]:
    return [uniform(data.forget, -1.0, "forget"), *retain_parts(data, retain_weight, retain_kl)]


def attribution_weighted(data: UnlearnData, normalization: Normalization = "mean-abs",
                         selection: Selection = "all", clip: float | None = 3.0,
                         top_fraction: float | None = None, retain_weight: float = 0.0,
                         retain_kl: float = 0.0) -> list[WeightedRows]:
    weights = attribution_forget_weights(data, "attribution-weighted", normalization, selection,
                                         clip, top_fraction)
    return [WeightedRows(data.forget, weights, "forget"),
            *retain_parts(data, retain_weight, retain_kl)]


@hookimpl
def magic_recipes_register() -> list[RecipeSpec]:
    return [
        RecipeSpec("attribution-weighted", attribution_weighted,
                   "per-token weights from a forget-query scores run (weight = normalised score)",
                   {"normalization": "mean-abs", "selection": "all", "clip": 3.0,
                    "top_fraction": None, "retain_weight": 0.0, "retain_kl": 0.0},
                   needs_scores=True, bounds={**ATTRIBUTION_BOUNDS, **RETAIN_BOUNDS}),
        RecipeSpec("gradient-ascent", gradient_ascent,
                   "uniform gradient ascent on the forget corpus", {"retain_kl": 0.0},
                   bounds=RETAIN_BOUNDS),
        RecipeSpec("gradient-difference", gradient_difference,
                   "ascent on the forget corpus, descent on the retain corpus",
                   {"retain_weight": 1.0, "retain_kl": 0.0}, bounds=RETAIN_BOUNDS),
        *npo.SPECS,
        *rmu.SPECS,
    ]

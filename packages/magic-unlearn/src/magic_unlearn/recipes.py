"""The built-in recipes (entry point ``builtin`` of ``magic.recipes``).

All three train on the same forget corpus for the same steps; they differ
only in the per-token weights (see `spec` for the sign convention).
"""

from __future__ import annotations

from .errors import UnlearnError
from .hookspecs import hookimpl
from .spec import RecipeSpec, UnlearnData, WeightedRows
from .weights import real_token_mask, score_weights


def _uniform(corpus, value: float, name: str) -> WeightedRows:
    width = corpus.longest
    return WeightedRows(corpus, real_token_mask(corpus, width).float() * value, name)


def _retain_part(data: UnlearnData, retain_weight: float) -> list[WeightedRows]:
    if retain_weight < 0:
        raise UnlearnError(f"retain_weight must be >= 0, got {retain_weight}")
    return [_uniform(data.retain, retain_weight, "retain")] if retain_weight else []


def gradient_ascent(data: UnlearnData) -> list[WeightedRows]:
    return [_uniform(data.forget, -1.0, "forget")]


def gradient_difference(data: UnlearnData, retain_weight: float = 1.0) -> list[WeightedRows]:
    return [_uniform(data.forget, -1.0, "forget"), *_retain_part(data, retain_weight)]


def attribution_weighted(data: UnlearnData, normalization: str = "mean-abs",
                         selection: str = "all", clip: float | None = 3.0,
                         retain_weight: float = 0.0) -> list[WeightedRows]:
    if data.forget_scores is None:
        raise UnlearnError("recipe 'attribution-weighted' needs a forget scores run (scores.forget)")
    width = data.forget.longest
    forget = data.forget_scores.per_token[:, :width]
    retain = data.retain_scores.per_token[:, :width] if data.retain_scores is not None else None
    real = real_token_mask(data.forget, width)
    weights = score_weights(forget, real, normalization, selection, clip, retain)
    return [WeightedRows(data.forget, weights, "forget"), *_retain_part(data, retain_weight)]


@hookimpl
def magic_recipes_register() -> list[RecipeSpec]:
    return [
        RecipeSpec("attribution-weighted", attribution_weighted,
                   "per-token weights from a forget-query scores run (weight = normalised score)",
                   {"normalization": "mean-abs", "selection": "all", "clip": 3.0,
                    "retain_weight": 0.0}, needs_scores=True),
        RecipeSpec("gradient-ascent", gradient_ascent,
                   "uniform gradient ascent on the forget corpus"),
        RecipeSpec("gradient-difference", gradient_difference,
                   "ascent on the forget corpus, descent on the retain corpus",
                   {"retain_weight": 1.0}),
    ]


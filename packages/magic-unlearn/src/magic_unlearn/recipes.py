"""The built-in recipes (entry point ``builtin`` of ``magic.recipes``).

All three train on the same forget corpus for the same steps; they differ
only in the per-token weights (see `spec` for the sign convention) and in
the retain-preserving terms they add (descent on the retain corpus,
``retain_weight``; KL to the base model on it, ``retain_kl``).
"""

from __future__ import annotations

from dataclasses import replace

from magic_core.typed_config import Range

from .errors import UnlearnError
from .hookspecs import hookimpl
from .spec import RecipeSpec, UnlearnData, WeightedRows
from .weights import Normalization, Selection, real_token_mask, score_weights

# The retain-preserving terms only add; a negative weight would ascend the retain corpus.
RETAIN_BOUNDS = {"retain_weight": Range(ge=0), "retain_kl": Range(ge=0)}


def _uniform(corpus, value: float, name: str) -> WeightedRows:
    width = corpus.longest
    return WeightedRows(corpus, real_token_mask(corpus, width).float() * value, name)


def _retain_parts(data: UnlearnData, retain_weight: float, retain_kl: float) -> list[WeightedRows]:
    """Retain-preserving terms: descent on the retain corpus, and/or KL to the base model on it."""
    for name, value in (("retain_weight", retain_weight), ("retain_kl", retain_kl)):
        if value < 0:
            raise UnlearnError(f"{name} must be >= 0, got {value}")
    parts = [_uniform(data.retain, retain_weight, "retain")] if retain_weight else []
    if retain_kl:
        parts.append(replace(_uniform(data.retain, retain_kl, "retain-kl"), loss="kl"))
    return parts


def gradient_ascent(data: UnlearnData, retain_kl: float = 0.0) -> list[WeightedRows]:
    return [_uniform(data.forget, -1.0, "forget"), *_retain_parts(data, 0.0, retain_kl)]


def gradient_difference(data: UnlearnData, retain_weight: float = 1.0,
                        retain_kl: float = 0.0) -> list[WeightedRows]:
    return [_uniform(data.forget, -1.0, "forget"), *_retain_parts(data, retain_weight, retain_kl)]


def attribution_weighted(data: UnlearnData, normalization: Normalization = "mean-abs",
                         selection: Selection = "all", clip: float | None = 3.0,
                         top_fraction: float | None = None, retain_weight: float = 0.0,
                         retain_kl: float = 0.0) -> list[WeightedRows]:
    if data.forget_scores is None:
        raise UnlearnError("recipe 'attribution-weighted' needs a forget scores run (scores.forget)")
    width = data.forget.longest
    forget = data.forget_scores.per_token[:, :width]
    retain = data.retain_scores.per_token[:, :width] if data.retain_scores is not None else None
    real = real_token_mask(data.forget, width)
    weights = score_weights(forget, real, normalization, selection, clip, retain, top_fraction)
    return [WeightedRows(data.forget, weights, "forget"),
            *_retain_parts(data, retain_weight, retain_kl)]


@hookimpl
def magic_recipes_register() -> list[RecipeSpec]:
    return [
        RecipeSpec("attribution-weighted", attribution_weighted,
                   "per-token weights from a forget-query scores run (weight = normalised score)",
                   {"normalization": "mean-abs", "selection": "all", "clip": 3.0,
                    "top_fraction": None, "retain_weight": 0.0, "retain_kl": 0.0},
                   needs_scores=True,
                   bounds={"clip": Range(gt=0), "top_fraction": Range(gt=0, le=1), **RETAIN_BOUNDS}),
        RecipeSpec("gradient-ascent", gradient_ascent,
                   "uniform gradient ascent on the forget corpus", {"retain_kl": 0.0},
                   bounds=RETAIN_BOUNDS),
        RecipeSpec("gradient-difference", gradient_difference,
                   "ascent on the forget corpus, descent on the retain corpus",
                   {"retain_weight": 1.0, "retain_kl": 0.0}, bounds=RETAIN_BOUNDS),
    ]


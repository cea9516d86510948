"""Building blocks every recipe shares: uniform parts, retain terms, attribution weights."""

from __future__ import annotations

from dataclasses import replace

import torch
from magic_core.typed_config import Range

from .errors import UnlearnError
from .spec import UnlearnData, WeightedRows
from .weights import Normalization, Selection, real_token_mask, score_weights

# The retain-preserving terms only add; a negative weight would ascend the retain corpus.
RETAIN_BOUNDS = {"retain_weight": Range(ge=0), "retain_kl": Range(ge=0)}
ATTRIBUTION_BOUNDS = {"clip": Range(gt=0), "top_fraction": Range(gt=0, le=1)}


def uniform(corpus, value: float, name: str) -> WeightedRows:
    width = corpus.longest
    return WeightedRows(corpus, real_token_mask(corpus, width).float() * value, name)


def retain_parts(data: UnlearnData, retain_weight: float, retain_kl: float) -> list[WeightedRows]:
    """Retain-preserving terms: descent on the retain corpus, and/or KL to the base model on it."""
    for name, value in (("retain_weight", retain_weight), ("retain_kl", retain_kl)):
        if value < 0:
            raise UnlearnError(f"{name} must be >= 0, got {value}")
    parts = [uniform(data.retain, retain_weight, "retain")] if retain_weight else []
    if retain_kl:
        parts.append(replace(uniform(data.retain, retain_kl, "retain-kl"), loss="kl"))
    return parts


def attribution_forget_weights(data: UnlearnData, recipe: str, normalization: Normalization,
                               selection: Selection, clip: float | None,
                               top_fraction: float | None) -> torch.Tensor:
    """[N, T] forget-token weights from the forget-query scores (`weights.score_weights`)."""
    if data.forget_scores is None:
        raise UnlearnError(f"recipe {recipe!r} needs a forget scores run (scores.forget)")
    width = data.forget.longest
    forget = data.forget_scores.per_token[:, :width]
    retain = data.retain_scores.per_token[:, :width] if data.retain_scores is not None else None
    real = real_token_mask(data.forget, width)
    return score_weights(forget, real, normalization, selection, clip, retain, top_fraction)

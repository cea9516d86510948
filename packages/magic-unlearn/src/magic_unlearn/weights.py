"""Turning per-token scores into loss weights: select, normalise, clip.

Scores are d(query loss)/d(token weight). Using the (normalised) score itself
as the weight raises the query loss to first order: tokens whose training
would raise it are descended (positive weight), tokens that teach the queried
knowledge (negative score) are ascended.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from .errors import UnlearnError

Normalization = Literal["mean-abs", "z-score", "sign"]
Selection = Literal["all", "positive-only", "negative-only", "selective"]


def real_token_mask(corpus, width: int) -> torch.Tensor:
    """[N, width]: True where column t predicts a real token (t + 1 inside the row)."""
    lengths = torch.tensor([len(r) for r in corpus.input_ids])
    return torch.arange(width)[None, :] < (lengths[:, None] - 1)


def select_tokens(forget: torch.Tensor, selection: Selection,
                  retain: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean mask of the tokens to train on.

    ``selective`` keeps tokens whose forget-query and retain-query scores have
    opposite signs: weighting them by the forget score raises the forget loss
    while, to first order, lowering the retain loss.
    """
    if selection == "all":
        return forget != 0
    if selection == "positive-only":
        return forget > 0
    if selection == "negative-only":
        return forget < 0
    if selection == "selective":
        if retain is None:
            raise UnlearnError("selection 'selective' needs retain-query scores (scores.retain)")
        return forget * retain < 0
    raise UnlearnError(f"unknown selection {selection!r}; choose all, positive-only, "
                       "negative-only or selective")


def most_negative(forget: torch.Tensor, keep: torch.Tensor, fraction: float) -> torch.Tensor:
    """The ``fraction`` of the kept tokens with the most negative forget scores.

    Those are the tokens that, by the scores, taught the queried knowledge
    most; everything else (positive scores included) is left out. Fewer
    tokens come back when fewer of the kept ones are negative.
    """
    if not 0 < fraction <= 1:
        raise UnlearnError(f"top_fraction must be in (0, 1], got {fraction}")
    k = math.ceil(fraction * int(keep.sum()))
    candidates = torch.where(keep & (forget < 0), forget, torch.full_like(forget, math.inf))
    order = candidates.flatten().argsort(stable=True)[:k]
    picked = torch.zeros(forget.numel(), dtype=torch.bool)
    picked[order] = True
    return picked.view_as(forget) & (candidates < math.inf)


def normalize(scores: torch.Tensor, keep: torch.Tensor, how: Normalization) -> torch.Tensor:
    """Weights on the kept tokens (zero elsewhere), on a scale where a typical |weight| ~ 1."""
    kept = scores[keep]
    if kept.numel() == 0:
        raise UnlearnError("the token selection kept no token; choose another selection")
    if how == "mean-abs":
        out = scores / kept.abs().mean().clamp_min(1e-30)
    elif how == "z-score":
        out = (scores - kept.mean()) / kept.std().clamp_min(1e-30)
    elif how == "sign":
        out = scores.sign()
    else:
        raise UnlearnError(f"unknown normalization {how!r}; choose mean-abs, z-score or sign")
    return torch.where(keep, out, torch.zeros_like(out))


def score_weights(forget: torch.Tensor, real: torch.Tensor, normalization: Normalization = "mean-abs",
                  selection: Selection = "all", clip: float | None = None,
                  retain: torch.Tensor | None = None,
                  top_fraction: float | None = None) -> torch.Tensor:
    """The full pipeline: [N, T] scores -> [N, T] float32 loss weights (padding zero).

    ``top_fraction`` narrows the selection to its most negative share.
    """
    keep = select_tokens(forget, selection, retain) & real
    if top_fraction is not None:
        keep = most_negative(forget, keep, top_fraction)
    weights = normalize(forget, keep, normalization)
    if clip is not None:
        if clip <= 0:
            raise UnlearnError(f"clip must be > 0, got {clip}")
        weights = weights.clamp(-clip, clip)
    return weights.float()

"""NPO, Negative Preference Optimization (Zhang et al. 2024), plain and attribution-weighted.

The forget term of one sequence y (its text, every token predicted) is

    -(2 / beta) * log sigmoid(-beta * (log pi(y) - log pi_ref(y)))

with pi_ref the frozen model before unlearning, averaged over the batch's
sequences. At the reference it has the gradient of plain gradient ascent on
the sequence's summed log-likelihood; as the model's likelihood falls below
the reference's, the sigmoid shrinks the step, so NPO slows down where
gradient ascent diverges. ``beta`` -> 0 recovers gradient ascent.

Per-token weights (the spec's sign convention: a negative weight unlearns)
make the sequence's log-ratio ``sum_t -weight[t] * (log pi - log pi_ref)[t]``:
weight -1 on every real token is the paper's NPO, and attribution weights
(the same as `attribution-weighted`'s) unlearn the tokens that taught the
hazard most and, where a score is positive, relearn the token instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from magic_core.typed_config import Range

from .errors import UnlearnError
from .losses import token_nll
from .recipe_parts import (
    ATTRIBUTION_BOUNDS,
    RETAIN_BOUNDS,
    attribution_forget_weights,
    retain_parts,
)
from .spec import RecipeSpec, UnlearnData, WeightedRows
from .weights import Normalization, Selection, real_token_mask

PAPER_BETA = 0.1  # Zhang et al. 2024, every experiment


def npo_loss(model, reference, ids: torch.Tensor, real: torch.Tensor, weights: torch.Tensor,
             beta: float) -> torch.Tensor:
    """The batch mean of the NPO loss, each sequence's log-ratio summed with ``-weights``."""
    counted = real[:, 1:]
    nll = token_nll(model, ids, real)
    with torch.no_grad():
        reference_nll = token_nll(reference, ids, real)
    # -weight * (log pi - log pi_ref) = weight * (nll - nll_ref)
    log_ratio = ((nll - reference_nll) * weights * counted).sum(-1)
    return -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean()


def _forget_part(data: UnlearnData, weights: torch.Tensor, beta: float) -> WeightedRows:
    if beta <= 0:
        raise UnlearnError(f"beta must be > 0, got {beta}")
    return WeightedRows(data.forget, weights, "forget", loss="npo", loss_options={"beta": beta})


def npo(data: UnlearnData, beta: float = PAPER_BETA, retain_weight: float = 0.0,
        retain_kl: float = 0.0) -> list[WeightedRows]:
    uniform = -real_token_mask(data.forget, data.forget.longest).float()
    return [_forget_part(data, uniform, beta), *retain_parts(data, retain_weight, retain_kl)]


def npo_attribution(data: UnlearnData, beta: float = PAPER_BETA,
                    normalization: Normalization = "mean-abs", selection: Selection = "all",
                    clip: float | None = 3.0, top_fraction: float | None = None,
                    retain_weight: float = 0.0, retain_kl: float = 0.0) -> list[WeightedRows]:
    weights = attribution_forget_weights(data, "npo-attribution", normalization, selection, clip,
                                         top_fraction)
    return [_forget_part(data, weights, beta), *retain_parts(data, retain_weight, retain_kl)]


_NPO_DEFAULTS = {"beta": PAPER_BETA, "retain_weight": 0.0, "retain_kl": 0.0}
_BOUNDS = {"beta": Range(gt=0), **RETAIN_BOUNDS}

SPECS = [
    RecipeSpec("npo", npo,
               "negative preference optimization on the forget corpus (Zhang et al. 2024): "
               "gradient ascent that slows as the model falls below the base model",
               dict(_NPO_DEFAULTS), bounds=_BOUNDS),
    RecipeSpec("npo-attribution", npo_attribution,
               "NPO whose per-token log-ratios are weighted by the normalised forget-query scores",
               {"beta": PAPER_BETA, "normalization": "mean-abs", "selection": "all", "clip": 3.0,
                "top_fraction": None, "retain_weight": 0.0, "retain_kl": 0.0},
               needs_scores=True, bounds={**_BOUNDS, **ATTRIBUTION_BOUNDS}),
]

"""What a recipe is: a name and a function from the unlearning data to weighted token rows.

Sign convention (the one place it is defined): training minimises
``sum_t weight[t] * nll[t]``, so a positive weight is ordinary gradient
descent on that token (learn it) and a negative weight is gradient ascent
(unlearn it); zero leaves the token out.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from magic_core import ConfigError, TokenizedCorpus
from magic_core.typed_config import Range, read_value

from .errors import UnlearnError
from .layers import LayerModules
from .scores import ScoresRun


@dataclass
class WeightedRows:
    """Token rows with one loss weight per predicted token.

    ``weights[i, t]`` weights the loss of predicting token ``t + 1`` of row
    ``i`` (the per-token score layout), so the last column is never used.
    ``loss`` names the part's loss in `part_losses.PART_LOSSES`, which says
    what the weights multiply there: ``"nll"`` the next-token NLL, ``"kl"``
    KL(model before unlearning || model) at that position (see `losses`;
    weights >= 0), ``"npo"`` the token's log-ratio to the model before
    unlearning inside NPO's sequence loss, ``"rmu-steer"`` / ``"rmu-keep"``
    the squared distance of that position's activations to RMU's random
    target / to the model before unlearning's (weights >= 0).
    ``loss_options`` are that loss's keyword arguments (plain values).
    ``updates``: the only parameters the part's method trains (None: every
    trainable one); the parts of one run must agree on it.
    """

    corpus: TokenizedCorpus
    weights: torch.Tensor  # [N, T]
    name: str = ""
    loss: str = "nll"
    loss_options: dict[str, Any] = field(default_factory=dict)
    updates: LayerModules | None = None


@dataclass
class UnlearnData:
    """Everything a recipe may draw on."""

    forget: TokenizedCorpus
    retain: TokenizedCorpus
    forget_scores: ScoresRun | None = None  # forget-query scores of the forget corpus
    retain_scores: ScoresRun | None = None  # retain-query scores of the same corpus


@dataclass(frozen=True)
class RecipeSpec:
    """``build(data, **options)`` returns the weighted parts one training step mixes."""

    name: str
    build: Callable[..., list[WeightedRows]]
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    needs_scores: bool = False
    package: str = ""  # filled in by the registry
    # Valid ranges of numeric options; every number must also be finite, and every
    # option of the type ``build`` annotates it with.
    bounds: dict[str, Range] = field(default_factory=dict)

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` as ``build`` takes them; cheap, so a job is checked before any loading."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            accepted = ", ".join(sorted(self.options)) or "none"
            raise UnlearnError(f"recipe {self.name!r} has no option {unknown[0]!r}; "
                               f"it accepts: {accepted}")
        try:
            hints = typing.get_type_hints(self.build)
        except (NameError, TypeError):  # a plugin's annotations that do not resolve here
            hints = {}
        try:
            return {name: read_value(value, hints.get(name, Any), f"recipe.options.{name}",
                                     self.bounds.get(name, Range()))
                    for name, value in options.items()}
        except ConfigError as exc:  # a recipe's mistake is the recipes' own kind of error
            raise UnlearnError(str(exc)) from None

    def parts(self, data: UnlearnData, options: dict[str, Any]) -> list[WeightedRows]:
        return self.build(data, **self.check_options(options))

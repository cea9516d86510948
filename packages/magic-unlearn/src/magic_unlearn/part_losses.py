"""The losses a weighted part may train with, by the name `WeightedRows.loss` gives.

Every loss takes the model being trained, the frozen model before unlearning
(None unless the loss asks for it), a batch of padded rows (token ids [B, T],
real-token mask [B, T], weights [B, T - 1]) and the part's ``loss_options``,
and returns a scalar. The training loop only looks losses up here, so a new
kind of term is one entry, not a branch in the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import npo, rmu
from .errors import UnlearnError
from .losses import weighted_kl, weighted_nll


@dataclass(frozen=True)
class PartLoss:
    compute: Callable[..., torch.Tensor]  # (model, reference, ids, real, weights, **options)
    needs_reference: bool  # whether it compares with the model before unlearning
    # (model, **options) -> None, raising UnlearnError for options this model cannot take;
    # run before the first step, so a mistake costs no training.
    check: Callable[..., None] | None = None


def _nll(model, reference, ids, real, weights) -> torch.Tensor:
    return weighted_nll(model, ids, real, weights)


PART_LOSSES: dict[str, PartLoss] = {
    "nll": PartLoss(_nll, needs_reference=False),
    "kl": PartLoss(weighted_kl, needs_reference=True),
    "npo": PartLoss(npo.npo_loss, needs_reference=True),
    "rmu-steer": PartLoss(rmu.steer_loss, needs_reference=False, check=rmu.check_options),
    "rmu-keep": PartLoss(rmu.keep_loss, needs_reference=True, check=rmu.check_options),
}


def part_loss(kind: str) -> PartLoss:
    if kind not in PART_LOSSES:
        raise UnlearnError(f"unknown part loss {kind!r}; known: {', '.join(PART_LOSSES)}")
    return PART_LOSSES[kind]

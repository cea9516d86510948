"""Before/after measurements: multiple-choice accuracy (lm-eval 0-shot) and corpus losses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from magic_core import LanguageModelObjective
from magic_core.evaluation import multiple_choice_accuracy


@dataclass
class EvalSets:
    # Multiple-choice rows (question, choices, answer), e.g. a datasets.Dataset.
    hazard: Sequence[Mapping[str, Any]]  # WMDP-like: accuracy to bring to chance
    general: Sequence[Mapping[str, Any]]  # MMLU-like: accuracy to keep
    forget_texts: list[str]
    retain_texts: list[str]


@torch.no_grad()
def evaluate(model, tokenizer, sets: EvalSets) -> dict[str, float]:
    model.eval()

    def loss(texts):
        return float(LanguageModelObjective(texts, tokenizer, name="eval").loss(model))

    return {
        "forget_accuracy": multiple_choice_accuracy(model, tokenizer, sets.hazard),
        "retain_accuracy": multiple_choice_accuracy(model, tokenizer, sets.general),
        "forget_loss": loss(sets.forget_texts),
        "retain_loss": loss(sets.retain_texts),
    }

"""The KL-to-reference loss of retain-preserving parts, and the frozen reference it needs.

A part with ``loss="kl"`` weights, per predicted token, KL(reference || model)
over the whole vocabulary instead of the next-token NLL. The reference is the
model as it was before unlearning: the term is zero (with zero gradient)
until the model drifts, and then pulls back every prediction on retain text,
including shared skills (answering by letter) that ascent on the forget
corpus erodes but that descent on the retain text's own tokens cannot see
when the model still gets those tokens right.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F


def frozen_copy(model):
    """A gradient-free copy of ``model`` (costs one more model's memory)."""
    reference = copy.deepcopy(model)
    reference.eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    return reference


def weighted_kl(model, reference, ids: torch.Tensor, real: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
    """sum(weight * KL(reference || model) per predicted token) / number of real predicted tokens.

    Normalised like `training.weighted_loss`, so a weight of 1 adds the mean
    per-token KL.
    """
    mask = real.long()
    logp = F.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
    with torch.no_grad():
        ref = F.log_softmax(reference(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
    kl = (ref.exp() * (ref - logp)).sum(-1)
    counted = real[:, 1:]
    return (kl * weights * counted).sum() / counted.sum().clamp_min(1)

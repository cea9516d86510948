"""Token-level losses of weighted parts, and the frozen reference model some of them compare to.

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


def wide(t: torch.Tensor) -> torch.Tensor:
    """``t`` in at least fp32 (half-precision logits lose the loss); fp64 stays fp64."""
    return t if t.dtype == torch.float64 else t.float()


def token_nll(model, ids: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """[N, T - 1]: the next-token NLL at every position (padding included; mask it)."""
    logits = wide(model(input_ids=ids, attention_mask=real.long()).logits[:, :-1])
    return F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")


def per_real_token(values: torch.Tensor, real: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(weight * value over real predicted tokens) / their number.

    Dividing by the token count (not by the weights) keeps uniform weight -1
    equal to plain mean-loss gradient ascent.
    """
    counted = real[:, 1:]
    return (values * weights * counted).sum() / counted.sum().clamp_min(1)


def weighted_nll(model, ids: torch.Tensor, real: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(weight * next-token nll) / number of real predicted tokens."""
    return per_real_token(token_nll(model, ids, real), real, weights)


def weighted_kl(model, reference, ids: torch.Tensor, real: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
    """sum(weight * KL(reference || model) per predicted token) / number of real predicted tokens.

    Normalised like `weighted_nll`, so a weight of 1 adds the mean per-token KL.
    """
    mask = real.long()
    logp = F.log_softmax(wide(model(input_ids=ids, attention_mask=mask).logits[:, :-1]), -1)
    with torch.no_grad():
        ref = F.log_softmax(wide(reference(input_ids=ids, attention_mask=mask).logits[:, :-1]), -1)
    kl = (ref.exp() * (ref - logp)).sum(-1)
    return per_real_token(kl, real, weights)

"""The formulas docs/configuration.md states ("What a score means") are the code's."""

from __future__ import annotations

import math

import pytest
import torch
from magic_core import TrainConfig
from magic_core.model_prep import install_weighted_loss
from magic_core.optim import lr_schedule


def documented_rate(k: int, n: int, lr: float, warmup: int, schedule: str) -> float:
    if k < warmup:
        return lr * (k + 1) / warmup
    p = (k - warmup) / max(n - warmup, 1)
    return {"constant": lr, "linear": lr * (1 - p),
            "cosine": lr * (1 + math.cos(math.pi * p)) / 2}[schedule]


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
@pytest.mark.parametrize("warmup", [0, 3])
def test_learning_rate_formulas(schedule, warmup):
    n, lr = 10, 0.3
    rate = lr_schedule(TrainConfig(lr=lr, schedule=schedule, warmup_steps=warmup), n)
    for k in range(n):
        assert rate(k) == pytest.approx(documented_rate(k, n, lr, warmup, schedule), rel=1e-15)
    assert rate(n - 1) > 0  # "the rate never reaches 0"


def test_loss_weights_multiply_token_losses_over_a_count_of_target_tokens():
    class Holder(torch.nn.Module):
        pass

    holder = Holder()
    install_weighted_loss(holder)
    torch.manual_seed(0)
    batch, length, vocab = 2, 5, 7
    logits = torch.randn(batch, length, vocab, dtype=torch.float64)
    labels = torch.randint(vocab, (batch, length))
    labels[1, 3:] = -100  # padding: not a target
    weights = torch.rand(batch, length, dtype=torch.float64) * 3  # far from summing to D
    loss = holder.loss_function(logits, labels, example_weight=weights, vocab_size=vocab)

    nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:],
                                            reduction="none", ignore_index=-100)
    targets = labels[:, 1:] != -100
    d = targets.sum()  # target tokens, not the weights' sum
    # Column t of the weights weights the prediction of token t + 1.
    expected = (weights[:, :-1] * nll * targets).sum() / d
    assert torch.allclose(loss, expected, rtol=1e-12, atol=0)

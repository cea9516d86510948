"""The KL-to-base retain term: zero at the base model, and what it preserves."""

import copy

import pytest
import torch
from magic_core import tokenize_corpus
from magic_unlearn import OptimConfig, WeightedRows, get_recipe, prepare_data, train_weighted
from magic_unlearn.losses import frozen_copy, weighted_kl
from magic_unlearn.training import _padded
from magic_unlearn.weights import real_token_mask


def _rows(corpus, tokenizer):
    rows = tokenize_corpus(corpus, tokenizer, 96)
    return WeightedRows(rows, real_token_mask(rows, rows.longest).float())


def _kl(model, reference, part):
    ids, real, weights = _padded(part)
    return weighted_kl(model, reference, ids, real, weights)


def test_kl_is_zero_with_zero_gradient_at_the_reference_and_grows_away_from_it(
        tiny_model, tokenizer, retain_corpus):
    part = _rows(retain_corpus, tokenizer)
    reference = frozen_copy(tiny_model)
    assert not any(p.requires_grad for p in reference.parameters())
    loss = _kl(tiny_model, reference, part)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6)
    assert max(p.grad.abs().max() for p in tiny_model.parameters()) < 1e-6
    with torch.no_grad():
        out = tiny_model.get_output_embeddings().weight
        out.add_(torch.randn_like(out))
    assert float(_kl(tiny_model, reference, part).detach()) > 1e-3


def test_retain_kl_keeps_the_model_closer_to_the_base_on_retain_text(
        tiny_model, tokenizer, forget_corpus, retain_corpus):
    data = prepare_data(tokenizer, forget_corpus, retain_corpus)
    base, optim = frozen_copy(tiny_model), OptimConfig(lr=3e-3, steps=8)
    drift = {}
    for retain_kl in (0.0, 10.0):
        parts = get_recipe("gradient-ascent").parts(data, {"retain_kl": retain_kl})
        assert [p.loss for p in parts] == (["nll", "kl"] if retain_kl else ["nll"])
        model = copy.deepcopy(tiny_model)
        train_weighted(model, parts, optim)
        with torch.no_grad():
            drift[retain_kl] = float(_kl(model, base, _rows(retain_corpus, tokenizer)))
    assert drift[10.0] < 0.5 * drift[0.0]

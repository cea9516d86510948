"""Recipes come from the `magic.recipes` entry points and validate their options."""

import pytest
import torch
from magic_unlearn import UnlearnError, get_recipe, list_recipes, prepare_data


def test_builtin_recipes_are_registered_through_entry_points():
    names = {r.name: r.package for r in list_recipes()}
    assert {"attribution-weighted", "gradient-ascent", "gradient-difference"} <= set(names)
    assert names["gradient-ascent"] == "magic-unlearn"


def test_unknown_recipe_and_option_are_one_line_errors(tokenizer, forget_corpus, retain_corpus):
    with pytest.raises(UnlearnError, match="did you mean 'gradient-ascent'"):
        get_recipe("gradient-acent")
    data = prepare_data(tokenizer, forget_corpus, retain_corpus)
    with pytest.raises(UnlearnError, match="no option 'lr'"):
        get_recipe("gradient-ascent").parts(data, {"lr": 1})
    with pytest.raises(UnlearnError, match="needs a forget scores run"):
        get_recipe("attribution-weighted").parts(data, {})


def test_baseline_weights(tokenizer, forget_corpus, retain_corpus):
    data = prepare_data(tokenizer, forget_corpus, retain_corpus)
    (ascent,) = get_recipe("gradient-ascent").parts(data, {})
    assert set(ascent.weights.unique().tolist()) == {-1.0, 0.0}
    forget, retain = get_recipe("gradient-difference").parts(data, {"retain_weight": 0.5})
    assert forget.weights.min() == -1 and retain.weights.max() == 0.5
    # column t weights predicting token t + 1: the last real token predicts nothing
    n = len(data.forget.input_ids[0])
    assert ascent.weights[0, n - 2] == -1 and ascent.weights[0, n - 1] == 0


def test_attribution_weights_follow_scores(tokenizer, forget_corpus, retain_corpus, scores_run):
    data = prepare_data(tokenizer, forget_corpus, retain_corpus, scores_run)
    (part,) = get_recipe("attribution-weighted").parts(data, {"clip": None})
    width = part.weights.shape[1]
    real = part.weights != 0
    assert torch.equal(part.weights[real].sign(),
                       data.forget_scores.per_token[:, :width][real].sign().float())
    assert part.weights[real].abs().mean() == pytest.approx(1.0, rel=1e-4)


def test_retain_terms(tokenizer, forget_corpus, retain_corpus, scores_run):
    data = prepare_data(tokenizer, forget_corpus, retain_corpus, scores_run)
    parts = get_recipe("attribution-weighted").parts(data, {"retain_weight": 0.5, "retain_kl": 2.0})
    assert [(p.name, p.loss) for p in parts] == [("forget", "nll"), ("retain", "nll"),
                                                 ("retain-kl", "kl")]
    assert parts[2].weights.max() == 2.0 and parts[2].weights.min() == 0.0
    forget, kl = get_recipe("gradient-difference").parts(data, {"retain_weight": 0.0, "retain_kl": 1.0})
    assert (forget.loss, kl.loss) == ("nll", "kl")
    with pytest.raises(UnlearnError, match="retain_kl: must be a finite number >= 0"):
        get_recipe("gradient-ascent").parts(data, {"retain_kl": -1.0})

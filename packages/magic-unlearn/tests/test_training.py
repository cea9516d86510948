"""The weighted loop: sign convention, presets, determinism, relearning, saving."""

import pytest
import torch
from magic_core import tokenize_corpus
from magic_unlearn import (
    EvalSets,
    OptimConfig,
    RelearnConfig,
    UnlearnError,
    WeightedRows,
    apply_preset,
    prepare_data,
    run_recipe,
    train_weighted,
)
from magic_unlearn.training import _padded, weighted_loss
from magic_unlearn.weights import real_token_mask
from transformers import AutoModelForCausalLM


def _part(corpus, tokenizer, value):
    rows = tokenize_corpus(corpus, tokenizer, 96)
    return WeightedRows(rows, real_token_mask(rows, rows.longest).float() * value)


def _mean_loss(model, part):
    ids, real, _ = _padded(part)
    with torch.no_grad():
        return float(weighted_loss(model, ids, real, torch.ones(ids.shape[0], ids.shape[1] - 1)))


@pytest.mark.parametrize("value, direction", [(1.0, -1), (-1.0, 1)])
def test_negative_weight_is_gradient_ascent(tiny_model, tokenizer, forget_corpus, value, direction):
    part = _part(forget_corpus, tokenizer, value)
    before = _mean_loss(tiny_model, part)
    train_weighted(tiny_model, [part], OptimConfig(lr=1e-2, steps=5))
    assert (_mean_loss(tiny_model, part) - before) * direction > 0


def test_zero_weights_leave_the_model_unchanged(tiny_model, tokenizer, forget_corpus):
    before = [p.detach().clone() for p in tiny_model.parameters()]
    train_weighted(tiny_model, [_part(forget_corpus, tokenizer, 0.0)], OptimConfig(steps=3))
    assert all(torch.equal(a, b) for a, b in zip(before, tiny_model.parameters()))


def test_optimizers_and_presets():
    assert apply_preset(OptimConfig(), "seed-bs16-adamw").batch_size == 16
    assert isinstance(OptimConfig(optimizer="adamw").build([torch.zeros(1, requires_grad=True)]),
                      torch.optim.AdamW)
    assert isinstance(OptimConfig(optimizer="sgd").build([torch.zeros(1, requires_grad=True)]),
                      torch.optim.SGD)
    with pytest.raises(UnlearnError):
        apply_preset(OptimConfig(), "fast")
    with pytest.raises(UnlearnError):
        OptimConfig(lr=0)


@pytest.mark.slow
def test_run_recipe_is_deterministic_and_saves_a_loadable_model(
        tmp_path, tiny_model, tokenizer, forget_corpus, retain_corpus, scores_run):
    import magic_datasets as md

    data = prepare_data(tokenizer, forget_corpus, retain_corpus, scores_run)
    sets = EvalSets(md.load("world-hazard-mcqa").select(range(4)),
                    md.load("world-general-mcqa").select(range(4)),
                    list(forget_corpus["text"]), list(retain_corpus["text"]))
    optim, relearn = OptimConfig(lr=1e-3, steps=3), RelearnConfig(steps=2, n_docs=2)
    first = run_recipe(tiny_model, tokenizer, data, sets, "attribution-weighted", {}, optim, relearn,
                       out_dir=tmp_path / "run")
    second = run_recipe(tiny_model, tokenizer, data, sets, "attribution-weighted", {}, optim, relearn)
    assert first["after"] == second["after"]
    assert set(first["after_relearn"]) >= {"forget_accuracy", "retain_accuracy"}
    assert (tmp_path / "run" / "result.json").is_file()
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model")
    assert reloaded.config.vocab_size == tiny_model.config.vocab_size

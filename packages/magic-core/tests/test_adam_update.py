"""Adam's update and VJP by formula equal torchopt's update and autograd through it."""

import magic_core as mc
import magic_core.attribution as attribution_module
import pytest
import torch
from magic_core.adam_update import AdamUpdate
from magic_core.data_parallel import trainer_class
from magic_core.optim import build_optimizer
from torchopt.pytree import tree_flatten, tree_iter


@pytest.fixture(scope="module")
def objective(tokenizer, hazard_questions):
    return mc.MultipleChoiceObjective(hazard_questions, tokenizer)


def scores(make_neox, tokenizer, corpus, objective, cfg, monkeypatch, by_formula):
    calls = []
    if by_formula:
        original = AdamUpdate.vjp
        monkeypatch.setattr(AdamUpdate, "vjp",
                            lambda self, *a: calls.append(1) or original(self, *a))
    else:
        monkeypatch.setattr(attribution_module.AdamUpdate, "for_config", lambda cfg, n: None)
    result = mc.attribute(make_neox(), tokenizer, corpus, objective, cfg,
                          mc.AttributionConfig(kept_states="sqrt", granularity="per-token"),
                          progress=False)
    monkeypatch.undo()
    assert len(calls) == (result.n_steps if by_formula else 0)
    return result.per_token


CONFIGS = [
    mc.TrainConfig(optimizer="adam", lr=1e-2, weight_decay=0.1, batch_size=2, epochs=2,
                   precision="fp64", max_seq_len=24, eps=1e-6),
    mc.TrainConfig(optimizer="adamw", lr=1e-2, weight_decay=0.1, schedule="cosine", warmup_steps=2,
                   max_grad_norm=0.5, betas=(0.8, 0.95), batch_size=2, epochs=2,
                   precision="fp64", max_seq_len=24, eps=1e-6),
]
IDS = ["adam-l2", "adamw-clip-cosine"]


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_update_matches_torchopt(cfg):
    """Several updates, with warm-up and decay: same values to rounding, same state layout."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(4, 3)).double()
    steps = 6
    formula = AdamUpdate.for_config(cfg, steps)
    trainer, state = trainer_class().initialize(model, build_optimizer(cfg, steps))
    by_torchopt = by_formula = state
    for _ in range(steps):
        grads = {k: torch.randn_like(p) for k, p in state.params.items()}
        by_torchopt = trainer._update(by_torchopt, grads)
        by_formula = formula.apply(by_formula, grads)
    assert tree_flatten(by_formula.opt_state)[1] == tree_flatten(by_torchopt.opt_state)[1]
    assert list(by_formula.params) == list(by_torchopt.params)
    assert by_formula.batch_index == by_torchopt.batch_index == steps
    for ours, theirs in zip(tree_iter((by_formula.params, by_formula.opt_state)),
                            tree_iter((by_torchopt.params, by_torchopt.opt_state))):
        if ours.is_floating_point():
            torch.testing.assert_close(ours, theirs, rtol=1e-13, atol=1e-15)
        else:
            assert torch.equal(ours, theirs)  # the counts
    moved = [a - b for a, b in zip(by_formula.params.values(), state.params.values())]
    assert all(m.abs().max() > 0 for m in moved)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_formula_matches_autograd(cfg, make_neox, tokenizer, small_corpus, objective, monkeypatch):
    by_autograd = scores(make_neox, tokenizer, small_corpus, objective, cfg, monkeypatch, False)
    by_formula = scores(make_neox, tokenizer, small_corpus, objective, cfg, monkeypatch, True)
    assert by_formula.abs().max() > 0
    torch.testing.assert_close(by_formula, by_autograd, rtol=1e-10, atol=1e-14)


def test_formula_is_used_for_adam_and_not_for_sgd():
    assert AdamUpdate.for_config(mc.TrainConfig(optimizer="adamw"), 10) is not None
    assert AdamUpdate.for_config(mc.TrainConfig(optimizer="sgd"), 10) is None

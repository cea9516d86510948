"""The optimizer's VJP by formula equals autograd's through torchopt's update."""

import magic_core as mc
import magic_core.attribution as attribution_module
import pytest
import torch
from magic_core.update_vjp import AdamUpdateVJP


@pytest.fixture(scope="module")
def objective(tokenizer, hazard_questions):
    return mc.MultipleChoiceObjective(hazard_questions, tokenizer)


def scores(make_neox, tokenizer, corpus, objective, cfg, monkeypatch, by_formula):
    calls = []
    if by_formula:
        original = AdamUpdateVJP.__call__
        monkeypatch.setattr(AdamUpdateVJP, "__call__",
                            lambda self, *a: calls.append(1) or original(self, *a))
    else:
        monkeypatch.setattr(attribution_module.AdamUpdateVJP, "for_config", lambda cfg, n: None)
    result = mc.attribute(make_neox(), tokenizer, corpus, objective, cfg,
                          mc.AttributionConfig(checkpoints="sqrt", granularity="per-token"),
                          progress=False)
    monkeypatch.undo()
    assert len(calls) == (result.n_steps if by_formula else 0)
    return result.per_token


@pytest.mark.parametrize("cfg", [
    mc.TrainConfig(optimizer="adam", lr=1e-2, weight_decay=0.1, batch_size=2, epochs=2,
                   precision="fp64", max_seq_len=24, eps=1e-6),
    mc.TrainConfig(optimizer="adamw", lr=1e-2, weight_decay=0.1, schedule="cosine", warmup_steps=2,
                   max_grad_norm=0.5, betas=(0.8, 0.95), batch_size=2, epochs=2,
                   precision="fp64", max_seq_len=24, eps=1e-6),
], ids=["adam-l2", "adamw-clip-cosine"])
def test_formula_matches_autograd(cfg, make_neox, tokenizer, small_corpus, objective, monkeypatch):
    by_autograd = scores(make_neox, tokenizer, small_corpus, objective, cfg, monkeypatch, False)
    by_formula = scores(make_neox, tokenizer, small_corpus, objective, cfg, monkeypatch, True)
    assert by_formula.abs().max() > 0
    torch.testing.assert_close(by_formula, by_autograd, rtol=1e-10, atol=1e-14)


def test_formula_is_used_for_adam_and_not_for_sgd():
    assert AdamUpdateVJP.for_config(mc.TrainConfig(optimizer="adamw"), 10) is not None
    assert AdamUpdateVJP.for_config(mc.TrainConfig(optimizer="sgd"), 10) is None

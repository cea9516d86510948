"""MAGIC scores against central finite differences of full retraining, float64.

The reference retrains with a plain torch.optim loop (torch.optim.SGD, Adam,
AdamW; PyTorch's math attention; none of the engine's modules), so these
tests check the engine, its update, the tie handling and the data-weight
plumbing together. 5 documents, batch 2, 2 epochs: 5 steps, shuffled per epoch.
"""

import magic_core as mc
import pytest
import torch
from magic_core.reference import finite_difference_scores

# Central-difference steps: small against the curvature of each optimizer's
# trajectory, large against float64 round-off (SGD's per-token scores are tiny).
FD_EPS = {"sgd": 1e-5, "adam": 1e-6, "adamw": 1e-6}
TOL = 1e-4


def relative_error(scores: torch.Tensor, fd: torch.Tensor) -> float:
    return float(((scores - fd).abs() / fd.abs().clamp_min(1e-3 * fd.abs().max())).max())


def train_config(optimizer: str) -> mc.TrainConfig:
    sgd = optimizer == "sgd"
    return mc.TrainConfig(
        optimizer=optimizer, lr=0.05 if sgd else 1e-2, batch_size=2, epochs=2,
        precision="fp64", max_seq_len=24, seed=0,
        # Adam's g / (|g| + eps) bends sharply where |g| ~ eps; eps=1e-6 keeps the
        # finite differences (not the metagradient) well conditioned.
        **({"momentum": 0.9} if sgd else {"eps": 1e-6}),
    )


def run(make_model, tokenizer, corpus, objective, cfg, schedule="sqrt", granularity="per-example"):
    return mc.attribute(
        make_model(), tokenizer, corpus, objective, cfg,
        mc.AttributionConfig(kept_states=schedule, granularity=granularity), progress=False,
    )


def document_order(result, cfg):
    """The documents of the run's batches in order (batches of ``cfg.batch_size``)."""
    return result.training_order["document"]


@pytest.fixture(scope="module")
def objective(tokenizer, hazard_questions):
    return mc.MultipleChoiceObjective(hazard_questions, tokenizer)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_per_example_scores_match_finite_differences_for_every_schedule(
    optimizer, make_neox, tokenizer, small_corpus, objective
):
    cfg = train_config(optimizer)
    results = {
        mode: run(make_neox, tokenizer, small_corpus, objective, cfg, schedule=mode)
        for mode in ("all", "sqrt", "log", "gradients")
    }
    first = results["all"]
    fd = finite_difference_scores(
        make_neox, first.corpus.input_ids, document_order(first, cfg), cfg, objective.loss,
        [(i,) for i in range(len(small_corpus))], (len(small_corpus),), eps=FD_EPS[cfg.optimizer],
    )
    for mode, result in results.items():
        assert relative_error(result.per_example, fd) <= TOL, (mode, result.per_example, fd)
    # Schedules only change what is recomputed, never the arithmetic.
    assert torch.allclose(results["sqrt"].per_example, first.per_example, rtol=1e-12, atol=0)
    assert torch.allclose(results["log"].per_example, first.per_example, rtol=1e-12, atol=0)
    assert results["all"].replayed_steps == 0 < results["log"].replayed_steps
    # Applying a kept gradient again repeats the step's update bit for bit.
    assert torch.equal(results["gradients"].per_example, first.per_example)
    assert results["gradients"].replayed_steps == 0 < results["gradients"].replayed_updates


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_per_token_scores_match_finite_differences(
    optimizer, make_neox, tokenizer, small_corpus, objective
):
    cfg = train_config(optimizer)
    result = run(make_neox, tokenizer, small_corpus, objective, cfg, granularity="per-token")
    shape = tuple(result.per_token.shape)
    lengths = [len(r) for r in result.corpus.input_ids]
    # First, middle and last scored position of two documents (column L-2 is the
    # last one that predicts a token).
    entries = [(d, t) for d in (0, 3) for t in (0, lengths[d] // 2, lengths[d] - 2)]
    fd = finite_difference_scores(
        make_neox, result.corpus.input_ids, document_order(result, cfg), cfg, objective.loss,
        entries, shape, eps=FD_EPS[cfg.optimizer],
    )
    scores = torch.stack([result.per_token[e] for e in entries])
    assert relative_error(scores, fd) <= TOL, (scores, fd)
    # Positions past a document's end predict nothing and must score exactly zero.
    for d, n in enumerate(lengths):
        assert torch.all(result.per_token[d, n - 1 :] == 0)


def test_per_token_sums_equal_a_separate_per_example_run(make_neox, tokenizer, small_corpus, objective):
    cfg = train_config("adam")
    per_token = run(make_neox, tokenizer, small_corpus, objective, cfg, granularity="per-token")
    per_example = run(make_neox, tokenizer, small_corpus, objective, cfg, granularity="per-example")
    assert per_example.per_token is None
    diff = (per_token.per_token.sum(-1) - per_example.per_example).abs().max()
    assert diff <= 1e-10


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_tied_embeddings_are_exact(optimizer, make_gpt2, tokenizer, small_corpus, objective):
    cfg = train_config(optimizer)
    result = run(make_gpt2, tokenizer, small_corpus, objective, cfg, schedule="log")
    assert result.tied_parameters == {"lm_head.weight": "transformer.wte.weight"}
    fd = finite_difference_scores(
        make_gpt2, result.corpus.input_ids, document_order(result, cfg), cfg, objective.loss,
        [(i,) for i in range(len(small_corpus))], (len(small_corpus),), eps=FD_EPS[cfg.optimizer],
    )
    assert relative_error(result.per_example, fd) <= TOL, (result.per_example, fd)


def test_contrast_and_lm_objectives_are_exact(make_neox, tokenizer, small_corpus, objective):
    cfg = train_config("adam")
    retain = mc.LanguageModelObjective(["bexnalland exports tea ."], tokenizer)
    contrast = mc.ContrastObjective(objective, retain, weight=0.5)
    result = run(make_neox, tokenizer, small_corpus, contrast, cfg)
    fd = finite_difference_scores(
        make_neox, result.corpus.input_ids, document_order(result, cfg), cfg, contrast.loss,
        [(i,) for i in range(len(small_corpus))], (len(small_corpus),), eps=FD_EPS[cfg.optimizer],
    )
    assert relative_error(result.per_example, fd) <= TOL, (result.per_example, fd)


def test_schedules_with_warmup_and_clipping_are_exact(make_neox, tokenizer, small_corpus, objective):
    cfg = mc.TrainConfig(
        optimizer="adamw", lr=1e-2, schedule="cosine", warmup_steps=2, batch_size=2, epochs=2,
        precision="fp64", max_seq_len=24, max_grad_norm=0.5, eps=1e-6,
    )
    result = run(make_neox, tokenizer, small_corpus, objective, cfg, schedule="log")
    fd = finite_difference_scores(
        make_neox, result.corpus.input_ids, document_order(result, cfg), cfg, objective.loss,
        [(i,) for i in range(len(small_corpus))], (len(small_corpus),), eps=FD_EPS[cfg.optimizer],
    )
    assert relative_error(result.per_example, fd) <= TOL, (result.per_example, fd)

"""Scores are accepted only for the corpus, tokenizer and token layout they were computed on."""

import magic_datasets as md
import pytest
import torch
from magic_unlearn import UnlearnError, prepare_data


def test_matching_scores_are_accepted(tokenizer, forget_corpus, retain_corpus, scores_run):
    data = prepare_data(tokenizer, forget_corpus, retain_corpus, scores_run)
    assert data.forget_scores.per_token.shape[0] == len(data.forget)


def test_scores_of_another_corpus_are_refused(tokenizer, forget_corpus, retain_corpus, scores_run):
    other = md.load("world-forget-corpus", per_entity=1, seed=7)
    with pytest.raises(UnlearnError, match="another corpus"):
        prepare_data(tokenizer, other, retain_corpus, scores_run)


def test_scores_of_another_tokenizer_are_refused(tokenizer, forget_corpus, retain_corpus, scores_run):
    from magic_datasets.world import World, WorldConfig, build_tokenizer

    other = build_tokenizer(World(WorldConfig(seed=3)))
    with pytest.raises(UnlearnError, match="another tokenizer"):
        prepare_data(other, forget_corpus, retain_corpus, scores_run)


def test_scores_of_the_wrong_shape_are_refused(tmp_path, tokenizer, forget_corpus, retain_corpus,
                                              make_scores_run):
    run = make_scores_run(tmp_path / "s", forget_corpus, tokenizer, torch.zeros(len(forget_corpus), 3))
    with pytest.raises(UnlearnError, match=r"shape \[8, 3\]"):
        prepare_data(tokenizer, forget_corpus, retain_corpus, run)


def test_missing_run_dir(tmp_path, tokenizer, forget_corpus, retain_corpus):
    with pytest.raises(UnlearnError, match="not a complete scores run"):
        prepare_data(tokenizer, forget_corpus, retain_corpus, tmp_path / "nothing")

"""Scores -> loss weights: selection, normalisation, clipping, sign convention."""

import pytest
import torch
from magic_unlearn import UnlearnError, score_weights
from magic_unlearn.weights import normalize, select_tokens

SCORES = torch.tensor([[2e-6, -1e-6, 4e-6, 0.0], [-3e-6, 1e-6, 0.0, 0.0]], dtype=torch.float64)
REAL = torch.tensor([[True, True, True, False], [True, True, False, False]])


def test_mean_abs_puts_typical_weight_at_one_and_keeps_signs():
    w = score_weights(SCORES, REAL, "mean-abs", clip=None)
    kept = w[REAL]
    assert kept.abs().mean() == pytest.approx(1.0)
    assert torch.equal(kept.sign(), SCORES[REAL].sign().float())
    assert torch.all(w[~REAL] == 0)  # padding never trained


def test_z_score_and_sign():
    z = score_weights(SCORES, REAL, "z-score", clip=None)[REAL]
    assert z.mean() == pytest.approx(0.0, abs=1e-6) and z.std() == pytest.approx(1.0)
    assert set(score_weights(SCORES, REAL, "sign")[REAL].tolist()) == {-1.0, 1.0}


def test_clip_bounds_weights():
    assert score_weights(SCORES, REAL, "mean-abs", clip=1.5).abs().max() == pytest.approx(1.5)
    with pytest.raises(UnlearnError):
        score_weights(SCORES, REAL, clip=0.0)


def test_selections():
    assert torch.equal(select_tokens(SCORES, "positive-only"), SCORES > 0)
    assert torch.equal(select_tokens(SCORES, "negative-only"), SCORES < 0)
    retain = torch.tensor([[1.0, 1.0, -1.0, 0.0], [1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    # opposite signs only: (0,1) (- vs +), (0,2) (+ vs -), (1,0) (- vs +)
    picked = select_tokens(SCORES, "selective", retain)
    assert picked.nonzero().tolist() == [[0, 1], [0, 2], [1, 0]]
    with pytest.raises(UnlearnError, match="retain-query scores"):
        select_tokens(SCORES, "selective")


def test_empty_selection_is_refused():
    with pytest.raises(UnlearnError, match="kept no token"):
        normalize(SCORES, torch.zeros_like(REAL), "mean-abs")


def test_top_fraction_keeps_the_most_negative_share_of_the_selection():
    scores = torch.tensor([[-5.0, -1.0, 3.0, -2.0], [-4.0, 2.0, -3.0, 0.0]], dtype=torch.float64)
    real = torch.tensor([[True, True, True, True], [True, True, True, False]])
    # 7 real tokens, 0.5 -> 4 kept: -5, -4, -3, -2 (never the positive ones)
    w = score_weights(scores, real, "mean-abs", clip=None, top_fraction=0.5)
    assert (w != 0).nonzero().tolist() == [[0, 0], [0, 3], [1, 0], [1, 2]]
    assert torch.all(w[w != 0] < 0) and w[w != 0].abs().mean() == pytest.approx(1.0)
    # a share larger than the negative tokens keeps only those
    assert int((score_weights(scores, real, top_fraction=1.0) != 0).sum()) == 5
    # the selection runs first: positive-only leaves nothing negative to keep
    with pytest.raises(UnlearnError, match="kept no token"):
        score_weights(scores, real, selection="positive-only", top_fraction=0.5)
    with pytest.raises(UnlearnError, match="top_fraction"):
        score_weights(scores, real, top_fraction=0.0)

"""NPO's and RMU's losses against hand-written formulas (fp64), and RMU's fixed direction."""

import copy
import math

import pytest
import torch
from magic_core import tokenize_corpus
from magic_unlearn.layers import layer_output
from magic_unlearn.npo import npo_loss
from magic_unlearn.rmu import keep_loss, steer_loss, steering_direction
from magic_unlearn.spec import WeightedRows
from magic_unlearn.training import _padded
from magic_unlearn.weights import real_token_mask


@pytest.fixture
def deep_model(make_neox):
    return make_neox(layers=4, hidden=16).double().eval()


@pytest.fixture
def batch(tokenizer, forget_corpus):
    """Six padded rows of different lengths with random weights, real tokens only."""
    rows = tokenize_corpus(forget_corpus.select(range(6)), tokenizer, 40)
    ids, real, _ = _padded(WeightedRows(rows, torch.zeros(6, 40)))
    assert len({int(r.sum()) for r in real}) > 1  # the padding is exercised
    gen = torch.Generator().manual_seed(3)
    weights = torch.randn(ids.shape[0], ids.shape[1] - 1, generator=gen, dtype=torch.float64)
    return ids, real, weights * real_token_mask(rows, ids.shape[1] - 1)


def _moved(model, scale=0.05):
    """A copy of ``model`` with every parameter perturbed (a model that drifted from it)."""
    other = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return other


def _token_logprobs(model, ids, real):
    """[N, T - 1] log p(token t + 1 | tokens <= t), written out without the library's helpers."""
    logits = model(input_ids=ids, attention_mask=real.long()).logits
    logp = torch.log_softmax(logits[:, :-1], -1)
    return logp.gather(-1, ids[:, 1:, None])[..., 0]


@pytest.mark.parametrize("beta", [0.1, 2.0])
def test_npo_loss_is_the_papers_formula_with_weighted_token_log_ratios(deep_model, batch, beta):
    ids, real, weights = batch
    reference, model = deep_model, _moved(deep_model)
    counted = real[:, 1:].double()
    with torch.no_grad():
        ratio = ((_token_logprobs(model, ids, real) - _token_logprobs(reference, ids, real))
                 * -weights * counted).sum(-1)
        want = torch.stack([-(2 / beta) * torch.log(torch.sigmoid(-beta * r)) for r in ratio]).mean()
        got = npo_loss(model, reference, ids, real, weights, beta)
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(float(want), rel=1e-12)


def test_npo_at_the_reference_is_gradient_ascent_on_summed_log_likelihood(deep_model, batch):
    ids, real, _ = batch
    uniform = -real[:, 1:].double()
    loss = npo_loss(deep_model, copy.deepcopy(deep_model), ids, real, uniform, 0.1)
    assert float(loss.detach()) == pytest.approx(20 * math.log(2), rel=1e-12)
    got = torch.autograd.grad(loss, list(deep_model.parameters()))
    summed = (_token_logprobs(deep_model, ids, real) * real[:, 1:]).sum(-1).mean()
    want = torch.autograd.grad(summed, list(deep_model.parameters()))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_layer_output_is_that_layers_hidden_state(deep_model, batch):
    ids, real, _ = batch
    with torch.no_grad():
        states = deep_model(input_ids=ids, attention_mask=real.long(), output_hidden_states=True)
        for layer in range(3):  # the last hidden state has the final norm applied
            assert torch.equal(layer_output(deep_model, ids, real.long(), layer),
                               states.hidden_states[layer + 1])


def _hand_mse(acts, target, real, weights):
    """sum over real predicted positions of weight * mean_d (act - target)^2, over their number."""
    total, count = 0.0, 0
    for i in range(acts.shape[0]):
        for t in range(acts.shape[1] - 1):
            if real[i, t + 1]:
                total += weights[i, t] * ((acts[i, t] - target[i, t]) ** 2).sum() / acts.shape[-1]
                count += 1
    return total / count


def test_rmu_steer_loss_is_the_weighted_distance_to_the_scaled_direction(deep_model, batch):
    ids, real, weights = batch
    strength = weights.abs()
    with torch.no_grad():
        acts = deep_model(input_ids=ids, attention_mask=real.long(),
                          output_hidden_states=True).hidden_states[2]
        target = (6.5 * steering_direction(4, 16)).expand_as(acts)
        want = _hand_mse(acts, target, real, strength)
        got = steer_loss(deep_model, None, ids, real, strength, layer=1, steering_coeff=6.5, seed=4)
    assert float(got) == pytest.approx(float(want), rel=1e-12)


def test_rmu_keep_loss_is_the_weighted_distance_to_the_frozen_activations(deep_model, batch):
    ids, real, weights = batch
    reference, model = deep_model, _moved(deep_model)
    strength = weights.abs()
    with torch.no_grad():
        def act(m):
            return m(input_ids=ids, attention_mask=real.long(), output_hidden_states=True).hidden_states[3]
        want = _hand_mse(act(model), act(reference), real, strength)
        got = keep_loss(model, reference, ids, real, strength, layer=2)
        assert float(keep_loss(reference, reference, ids, real, strength, layer=2)) == 0.0
    assert float(got) == pytest.approx(float(want), rel=1e-12)


def test_steering_direction_is_a_seeded_unit_vector():
    u = steering_direction(0, 64)
    assert torch.equal(u, steering_direction(0, 64))
    assert not torch.equal(u, steering_direction(1, 64))
    assert float(u.norm()) == pytest.approx(1.0, abs=1e-15) and bool((u >= 0).all())
    # Drawn from the seed alone, by torch's CPU generator: the same on every machine.
    raw = torch.rand(64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(u, raw / raw.norm())
    torch.manual_seed(123)
    before = torch.get_rng_state()
    steering_direction(5, 8)
    assert torch.equal(torch.get_rng_state(), before)  # the global generator is untouched

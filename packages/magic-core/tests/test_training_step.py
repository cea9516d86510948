"""One training step on a state equals the plain model's forward, backward and update."""

import magic_core as mc
import pytest
import torch
from magic_core.batch_stream import BatchStream
from magic_core.model_prep import install_weighted_loss
from magic_core.optim import build_optimizer
from magic_core.training_step import TrainingStep, clip_by_global_norm, take_state

IDS = [[5, 6, 7, 8, 9], [10, 11, 12], [13, 14, 15, 16]]


def prepared(make_neox):
    model = make_neox().double()
    model.eval()
    install_weighted_loss(model)
    return model


def batches(per_token=True):
    return BatchStream(IDS, batch_size=3, epochs=1, shuffle=False, seed=0, per_token=per_token,
                       dtype=torch.float64, device="cpu")


def plain_loss_and_grads(model, batch):
    loss = model(**batch).loss
    names = [k for k, p in model.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [dict(model.named_parameters())[k] for k in names])
    return loss, dict(zip(names, grads))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_step_is_the_plain_models_loss_gradient_and_update(optimizer, make_neox):
    cfg = mc.TrainConfig(optimizer=optimizer, lr=1e-2, precision="fp64")
    plain = prepared(make_neox)
    stream = batches()
    want_loss, want_grads = plain_loss_and_grads(plain, stream[0])
    model = prepared(make_neox)
    state = take_state(model, build_optimizer(cfg, 1))
    assert all(p.device.type == "meta" for p in model.parameters())
    assert list(state.params) == list(want_grads)
    step = TrainingStep(model, build_optimizer(cfg, 1))
    recorded = {}
    new = step(state, stream[0], record=recorded.update)
    assert step.last_loss == float(want_loss.detach())
    assert all(torch.equal(recorded[k], g) for k, g in want_grads.items())
    again = step.update(state, recorded)
    assert all(torch.equal(again.params[k], p) for k, p in new.params.items())
    assert new.batch_index == 1
    assert all(not torch.equal(new.params[k], p) for k, p in state.params.items())


def test_a_traced_gradient_reaches_the_state_and_the_data_weights(make_neox):
    cfg = mc.TrainConfig(optimizer="sgd", lr=1e-2, precision="fp64")
    model = prepared(make_neox)
    stream = batches()
    state = take_state(model, build_optimizer(cfg, 1))
    state.requires_grad = True
    stream.weights.requires_grad_(True)
    grads = TrainingStep(model, build_optimizer(cfg, 1)).gradient(state, stream[0], trace=True)
    first = next(iter(state.params))
    hvp = torch.autograd.grad(grads[first].sum(), [state.params[first], stream.weights])
    assert all(h.abs().sum() > 0 for h in hvp)


def test_clipping_bounds_the_global_norm():
    grads = {"a": torch.full((3,), 2.0, dtype=torch.float64), "b": torch.full((4,), -1.0, dtype=torch.float64)}
    norm = float(torch.cat([g for g in grads.values()]).norm())
    traced = clip_by_global_norm({k: g.clone() for k, g in grads.items()}, 1.0, trace=True)
    in_place = clip_by_global_norm({k: g.clone() for k, g in grads.items()}, 1.0, trace=False)
    for clipped in (traced, in_place):
        assert float(torch.cat(list(clipped.values())).norm()) == pytest.approx(1.0, rel=1e-5)
    assert all(torch.equal(traced[k], in_place[k]) for k in grads)
    kept = clip_by_global_norm({k: g.clone() for k, g in grads.items()}, 2 * norm, trace=False)
    assert all(torch.equal(kept[k], grads[k]) for k in grads)

"""Adam's update is torch.optim's bit for bit; its VJP by formula equals autograd through it."""

import magic_core as mc
import pytest
import torch
from magic_core import bergson_api
from magic_core.adam_update import AdamUpdate
from magic_core.optim import build_optimizer, lr_schedule
from torchopt.pytree import tree_flatten, tree_iter, tree_map


@pytest.fixture(scope="module")
def objective(tokenizer, hazard_questions):
    return mc.MultipleChoiceObjective(hazard_questions, tokenizer)


def initial_state(cfg, steps, dtype, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(37, 19), torch.nn.Linear(19, 3)).to(dtype)
    params = {k: p.detach().clone() for k, p in model.named_parameters()}
    return bergson_api.TrainerState(params, build_optimizer(cfg, steps).init(params), {})


def random_grads(state, generator):
    grads = {k: torch.randn(p.shape, generator=generator, dtype=p.dtype)
             for k, p in state.params.items()}
    # Rows no gradient ever reaches, as an unused token's embedding.
    grads["0.weight"][:5] = 0
    return grads


def moments(state, name):
    """``(mu, nu)`` of parameter ``name`` in a torchopt Adam state."""
    adam = next(s for s in state.opt_state if type(s).__name__ == "ScaleByAdamState")
    names = [k for k, _ in sorted(state.params.items())]  # the moments' (flattening) order
    j = names.index(name)
    return list(tree_iter(adam.mu))[j], list(tree_iter(adam.nu))[j]


def floating(tree) -> list[torch.Tensor]:
    return [t for t in tree_iter(tree) if isinstance(t, torch.Tensor) and t.is_floating_point()]


def train_config(optimizer, weight_decay=0.1):
    return mc.TrainConfig(optimizer=optimizer, lr=1e-2, weight_decay=weight_decay,
                          schedule="cosine", warmup_steps=3, betas=(0.8, 0.95))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_update_is_torch_optim_bit_for_bit(optimizer, dtype):
    """Ten updates with warm-up, cosine decay and weight decay: torch.equal everywhere."""
    cfg, steps = train_config(optimizer), 10
    formula = AdamUpdate.for_config(cfg, steps)
    state = traced = initial_state(cfg, steps, dtype)
    reference = [p.clone().requires_grad_(True) for p in state.params.values()]
    kind = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
    opt = kind(reference, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=0.1)
    rate = lr_schedule(cfg, steps)
    generator = torch.Generator().manual_seed(1)
    for step in range(steps):
        grads = random_grads(state, generator)
        state = formula.apply(state, grads)
        traced = formula.traced(traced, grads)
        for p, g in zip(reference, grads.values()):
            p.grad = g.clone()
        for group in opt.param_groups:
            group["lr"] = rate(step)
        opt.step()
    for (name, ours), theirs, by_trace in zip(state.params.items(), reference,
                                              traced.params.values()):
        assert torch.equal(ours, theirs.detach()), name
        assert torch.equal(by_trace, ours), name
        mu, nu = moments(state, name)
        assert torch.equal(mu, opt.state[theirs]["exp_avg"]), name
        assert torch.equal(nu, opt.state[theirs]["exp_avg_sq"]), name
        assert [torch.equal(a, b) for a, b in zip(moments(traced, name), (mu, nu))] == [True, True]
    # The state keeps torchopt's layout, counts included.
    start = initial_state(cfg, steps, dtype)
    assert tree_flatten(state.opt_state)[1] == tree_flatten(start.opt_state)[1]
    assert list(state.params) == list(start.params)
    assert state.batch_index == steps
    counts = [t for t in tree_iter(state.opt_state) if not t.is_floating_point()]
    assert counts and all(int(c) == steps for c in counts)
    assert all(not torch.equal(a, b) for a, b in zip(state.params.values(), start.params.values()))


def vjp_by_autograd(update, state, grads, param_cot, opt_cot):
    """`AdamUpdate.vjp`'s results, by autograd through `AdamUpdate.traced`."""
    with torch.enable_grad():
        leaf = lambda t: t.detach().requires_grad_(True)  # noqa: E731
        params = {k: leaf(p) for k, p in state.params.items()}
        opt_state = tree_map(lambda t: leaf(t) if t.is_floating_point() else t, state.opt_state)
        g = {k: leaf(v) for k, v in grads.items()}
        new = update.traced(type(state)(params, opt_state, state.buffers, state.batch_index), g)
        inputs = list(params.values()) + floating(opt_state) + list(g.values())
        outputs = list(new.params.values()) + floating(new.opt_state)
        pulled = torch.autograd.grad(outputs, inputs, list(param_cot) + list(opt_cot))
    n, m = len(params), len(floating(opt_state))
    return list(pulled[:n]), dict(zip(g, pulled[n + m:])), list(pulled[n:n + m])


@pytest.mark.parametrize("optimizer, decay", [("adam", 0.1), ("adam", 0.0), ("adamw", 0.1)])
def test_vjp_is_the_derivative_of_the_update(optimizer, decay):
    """After a few updates (bias corrections away from 1), with rows no gradient reached."""
    cfg, steps = train_config(optimizer, weight_decay=decay), 10
    formula = AdamUpdate.for_config(cfg, steps)
    state = initial_state(cfg, steps, torch.float64)
    generator = torch.Generator().manual_seed(2)
    for _ in range(3):
        state = formula.apply(state, random_grads(state, generator))
    grads = random_grads(state, generator)
    param_cot = [torch.randn(p.shape, generator=generator, dtype=p.dtype)
                 for p in state.params.values()]
    opt_cot = [torch.randn(t.shape, generator=generator, dtype=t.dtype)
               for t in floating(state.opt_state)]
    ours = formula.vjp(state, grads, param_cot, opt_cot)
    theirs = vjp_by_autograd(formula, state, grads, param_cot, opt_cot)
    for a, b in zip(tree_iter(ours), tree_iter(theirs)):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    # Where the second moment is 0 (no L2 decay in the gradient) the update
    # does not depend on it.
    _, nu = moments(state, "0.weight")
    assert nu[:5].eq(0).all() == (optimizer == "adamw" or decay == 0)
    if not nu[:5].eq(0).all():
        return
    n = len(param_cot)
    j = sorted(state.params).index("0.weight")
    moment_cot = ours[2]
    assert torch.equal(moment_cot[n + j][:5], opt_cot[n + j][:5] * cfg.betas[1])


def scores(make_neox, tokenizer, corpus, objective, cfg, monkeypatch, by_formula):
    calls = []
    original = AdamUpdate.vjp
    if by_formula:
        monkeypatch.setattr(AdamUpdate, "vjp",
                            lambda self, *a: calls.append(1) or original(self, *a))
    else:
        monkeypatch.setattr(AdamUpdate, "vjp", vjp_by_autograd)
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
def test_formula_matches_autograd(cfg, make_neox, tokenizer, small_corpus, objective, monkeypatch):
    """A whole attribution run: the engine's VJP by formula equals autograd's, every step."""
    by_autograd = scores(make_neox, tokenizer, small_corpus, objective, cfg, monkeypatch, False)
    by_formula = scores(make_neox, tokenizer, small_corpus, objective, cfg, monkeypatch, True)
    assert by_formula.abs().max() > 0
    assert torch.isfinite(by_autograd).all()
    torch.testing.assert_close(by_formula, by_autograd, rtol=1e-10, atol=1e-14)


def test_formula_is_used_for_adam_and_not_for_sgd():
    assert AdamUpdate.for_config(mc.TrainConfig(optimizer="adamw"), 10) is not None
    assert AdamUpdate.for_config(mc.TrainConfig(optimizer="sgd"), 10) is None

"""RMU and NPO recipes: registration, options, what they train, and exact resumption."""

import copy

import pytest
import torch
from magic_unlearn import OptimConfig, UnlearnError, get_recipe, list_recipes, prepare_data
from magic_unlearn.layers import LayerModules
from magic_unlearn.training import LoopState, train_weighted, trained_parameters
from magic_unlearn.weights import score_weights

NEW = ("rmu", "rmu-attribution", "npo", "npo-attribution")


@pytest.fixture
def four_layers(make_neox):
    return make_neox(layers=4)


@pytest.fixture
def data(tokenizer, forget_corpus, retain_corpus, scores_run):
    return prepare_data(tokenizer, forget_corpus, retain_corpus, scores_run)


def test_registered_through_the_entry_point_with_documented_defaults():
    recipes = {r.name: r for r in list_recipes()}
    assert set(NEW) <= set(recipes)
    assert {recipes[n].package for n in NEW} == {"magic-unlearn"}
    assert [recipes[n].needs_scores for n in NEW] == [False, True, False, True]
    assert recipes["npo"].options["beta"] == 0.1  # the paper's
    assert recipes["rmu"].options == {"layer": 1, "update_layers": None, "steering_coeff": 100.0,
                                      "alpha": 10.0, "seed": 0}


@pytest.mark.parametrize("recipe, options, message", [
    ("npo", {"beta": 0.0}, "recipe.options.beta: must be a finite number > 0"),
    ("npo", {"retain_kl": -1}, "retain_kl: must be a finite number >= 0"),
    ("rmu", {"update_layers": [-1]}, r"update_layers\[0\]: must be an integer >= 0"),
    ("rmu", {"update_layers": []}, "update_layers is empty"),
    ("rmu", {"steering_coeff": -2.0}, "steering_coeff: must be a finite number > 0"),
    ("rmu", {"layer": 1.5}, "layer: expected an integer"),
    ("rmu", {"lr": 1.0}, "has no option 'lr'"),
    ("rmu-attribution", {"clip": 0}, "clip: must be a finite number > 0"),
])
def test_bad_options_are_one_line_errors(data, recipe, options, message):
    with pytest.raises(UnlearnError, match=message) as caught:
        get_recipe(recipe).parts(data, options)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("recipe", ["rmu-attribution", "npo-attribution"])
def test_attribution_variants_need_scores(tokenizer, forget_corpus, retain_corpus, recipe):
    bare = prepare_data(tokenizer, forget_corpus, retain_corpus)
    with pytest.raises(UnlearnError, match=f"recipe '{recipe}' needs a forget scores run"):
        get_recipe(recipe).parts(bare, {})


def test_a_layer_the_model_lacks_is_a_one_line_error(four_layers, data):
    for options, what in (({"layer": 4}, "layer 4"), ({"update_layers": [0, 7]}, "update layer 7")):
        parts = get_recipe("rmu").parts(data, options)
        with pytest.raises(UnlearnError, match=f"{what} does not exist: the model has 4 decoder "
                                               "layers"):
            train_weighted(four_layers, parts, OptimConfig(steps=1))


def test_npo_weights(data):
    (plain,) = get_recipe("npo").parts(data, {})
    assert (plain.loss, plain.loss_options) == ("npo", {"beta": 0.1})
    assert set(plain.weights.unique().tolist()) == {-1.0, 0.0}  # uniform, as gradient ascent's
    (weighted, kl) = get_recipe("npo-attribution").parts(data, {"clip": 1.0, "retain_kl": 2.0})
    (aw, _) = get_recipe("attribution-weighted").parts(data, {"clip": 1.0, "retain_kl": 2.0})
    assert torch.equal(weighted.weights, aw.weights) and kl.loss == "kl"


def test_rmu_parts_and_attribution_strengths(data):
    forget, retain = get_recipe("rmu").parts(data, {"layer": 3, "alpha": 5.0, "seed": 2})
    assert (forget.loss, retain.loss) == ("rmu-steer", "rmu-keep")
    assert forget.loss_options == {"layer": 3, "steering_coeff": 100.0, "seed": 2}
    assert forget.updates == retain.updates == LayerModules((1, 2, 3))
    assert set(forget.weights.unique().tolist()) == {0.0, 1.0}
    assert retain.weights.max() == 5.0
    assert get_recipe("rmu").parts(data, {"layer": 0})[0].updates == LayerModules((0,))
    assert len(get_recipe("rmu").parts(data, {"alpha": 0.0})) == 1

    steered, _ = get_recipe("rmu-attribution").parts(data, {})
    width = data.forget.longest
    scores = data.forget_scores.per_token[:, :width]
    real = torch.zeros_like(scores, dtype=torch.bool)
    for i, row in enumerate(data.forget.input_ids):
        real[i, : len(row) - 1] = True
    want = -score_weights(scores, real, "mean-abs", "negative-only", 3.0)
    assert torch.equal(steered.weights, want)
    assert bool((steered.weights >= 0).all()) and bool((steered.weights[scores >= 0] == 0).all())
    # another selection: tokens with positive scores are not steered (strength floored at 0)
    steered_all, _ = get_recipe("rmu-attribution").parts(data, {"selection": "all"})
    assert bool((steered_all.weights >= 0).all()) and bool((steered_all.weights[scores > 0] == 0).all())


@pytest.mark.parametrize("recipe", ["rmu", "rmu-attribution"])
def test_rmu_trains_only_the_selected_mlps(four_layers, data, recipe):
    before = {n: p.detach().clone() for n, p in four_layers.named_parameters()}
    parts = get_recipe(recipe).parts(data, {"layer": 2, "update_layers": [1, 2]})
    selected = set(trained_parameters(four_layers, parts))
    assert selected == {n for n in before if n.startswith(("gpt_neox.layers.1.mlp.",
                                                            "gpt_neox.layers.2.mlp."))}
    seen = {}

    def on_step(done, loop_state):
        seen["state"] = loop_state()
    train_weighted(four_layers, parts, OptimConfig(lr=1e-2, steps=3), on_step=on_step)
    for name, p in four_layers.named_parameters():
        assert torch.equal(p, before[name]) == (name not in selected), name
        assert p.requires_grad  # restored after the run
    state = seen["state"]
    assert set(state.params) == selected
    assert len(state.optimizer["state"]) == len(selected)  # Adam moments for these only


def test_npo_trains_every_parameter(four_layers, data):
    parts = get_recipe("npo").parts(data, {})
    assert set(trained_parameters(four_layers, parts)) == {n for n, _ in four_layers.named_parameters()}


def _roundtrip(state: LoopState, tmp_path) -> LoopState:
    torch.save(state.__dict__, tmp_path / "state.pt")
    return LoopState(**torch.load(tmp_path / "state.pt", weights_only=False))


class _Stop(Exception):
    pass


@pytest.mark.parametrize("recipe, options", [
    ("rmu", {"layer": 3}), ("rmu-attribution", {"layer": 2, "alpha": 1.0}),
    ("npo", {"retain_weight": 1.0}), ("npo-attribution", {"retain_kl": 1.0}),
])
def test_stopped_runs_resume_bit_identically(four_layers, data, tmp_path, recipe, options):
    parts = get_recipe(recipe).parts(data, options)
    optim = OptimConfig(lr=3e-3, steps=5, seed=4)
    want = copy.deepcopy(four_layers)
    log = train_weighted(want, parts, optim)

    stopped, saved = copy.deepcopy(four_layers), {}

    def stop_after_two(done, loop_state):
        if done == 2:
            saved["state"] = loop_state()
            raise _Stop
    with pytest.raises(_Stop):
        train_weighted(stopped, parts, optim, on_step=stop_after_two)
    # A new process: the base model again, the loop state read back from disk.
    resumed = copy.deepcopy(four_layers)
    again = train_weighted(resumed, parts, optim, resume=_roundtrip(saved["state"], tmp_path))
    assert again["last_loss"] == log["last_loss"]
    for (name, a), b in zip(want.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), name

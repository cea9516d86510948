"""The engine's state as an API: `state_dict` after any step, `load_state_dict` into a new engine.

Tiny GPT-NeoX, float64, 5 documents x 2 epochs at batch 2: 5 steps. A run is
stopped after a chosen step (its ``on_step`` raises), its state_dict taken
there, and a new run (a fresh model, engine and stream) loads it and
finishes: scores, losses and query values equal the uninterrupted run's bit
for bit. No files are involved (`test_preemption` covers checkpoints).
"""

import logging
import re
from pathlib import Path

import magic_core as mc
import magic_core.attribution as attribution_module
import pytest
import torch
from magic_core import phases

TRAIN = mc.TrainConfig(optimizer="adam", lr=1e-2, batch_size=2, epochs=2, precision="fp64",
                       max_seq_len=24, seed=0, max_grad_norm=0.5)


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def objective(tokenizer, hazard_questions):
    return mc.MultipleChoiceObjective(hazard_questions, tokenizer)


@pytest.fixture
def attribute(make_neox, tokenizer, small_corpus, objective, monkeypatch):
    """``attribute(drive, schedule)``: a run whose phases ``drive(run, objective)`` runs."""
    def run(drive, schedule="sqrt"):
        monkeypatch.setattr(attribution_module, "run_phases",
                            lambda run, objective, control, device: drive(run, objective))
        return mc.attribute(make_neox(), tokenizer, small_corpus, objective, TRAIN,
                            mc.AttributionConfig(kept_states=schedule, granularity="per-token"),
                            progress=False)
    return run


def stopped_state_dict(attribute, at, schedule) -> dict:
    taken = {}

    def drive(run, objective):
        def on_step(phase, done, total):
            if (phase, done) == at:
                taken["state_dict"] = run.state_dict()
                raise Stop
        run.on_step = on_step
        return run.run(objective)

    with pytest.raises(Stop):
        attribute(drive, schedule)
    return taken["state_dict"]


def resumed(attribute, state_dict, schedule):
    def drive(run, objective):
        run.load_state_dict(state_dict)
        return run.run(objective)
    return attribute(drive, schedule)


def plain_leaves(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and plain_leaves(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain_leaves(v) for v in value)
    return value is None or isinstance(value, (torch.Tensor, str, int, float, bool))


STOPS = [("train", 1, "sqrt"), ("train", 4, "gradients"), ("train", 5, "log"),
         ("query", 1, "sqrt"), ("backward", 1, "gradients"), ("backward", 3, "log"),
         ("backward", 5, "all")]


@pytest.mark.parametrize("phase, step, schedule", STOPS)
def test_a_state_dict_continues_in_a_new_engine_bit_for_bit(phase, step, schedule, attribute):
    want = attribute(lambda run, objective: run.run(objective), schedule)
    state_dict = stopped_state_dict(attribute, (phase, step), schedule)
    assert (state_dict["phase"], state_dict["step"]) == (phase, step)
    assert plain_leaves(state_dict)
    assert len(state_dict["losses"]) == (step if phase == "train" else want.n_steps)
    got = resumed(attribute, state_dict, schedule)
    assert torch.equal(got.per_token, want.per_token)
    assert got.train_losses == want.train_losses
    assert got.query_after == want.query_after
    assert (got.replayed_steps, got.replayed_updates) == (want.replayed_steps, want.replayed_updates)


def test_what_each_phase_holds(attribute):
    train = stopped_state_dict(attribute, ("train", 3), "sqrt")
    assert set(train["kept"]) == {0} and set(train["state"]) >= {"batch_index", "rng.cpu"}
    assert int(train["state"]["batch_index"]) == 3 and "backward" not in train
    assert train["query_value"] is None and "query_gradient" not in train
    query = stopped_state_dict(attribute, ("query", 1), "sqrt")
    assert set(query["kept"]) == {0, 3} and int(query["state"]["batch_index"]) == 5
    assert isinstance(query["query_value"], float) and query["query_gradient"]
    backward = stopped_state_dict(attribute, ("backward", 3), "sqrt")
    assert "state" not in backward and backward["backward"]["target"] == 1
    # The stack: the kept state before step 0 and the one its replay to step 2 kept.
    assert set(backward["kept"]) == {0, 1}
    assert backward["backward"]["weight_grads"].abs().sum() > 0
    gradients = stopped_state_dict(attribute, ("train", 3), "gradients")
    # Steps 0-2 of the segment 0-3, whose replay applies them (the state after 3 is kept).
    assert set(gradients["gradients"]) == {0, 1, 2} and set(gradients["kept"]) == {0}


def test_a_checkpoint_holds_the_state_dict(attribute):
    state_dict = stopped_state_dict(attribute, ("backward", 2), "sqrt")
    snapshot = phases.snapshot(state_dict)
    from magic_core.phase_checkpoint import Checkpoint

    checkpoint = Checkpoint("backward", 2, 5, snapshot.shared, snapshot.per_rank, snapshot.meta,
                            Path("."), "")
    back = phases.state_dict_of(checkpoint)
    assert set(back) >= set(state_dict) - {"phase"}
    for i, tensors in state_dict["kept"].items():
        assert all(torch.equal(t, back["kept"][i][k]) for k, t in tensors.items())
    for key in ("param_cot", "opt_cot"):
        assert all(torch.equal(a, b) for a, b in zip(state_dict["backward"][key], back["backward"][key]))
    assert torch.equal(back["losses"], state_dict["losses"])


def test_phases_use_only_the_state_api():
    source = Path(phases.__file__).read_text()
    assert not re.search(r"run\.(kept|gradients|losses|timings|_\w+)\b", source)
    store = Path(phases.__file__).with_name("state_store.py").read_text()
    assert "phases" not in re.findall(r"from \.(\w+) import", store)


def test_the_resolved_plan_is_logged_when_a_run_starts(attribute, caplog, tmp_path):
    with caplog.at_level(logging.INFO, logger="magic_core.engine"):
        attribute(lambda run, objective: run.run(objective), "auto")
    plans = [r.getMessage() for r in caplog.records if "attribution plan" in r.getMessage()]
    assert len(plans) == 1
    plan = plans[0]
    for part in ("5 steps on 1 rank(s)", "sharding none", "kept states all (asked auto)",
                 "device tier", "host tier", "then disk in"):
        assert part in plan, (part, plan)

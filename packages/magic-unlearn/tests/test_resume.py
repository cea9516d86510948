"""Unlearning and relearning stopped after any step resume to the uninterrupted run, bit for bit."""

import json

import magic_datasets as md
import pytest
import torch
from magic_core import preemption
from magic_core.phase_checkpoint import CheckpointError, CheckpointStore
from magic_core.progress import ProgressFile
from magic_core.run_control import RunControl
from magic_unlearn import EvalSets, OptimConfig, RelearnConfig, prepare_data, run_recipe


class StopAfter(RunControl):
    """Requests a stop after ``(phase, step)``; keeps the weights the last relearning step saw."""

    def __init__(self, run_dir, at=None):
        super().__init__(CheckpointStore(run_dir / "checkpoints", {"job": "test"}), ProgressFile(run_dir))
        self.at, self.weights = at, None

    def after_step(self, phase, step, total, snapshot):
        if (phase, step) == self.at:
            preemption.request_stop("test")
        if (phase, step) == ("relearn", total):
            shared = snapshot().shared
            self.weights = {f"{group}.{k}": v.detach().clone()
                            for group in ("params", "unlearned") for k, v in shared[group].items()}
        super().after_step(phase, step, total, snapshot)


@pytest.fixture
def recipe_run(tiny_model, tokenizer, forget_corpus, retain_corpus, scores_run):
    data = prepare_data(tokenizer, forget_corpus, retain_corpus, scores_run)
    sets = EvalSets(md.load("world-hazard-mcqa").select(range(4)),
                    md.load("world-general-mcqa").select(range(4)),
                    list(forget_corpus["text"]), list(retain_corpus["text"]))
    before = {"forget_accuracy": 0.0}  # not measured: the unlearned models are compared

    def run(control, optimizer="adam", recipe="gradient-difference"):
        optim = OptimConfig(optimizer=optimizer, lr=1e-3, steps=4, seed=3)
        with preemption.handle_signals(), control.progress:
            result = run_recipe(tiny_model, tokenizer, data, sets, recipe, {}, optim,
                                RelearnConfig(steps=3, n_docs=2), before=before, control=control)
        result.pop("seconds")
        result["training"].pop("seconds")
        result["after_relearn"]["training"].pop("seconds")
        return result
    return run


@pytest.mark.parametrize("phase, step, optimizer", [
    ("unlearn", 1, "adam"), ("unlearn", 4, "adamw"), ("relearn", 2, "adam"), ("unlearn", 2, "sgd"),
])
def test_stopped_unlearning_resumes_to_the_same_weights_and_result(recipe_run, tmp_path, phase,
                                                                   step, optimizer):
    uninterrupted = StopAfter(tmp_path / "want")
    want = recipe_run(uninterrupted, optimizer=optimizer)
    with pytest.raises(preemption.Preempted) as stopped:
        recipe_run(StopAfter(tmp_path / "run", (phase, step)), optimizer=optimizer)
    assert (stopped.value.phase, stopped.value.step) == (phase, step)
    header = json.loads((tmp_path / "run" / "checkpoints" / "checkpoint.json").read_text())
    assert header["phase"] == phase and header["step"] == step
    progress = json.loads((tmp_path / "run" / "progress.json").read_text())
    assert progress["status"] == "preempted" and progress["phase"] == phase

    resumed = StopAfter(tmp_path / "run")
    assert recipe_run(resumed, optimizer=optimizer) == want  # every evaluation and loss, exactly
    assert resumed.weights.keys() == uninterrupted.weights.keys()
    for name, value in uninterrupted.weights.items():
        assert torch.equal(resumed.weights[name], value), name
    progress = json.loads((tmp_path / "run" / "progress.json").read_text())
    assert progress["status"] == "done" and progress["phases_done"] == ["unlearn", "evaluate", "relearn"]
    assert [(h["phase"], h["step"], h["total"]) for h in progress["history"]] == [
        ("unlearn", 4, 4), ("evaluate", 0, 0), ("relearn", 3, 3), ("evaluate", 0, 0)]


def test_a_checkpoint_of_another_recipe_config_is_refused(recipe_run, tmp_path):
    with pytest.raises(preemption.Preempted):
        recipe_run(StopAfter(tmp_path, ("unlearn", 2)))
    with pytest.raises(CheckpointError, match=r"different job \(optim differ\)"):
        recipe_run(StopAfter(tmp_path), optimizer="adamw")
    with pytest.raises(CheckpointError, match=r"different job \(parts, recipe differ\)"):
        recipe_run(StopAfter(tmp_path), recipe="gradient-ascent")

"""magic-unlearn declares its own phases to core's progress file, which lists none of them."""

import json

import magic_datasets as md
from magic_core.phase_checkpoint import CheckpointStore
from magic_core.progress import ProgressFile
from magic_core.run_control import RunControl
from magic_unlearn import EvalSets, OptimConfig, RelearnConfig, prepare_data, run_recipe


def test_an_unlearning_run_declares_its_phases(tiny_model, tokenizer, forget_corpus,
                                               retain_corpus, tmp_path):
    data = prepare_data(tokenizer, forget_corpus, retain_corpus)
    sets = EvalSets(md.load("world-hazard-mcqa").select(range(2)),
                    md.load("world-general-mcqa").select(range(2)),
                    list(forget_corpus["text"]), list(retain_corpus["text"]))
    control = RunControl(CheckpointStore(tmp_path / "checkpoints", {"job": "test"}),
                         ProgressFile(tmp_path))
    with control.progress:
        run_recipe(tiny_model, tokenizer, data, sets, "gradient-ascent", {},
                   OptimConfig(optimizer="sgd", lr=1e-3, steps=1), RelearnConfig(steps=1, n_docs=1),
                   before={"forget_accuracy": 0.0}, control=control)
    assert control.progress.phases == ["unlearn", "evaluate", "relearn"]
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["phases_done"] == ["unlearn", "evaluate", "relearn"]

"""A query objective that cannot read its dataset's kind names the objective that can;
the registry's objectives are checked (name, parts, options) before anything loads."""

import pytest
from click.testing import CliRunner
from magic_driver.cli import main

CASES = {
    "lm on multiple choice": (
        ["query.objective=lm", "query.dataset=world-hazard-mcqa"],
        "error: query.dataset 'world-hazard-mcqa' is multiple-choice (question, choices, answer; "
        "no text column); set query.objective: multiple-choice",
    ),
    "multiple choice on a corpus": (
        ["query.objective=multiple-choice", "query.dataset=world-forget-corpus"],
        "error: query.dataset 'world-forget-corpus' is a training-corpus set, not multiple-choice; "
        "set query.objective: lm to score its text, or choose a multiple-choice dataset",
    ),
    "a contrast part": (
        ["query.objective=contrast",
         "query.positive={objective: multiple-choice, dataset: world-hazard-mcqa}",
         "query.negative={objective: lm, dataset: world-general-mcqa}"],
        "error: query.negative.dataset 'world-general-mcqa' is multiple-choice (question, "
        "choices, answer; no text column); set query.negative.objective: multiple-choice",
    ),
    "a text column the dataset lacks": (
        ["query.objective=lm", "query.dataset=world-forget-corpus", "query.text_column=body"],
        "error: query.text_column 'body' is not a column of 'world-forget-corpus' (['id', "
        "'text', 'domain', 'entity', 'facts', 'quizzed'])",
    ),
    "an option the objective does not have": (
        ["query.objective=lm", "query.dataset=world-forget-corpus",
         "query.objective_options={prompt_styl: seed}"],
        "error: query.objective_options: objective 'lm' has no option 'prompt_styl'; it "
        "accepts: none",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_query_of_the_wrong_kind_names_the_objective_to_set(case, tmp_path, monkeypatch):
    # Refused before any model is built: an empty cache stays empty.
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))
    overrides, message = CASES[case]
    args = ["attribute", "--out", str(tmp_path / "run"), "--quiet"]
    for override in overrides:
        args += ["--set", override]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == message
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache" / "world-base").exists()

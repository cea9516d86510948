"""`magic unlearn` end to end with each RMU and NPO recipe, on a tiny saved model."""

import json

import magic_datasets as md
import pytest
import torch
import yaml
from click.testing import CliRunner
from driver_tests import save_world_model
from magic_core.outputs import MANIFEST, SCORES
from magic_datasets.world import World, build_tokenizer
from magic_driver.cli import main
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A two-layer model, a fake per-token scores run of the forget corpus, and a job file."""
    root = tmp_path_factory.mktemp("recipes")
    tokenizer = build_tokenizer(World())
    save_world_model(root / "model", layers=2, hidden=32, max_positions=128)
    forget = md.load("world-forget-corpus", per_entity=1)
    scores = torch.randn(len(forget), 96, generator=torch.Generator().manual_seed(0))
    (root / "scores").mkdir()
    save_file({"per_example": scores.sum(-1), "per_token": scores}, str(root / "scores" / SCORES))
    (root / "scores" / MANIFEST).write_text(json.dumps({
        "fingerprints": {"dataset": md.dataset_fingerprint(forget),
                         "tokenizer": md.tokenizer_fingerprint(tokenizer)},
        "corpus": {"max_seq_len": 96}}))
    cfg = {"model": {"path": str(root / "model")}, "device": "cpu",
           "forget": {"options": {"per_entity": 1}}, "retain": {"options": {"per_entity": 1}},
           "scores": {"forget": str(root / "scores")}, "optim": {"steps": 2, "lr": 1e-3},
           "eval": {"hazard": {"dataset": "world-hazard-mcqa", "limit": 4},
                    "general": {"dataset": "world-general-mcqa", "limit": 4}},
           "relearn": {"steps": 1, "n_docs": 2}}
    (root / "unlearn.yaml").write_text(yaml.safe_dump(cfg))
    return root


@pytest.mark.parametrize("recipe", ["rmu", "rmu-attribution", "npo", "npo-attribution"])
def test_each_recipe_runs_from_the_command_line(job, recipe):
    out = job / recipe
    res = CliRunner().invoke(main, ["unlearn", str(job / "unlearn.yaml"), "--out", str(out),
                                    "--set", f"recipe.name={recipe}", "--quiet"])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "result.json").read_text())
    assert result["recipe"]["name"] == recipe and result["training"]["steps"] == 2
    assert {"before", "after", "after_relearn"} <= set(result)
    assert recipe in (out / "table.md").read_text()
    base = AutoModelForCausalLM.from_pretrained(job / "model")
    unlearned = AutoModelForCausalLM.from_pretrained(out / "model")
    after = dict(unlearned.named_parameters())
    changed = {n for n, p in base.named_parameters() if not torch.equal(p, after[n])}
    if recipe.startswith("rmu"):  # layer 1's and layer 0's MLPs, nothing else
        assert changed and all(".mlp." in n for n in changed)
    else:
        assert any(".attention." in n for n in changed)


def test_a_bad_rmu_option_exits_2_in_one_line(job):
    res = CliRunner().invoke(main, ["unlearn", str(job / "unlearn.yaml"), "--out", str(job / "bad"),
                                    "--set", "recipe.name=rmu",
                                    "--set", "recipe.options.layer=5", "--quiet"])
    assert res.exit_code == 2, res.output
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("error: ") and "layer 5 does not exist" in last
    assert "Traceback" not in res.output and not (job / "bad" / "result.json").exists()

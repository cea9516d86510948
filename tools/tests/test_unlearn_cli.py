"""`magic unlearn` and `magic sweep` on a tiny saved model (no base-model build)."""

import json

import magic_datasets as md
import pytest
import torch
import yaml
from click.testing import CliRunner
from magic_core.outputs import MANIFEST, SCORES
from magic_datasets.world import World, build_tokenizer
from magic_driver.cli import main
from safetensors.torch import save_file
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM


@pytest.fixture
def config(tmp_path):
    tokenizer = build_tokenizer(World())
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, tie_word_embeddings=False))
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    forget = md.load("world-forget-corpus", per_entity=1)
    scores = torch.randn(len(forget), 64, generator=torch.Generator().manual_seed(0))
    run = tmp_path / "scores"
    run.mkdir()
    save_file({"per_example": scores.sum(-1), "per_token": scores}, str(run / SCORES))
    (run / MANIFEST).write_text(json.dumps({
        "fingerprints": {"dataset": md.dataset_fingerprint(forget),
                         "tokenizer": md.tokenizer_fingerprint(tokenizer)},
        "corpus": {"max_seq_len": 96}}))
    cfg = {"model": {"path": str(tmp_path / "model")}, "device": "cpu",
           "forget": {"options": {"per_entity": 1}}, "retain": {"options": {"per_entity": 1}},
           "scores": {"forget": str(run)}, "optim": {"steps": 2},
           "eval": {"hazard": {"dataset": "world-hazard-mcqa", "limit": 4},
                    "general": {"dataset": "world-general-mcqa", "limit": 4}},
           "relearn": {"steps": 1, "n_docs": 2}, "output": {"dir": str(tmp_path / "out")}}
    path = tmp_path / "unlearn.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_unlearn_writes_result_table_and_model(config, tmp_path):
    res = CliRunner().invoke(main, ["unlearn", str(config), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "it/s" not in res.output and "Loading weights" not in res.output  # transformers' bars too
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert {"before", "after", "after_relearn"} <= set(result)
    assert (tmp_path / "out" / "model" / "config.json").is_file()
    assert "attribution-weighted" in (tmp_path / "out" / "table.md").read_text()


@pytest.mark.slow
def test_sweep_is_one_command_and_one_table(config, tmp_path):
    res = CliRunner().invoke(main, ["sweep", str(config), "--param", "lr=1e-4,1e-3",
                                    "--set", "output.save_model=false", "--quiet"])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "out" / "table.json").read_text())["rows"]
    assert [r["params"]["lr"] for r in rows] == [1e-4, 1e-3]


def test_scores_of_another_corpus_exit_2_with_one_line(config):
    res = CliRunner().invoke(main, ["unlearn", str(config), "--set", "forget.options.seed=5",
                                    "--quiet"])
    assert res.exit_code == 2
    last = res.output.strip().splitlines()[-1]  # above it: transformers' own load bar
    assert last.startswith("error: ") and "another corpus" in last and "Traceback" not in res.output


def test_bad_sweep_param_is_a_user_error(config):
    res = CliRunner().invoke(main, ["sweep", str(config), "--param", "lr"])
    assert res.exit_code == 2 and "expected KEY=V1,V2" in res.output


def test_sweep_aliases_reach_recipe_options():
    from magic_driver.sweep import grid, parse_param

    assert parse_param("retain_kl=0,10") == ("recipe.options.retain_kl", ["0", "10"])
    assert parse_param("beta=0.05,0.1") == ("recipe.options.beta", ["0.05", "0.1"])
    assert parse_param("steering_coeff=50")[0] == "recipe.options.steering_coeff"
    assert grid(("lr=1e-4", "clip=1.0,3.0")) == [
        ("optim.lr=1e-4", "recipe.options.clip=1.0"), ("optim.lr=1e-4", "recipe.options.clip=3.0")]

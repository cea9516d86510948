"""docs/adding-an-objective.md works as written: its plugin module, entry point and job.

The page's module is installed through a `.dist-info` folder (no pip), seen in
this process through `sys.path` and by `magic` subprocesses through `PYTHONPATH`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import magic_datasets as md
import pytest
import torch
import torch.nn.functional as F
import yaml
from magic_core import ConfigError, from_mapping, objective_registry
from magic_driver.jobs import AttributeJob
from magic_driver.run_attribute import build_objective, load_query_rows

PAGE = Path(__file__).resolve().parents[2] / "docs" / "adding-an-objective.md"


def _block(language: str) -> str:
    [block, *_] = re.findall(rf"^```{language}\n(.*?)^```", PAGE.read_text(), re.S | re.M)
    return block


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    (site / "opening_objective.py").write_text(_block("python"))
    info = site / "opening_objective-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: opening-objective\nVersion: 0.1.0\n")
    # pip writes the pyproject table as entry_points.txt, values unquoted
    header, *points = _block("toml").strip().splitlines()
    assert header == '[project.entry-points."magic.objectives"]'
    (info / "entry_points.txt").write_text(
        "[magic.objectives]\n" + "".join(p.replace('"', "") + "\n" for p in points))
    return site


@pytest.fixture
def installed(site, monkeypatch):
    """The process-wide objective registry, rebuilt with the page's plugin visible."""
    monkeypatch.syspath_prepend(str(site))
    objective_registry.default_registry.cache_clear()
    yield
    sys.modules.pop("opening_objective", None)
    objective_registry.default_registry.cache_clear()


def _job(**query) -> AttributeJob:
    mapping = yaml.safe_load(_block("yaml"))
    mapping["query"].update(query)
    return from_mapping(AttributeJob, mapping)


def test_the_plugin_is_registered_under_its_package(installed):
    spec = objective_registry.get_objective("lm-opening")
    assert spec.package == "opening-objective" and spec.options["n_tokens"] == 16
    assert "lm-opening" in [s.name for s in objective_registry.list_objectives()]
    assert _job().query.objective_options == {"n_tokens": 8}


@pytest.mark.parametrize(("query", "message"), [
    ({"objective": "lm-openin"}, "query.objective: expected one of 'contrast', 'lm', "
                                 "'lm-opening', 'multiple-choice', got 'lm-openin' "
                                 "(did you mean 'lm-opening'?)"),
    ({"objective_options": {"n_token": 8}}, "query.objective_options: objective 'lm-opening' "
                                            "has no option 'n_token' (did you mean 'n_tokens'?); "
                                            "it accepts: n_tokens"),
    ({"objective_options": {"text_column": "body"}}, "query.objective_options.text_column: "
                                                     "text_column is a query key; write "
                                                     "query.text_column instead"),
])
def test_a_job_that_misuses_it_is_refused_as_it_is_read(installed, query, message):
    with pytest.raises(ConfigError) as err:
        _job(**query)
    assert str(err.value) == message


def test_a_dataset_of_a_kind_it_cannot_read_is_refused(installed):
    with pytest.raises(ConfigError) as err:
        load_query_rows(_job(dataset="world-hazard-mcqa").query)
    assert str(err.value) == (
        "query.dataset 'world-hazard-mcqa' is multiple-choice (question, choices, answer; no "
        "text column); set query.objective: multiple-choice")


def test_it_scores_the_opening_tokens_of_each_text(installed, make_world_model):
    model, tokenizer = make_world_model()
    query = _job().query
    rows = load_query_rows(query)
    objective = build_objective(query, rows, tokenizer, max_len=64)
    assert objective.summary()["rows"] == 8
    with torch.no_grad():
        total, count = 0.0, 0
        for text in rows["text"]:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"][:8]
            logp = F.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, :-1].double(), -1)
            total -= float(logp.gather(-1, torch.tensor(ids[1:])[:, None]).sum())
            count += len(ids) - 1
        assert float(objective.loss(model)) == pytest.approx(total / count, rel=1e-6)


@pytest.fixture
def make_world_model():
    def make():
        from magic_datasets.world import World, build_tokenizer
        from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

        tokenizer = build_tokenizer(World())
        torch.manual_seed(0)
        model = GPTNeoXForCausalLM(GPTNeoXConfig(
            vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=32, max_position_embeddings=64,
            attn_implementation="eager", eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.eos_token_id))
        return model.eval(), tokenizer

    return make


@pytest.mark.slow
def test_magic_attribute_runs_the_pages_job(site, make_world_model, tmp_path):
    model, tokenizer = make_world_model()
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    job = yaml.safe_load(_block("yaml"))
    job.update(model={"path": str(tmp_path / "model")}, device="cpu",
               data={"dataset": "world-attribution", "options": {"n_docs": 4, "k_planted": 1}},
               train={"optimizer": "sgd", "lr": 0.1, "batch_size": 2, "max_seq_len": 16})
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    env = {**os.environ, "PYTHONPATH": str(site), "MAGIC_CACHE": str(tmp_path / "cache")}
    run = subprocess.run([str(Path(sys.executable).with_name("magic")), "attribute",
                          str(tmp_path / "job.yaml"), "--out", str(tmp_path / "run"), "--quiet"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["query"]["description"].startswith(
        "world-forget-corpus (first 8 tokens): mean token cross-entropy over 8 token rows")
    assert len(md.load("world-forget-corpus")) >= 8

"""Bad values in job files and overrides: every one refused at load time (or, for what
depends on the data or the model, before a model is built) in one line with exit code 2.

One table, one test. The ``was`` column says what the case did before these checks
existed: ``fixed`` cases crashed with a traceback, trained on nonsense, named the wrong
thing or not the key; ``guard`` cases were already refused as they should be and must stay so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import magic_datasets as md
import pytest
import torch
import yaml
from click.testing import CliRunner
from magic_core.outputs import MANIFEST, SCORES
from magic_datasets.world import World, build_tokenizer
from magic_driver import world_base
from magic_driver.cli import main
from safetensors.torch import save_file

BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00\x01"
ATTRIBUTION_JOB = {"data": {"n_docs": 8}, "train": {"lr": 1e-3}, "query": {"limit": 4}}
UNLEARN_JOB = {"recipe": {"name": "gradient-ascent"}, "optim": {"steps": 2}}


def _with(base: dict, **sections) -> dict:
    """``base`` with ``sections`` merged one level deep."""
    out = json.loads(json.dumps(base))
    for name, value in sections.items():
        out[name] = {**out.get(name, {}), **value} if isinstance(value, dict) else value
    return out


def A(**sections):  # an attribution job file
    return _with(ATTRIBUTION_JOB, **sections)


def U(**sections):  # an unlearning job file
    return _with(UNLEARN_JOB, **sections)


# (id, command, job file (mapping, raw bytes, or None), extra arguments, expected texts, was)
CASES = [
    # numbers that parse but make no sense: attribution
    ("attr-lr-nan", "attribute", A(train={"lr": float("nan")}), [], ["train.lr", "nan", "> 0"], "fixed"),
    ("attr-lr-inf", "attribute", A(train={"lr": float("inf")}), [], ["train.lr", "inf", "finite"], "fixed"),
    ("attr-lr-nan-string", "attribute", A(train={"lr": "nan"}), [], ["train.lr", "nan"], "fixed"),
    ("attr-renamed-checkpoints-key", "attribute", A(attribution={"checkpoints": "sqrt"}), [],
     ["attribution.checkpoints", "renamed", "attribution.kept_states"], "fixed"),
    ("attr-removed-eps-root-key", "attribute", A(train={"eps_root": 1e-30}), [],
     ["train.eps_root", "removed", "torch.optim", "delete it"], "fixed"),
    ("attr-lr-negative", "attribute", A(train={"lr": -1e-3}), [], ["train.lr", "> 0"], "guard"),
    ("attr-lr-zero", "attribute", A(train={"lr": 0}), [], ["train.lr", "> 0"], "guard"),
    ("attr-lr-set-inf", "attribute", A(), ["--set", "train.lr=.inf"], ["train.lr", "inf"], "fixed"),
    ("attr-eps-zero", "attribute", A(train={"eps": 0}), [], ["train.eps", "> 0"], "fixed"),
    ("attr-betas-above-1", "attribute", A(train={"betas": [0.9, 1.5]}), [],
     ["train.betas[1]", "1.5", "< 1"], "fixed"),
    ("attr-weight-decay-negative", "attribute", A(train={"weight_decay": -0.1}), [],
     ["train.weight_decay", ">= 0"], "fixed"),
    ("attr-grad-norm-zero", "attribute", A(train={"max_grad_norm": 0}), [],
     ["train.max_grad_norm", "> 0"], "fixed"),
    ("attr-momentum-nan", "attribute", A(train={"optimizer": "sgd", "momentum": float("nan")}), [],
     ["train.momentum", "nan"], "fixed"),
    ("attr-warmup-negative", "attribute", A(train={"warmup_steps": -1}), [],
     ["train.warmup_steps", ">= 0"], "guard"),
    ("attr-batch-size-zero", "attribute", A(train={"batch_size": 0}), [],
     ["train.batch_size", ">= 1"], "guard"),
    ("attr-seq-len-zero", "attribute", A(train={"max_seq_len": 0}), [],
     ["train.max_seq_len", ">= 1"], "guard"),
    ("attr-n-docs-zero", "attribute", A(data={"n_docs": 0}), [], ["data.n_docs", ">= 1", "0"], "fixed"),
    ("attr-n-docs-negative", "attribute", A(data={"n_docs": -3}), [], ["data.n_docs", "-3"], "fixed"),
    ("attr-data-is-mc", "attribute", A(data={"dataset": "world-hazard-mcqa"}), [],
     ["data.dataset 'world-hazard-mcqa'", "multiple-choice"], "fixed"),
    ("attr-n-docs-beyond", "attribute", A(data={"n_docs": 500}), [],
     ["data.n_docs=500", "only 64 rows"], "guard"),
    ("attr-query-limit-zero", "attribute", A(query={"limit": 0}), [], ["query.limit", ">= 1"], "fixed"),
    ("attr-contrast-weight-nan", "attribute",
     A(query={"objective": "contrast", "weight": float("nan"),
              "positive": {"dataset": "world-hazard-mcqa"},
              "negative": {"dataset": "world-general-mcqa"}}), [],
     ["query.weight", "nan"], "fixed"),
    # devices
    ("attr-device-banana", "attribute", A(device="banana"), [], ["device", "'banana'", "cpu"], "fixed"),
    ("attr-device-bad-index", "attribute", A(device="cuda:x"), [], ["device", "'cuda:x'"], "guard"),
    ("attr-device-mps-absent", "attribute", A(device="mps"), [], ["device 'mps'", "cpu"], "fixed"),
    ("attr-device-set-banana", "attribute", A(), ["--set", "device=banana"], ["device", "'banana'"], "fixed"),
    # what the model supports
    ("attr-seq-len-beyond-model", "attribute", A(train={"max_seq_len": 4096}), [],
     ["train.max_seq_len=4096", "128"], "fixed"),
    # the file system and the command line
    ("attr-binary-job-file", "attribute", BINARY, [], ["not a text file"], "fixed"),
    ("attr-set-unparsable", "attribute", A(), ["--set", "train.lr=[1e-4"],
     ["--set", "train.lr", "not valid YAML"], "fixed"),
    ("attr-set-tab", "attribute", A(), ["--set", "train.lr=\t1e-4"],
     ["--set", "train.lr", "not valid YAML"], "fixed"),
    ("attr-set-no-equals", "attribute", A(), ["--set", "train.lr"], ["expected KEY=VALUE"], "guard"),
    ("attr-yaml-broken", "attribute", b"train: [\n", [], ["not valid YAML"], "guard"),
    # messages that name the right thing
    ("attr-given-unlearn-job", "attribute", U(), [], ["this is an unlearn job", "`magic unlearn`"],
     "fixed"),
    ("attr-given-unlearn-kind", "attribute", {"kind": "unlearn"}, [],
     ["this is an unlearn job", "`magic unlearn`"], "guard"),
    ("attr-mc-query-on-corpus", "attribute",
     A(query={"dataset": "world-attribution", "options": {"subset": "bio"}}), [],
     ["query.dataset 'world-attribution'", "not multiple-choice"], "guard"),
    ("attr-contrast-part-on-corpus", "attribute",
     A(query={"objective": "contrast", "positive": {"dataset": "world-hazard-mcqa"},
              "negative": {"dataset": "world-retain-corpus"}}), [],
     ["query.negative.dataset", "not multiple-choice"], "guard"),
    # unlearning: numbers
    ("unl-lr-nan", "unlearn", U(optim={"lr": float("nan")}), [], ["optim.lr", "nan"], "fixed"),
    ("unl-lr-set-inf", "unlearn", U(), ["--set", "optim.lr=.inf"], ["optim.lr", "inf"], "fixed"),
    ("unl-lr-negative", "unlearn", U(optim={"lr": -1}), [], ["optim.lr", "> 0"], "fixed"),
    ("unl-steps-zero", "unlearn", U(optim={"steps": 0}), [], ["optim.steps", ">= 1"], "fixed"),
    ("unl-steps-negative", "unlearn", U(optim={"steps": -1}), [], ["optim.steps"], "fixed"),
    ("unl-batch-size-zero", "unlearn", U(optim={"batch_size": 0}), [], ["optim.batch_size"], "fixed"),
    ("unl-grad-norm-negative", "unlearn", U(optim={"max_grad_norm": -1}), [],
     ["optim.max_grad_norm", "> 0"], "fixed"),
    ("unl-weight-decay-nan", "unlearn", U(optim={"weight_decay": float("nan")}), [],
     ["optim.weight_decay", "nan"], "fixed"),
    ("unl-relearn-lr-inf", "unlearn", U(relearn={"lr": float("inf")}), [], ["relearn.lr", "inf"], "fixed"),
    ("unl-relearn-steps-zero", "unlearn", U(relearn={"steps": 0}), [],
     ["relearn.steps", ">= 1", "enabled: false"], "fixed"),
    ("unl-relearn-n-docs-zero", "unlearn", U(relearn={"n_docs": 0}), [], ["relearn.n_docs", ">= 1"], "fixed"),
    ("unl-relearn-n-docs-beyond", "unlearn", U(relearn={"n_docs": 500}), [],
     ["relearn.n_docs=500", "32"], "fixed"),
    ("unl-forget-n-docs-zero", "unlearn", U(forget={"n_docs": 0}), [], ["forget.n_docs", ">= 1"], "fixed"),
    ("unl-retain-n-docs-negative", "unlearn", U(retain={"n_docs": -3}), [], ["retain.n_docs", "-3"], "fixed"),
    ("unl-forget-n-docs-beyond", "unlearn", U(forget={"n_docs": 500}), [], ["forget.n_docs=500"], "guard"),
    ("unl-eval-limit-zero", "unlearn", U(eval={"hazard": {"dataset": "world-hazard-mcqa", "limit": 0}}),
     [], ["eval.hazard.limit", ">= 1"], "fixed"),
    ("unl-max-seq-len-beyond-model", "unlearn", U(max_seq_len=4096), [], ["max_seq_len=4096", "128"], "fixed"),
    ("unl-max-seq-len-zero", "unlearn", U(max_seq_len=0), [], ["max_seq_len", ">= 1"], "fixed"),
    ("unl-device-banana", "unlearn", U(device="banana"), [], ["device", "'banana'"], "fixed"),
    ("unl-recipe-option-negative", "unlearn",
     U(recipe={"name": "gradient-difference", "options": {"retain_weight": -1}}), [],
     ["recipe.options.retain_weight", ">= 0"], "fixed"),
    ("unl-recipe-option-nan", "unlearn",
     U(recipe={"name": "gradient-ascent", "options": {"retain_kl": float("nan")}}), [],
     ["recipe.options.retain_kl", "nan"], "fixed"),
    ("unl-recipe-option-unknown", "unlearn",
     U(recipe={"name": "gradient-ascent", "options": {"clip": 3}}), [],
     ["has no option 'clip'"], "fixed"),
    ("unl-eval-set-not-mc", "unlearn",
     U(eval={"hazard": {"dataset": "world-forget-corpus", "options": {"per_entity": 1}}}), [],
     ["eval.hazard.dataset 'world-forget-corpus'", "not multiple-choice"], "fixed"),
    ("unl-forget-is-mc", "unlearn", U(forget={"dataset": "world-hazard-mcqa"}), [],
     ["forget.dataset 'world-hazard-mcqa'", "multiple-choice"], "fixed"),
    ("unl-binary-job-file", "unlearn", BINARY, [], ["not a text file"], "fixed"),
    ("unl-set-tab", "unlearn", U(), ["--set", "optim.lr=\t1e-4"], ["optim.lr", "not valid YAML"], "fixed"),
    ("unl-given-attribution-job", "unlearn", A(), [], ["this is an attribute job", "`magic attribute`"],
     "fixed"),
    ("unl-given-attribute-kind", "unlearn", {"kind": "attribute"}, [],
     ["this is an attribute job", "`magic attribute`"], "guard"),
    # sweeps validate every point first
    ("sweep-param-nan", "sweep", U(), ["--param", "lr=1e-4,.nan"], ["optim.lr", "nan"], "fixed"),
    ("sweep-param-steps-zero", "sweep", U(), ["--param", "steps=0,2"], ["optim.steps", ">= 1"], "fixed"),
    ("sweep-given-attribution-job", "sweep", A(), ["--param", "lr=1e-4"],
     ["this is an attribute job", "`magic attribute`"], "fixed"),
    ("sweep-device-banana", "sweep", U(device="banana"), ["--param", "lr=1e-4"],
     ["device", "'banana'"], "fixed"),
]


def _write_job(tmp_path, job) -> str:
    path = tmp_path / "job.yaml"
    if isinstance(job, bytes):
        path.write_bytes(job)
    else:
        path.write_text(yaml.safe_dump(job))
    return str(path)


@pytest.fixture
def no_model_build(tmp_path, monkeypatch):
    """Refusals come before any model is built: reaching the base-model build fails the case."""
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))

    def build(*args, **kwargs):
        raise RuntimeError("a bad value reached the base-model build")

    monkeypatch.setattr(world_base, "world_base_model", build)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_bad_value_is_refused_in_one_line_before_any_work(case, tmp_path, refusal, no_model_build):
    name, command, job, extra, expected, _was = case
    if name == "attr-device-mps-absent" and torch.backends.mps.is_available():
        pytest.skip("MPS is there on this machine")
    out = tmp_path / "out"
    config = _write_job(tmp_path, job)
    r = refusal(out, tmp_path / "cache")
    result = CliRunner().invoke(main, [command, config, "--out", str(out), "--quiet", *extra])
    r.check(result.exit_code, result.stderr, *expected)
    assert not out.exists()


def _scores_run(tmp_path, corpus: dict) -> str:
    """A scores run of another corpus than the job's (``corpus``: its recorded data section)."""
    tokenizer = build_tokenizer(World())
    other = md.load(corpus["dataset"], **corpus.get("options", {}))
    if corpus.get("n_docs"):
        other = other.select(range(corpus["n_docs"]))
    run = tmp_path / "scores"
    run.mkdir()
    scores = torch.zeros(len(other), 64)
    save_file({"per_example": scores.sum(-1), "per_token": scores}, str(run / SCORES))
    (run / MANIFEST).write_text(json.dumps({
        "fingerprints": {"dataset": md.dataset_fingerprint(other),
                         "tokenizer": md.tokenizer_fingerprint(tokenizer)},
        "corpus": {"max_seq_len": 64},
        "config": {"model": {"path": "builtin:world-base", "tokenizer": None}, "data": corpus}}))
    return str(run)


@pytest.mark.parametrize("recorded, expected", [
    ({"dataset": "world-attribution", "options": {}, "n_docs": None}, ["forget.dataset",
                                                                       "'world-attribution'"]),
    ({"dataset": "world-forget-corpus", "options": {"per_entity": 1}, "n_docs": None},
     ["forget.options", "per_entity"]),
    ({"dataset": "world-forget-corpus", "options": {}, "n_docs": 8}, ["forget.n_docs", "8"]),
], ids=["dataset", "options", "n_docs"])
def test_scores_of_another_corpus_name_the_options_that_differ(recorded, expected, tmp_path,
                                                               refusal, no_model_build):
    job = U(recipe={"name": "attribution-weighted"}, scores={"forget": _scores_run(tmp_path, recorded)})
    out = tmp_path / "out"
    r = refusal(out, tmp_path / "scores")
    result = CliRunner().invoke(main, ["unlearn", _write_job(tmp_path, job), "--out", str(out)])
    r.check(result.exit_code, result.stderr, "computed on another corpus", *expected)


@pytest.mark.parametrize("command, job, extra, expected", [
    ("attribute", BINARY, [], "not a text file"),
    ("attribute", A(), ["--set", "train.lr=\t1e-4"], "not valid YAML"),
    ("attribute", A(device="banana"), [], "'banana'"),
    ("unlearn", A(), [], "`magic attribute`"),
], ids=["binary", "set-tab", "device", "job-kind"])
def test_a_real_process_refuses_without_a_traceback(command, job, extra, expected, tmp_path, refusal):
    out = tmp_path / "out"
    r = refusal(out)
    proc = subprocess.run(
        [sys.executable, "-m", "magic_driver.cli", command, _write_job(tmp_path, job), "--out",
         str(out), *extra],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "MAGIC_CACHE": str(tmp_path / "cache")},
    )
    r.check(proc.returncode, proc.stderr, expected)


def test_the_sections_that_tell_job_kinds_apart_are_the_job_files_own():
    from dataclasses import fields

    from magic_driver.job_sections import KIND_SECTIONS
    from magic_driver.jobs import AttributeJob
    from magic_driver.unlearn_jobs import UnlearnJob

    attribute, unlearn = ({f.name for f in fields(job)} for job in (AttributeJob, UnlearnJob))
    assert set(KIND_SECTIONS["attribute"]) == attribute - unlearn
    assert set(KIND_SECTIONS["unlearn"]) == unlearn - attribute


def test_demo_refuses_a_device_that_is_no_device(tmp_path, refusal, monkeypatch):
    # Not no_model_build: the demo module must not be first imported under its patch.
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    r = refusal(out, tmp_path / "cache")
    result = CliRunner().invoke(main, ["demo", "--device", "banana", "--out", str(out), "--quiet"])
    r.check(result.exit_code, result.stderr, "--device", "'banana'")
    assert not out.exists()

"""Bad files and directories, as a user meets them through the CLI: every one refused in one
line with exit code 2, nothing written, nothing finished lost.

Broken files of a finished attribution run (for `magic report`, `magic status` and the
scores of `magic unlearn`), output directories that cannot be written, click's own usage
errors, and reruns into a finished run directory. One real finished run is built per
module and copied per case before it is broken. The ``was`` column says what the case did
before these checks: ``fixed`` cases printed a traceback, exited 0 or wrote something;
``guard`` cases were refused as they should be and must stay so.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from click.testing import CliRunner
from magic_core.atomic import recover_dir
from magic_core.run_reader import read_run
from magic_datasets.world import World, build_tokenizer
from magic_driver.cli import main
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="magic")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A real finished attribution run on the forget corpus (per-token scores, so that
    `magic unlearn` can use it), its job file and the tiny model it trained."""
    root = tmp_path_factory.mktemp("finished")
    tokenizer = build_tokenizer(World())
    torch.manual_seed(0)
    GPTNeoXForCausalLM(GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, tie_word_embeddings=False,
        attention_dropout=0.0, hidden_dropout=0.0)).save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    job = {"model": {"path": str(root / "model")}, "device": "cpu",
           "data": {"dataset": "world-forget-corpus", "options": {"per_entity": 1}},
           "query": {"dataset": "world-hazard-mcqa", "limit": 4},
           "train": {"lr": 1e-2, "batch_size": 4, "epochs": 1, "precision": "fp64",
                     "max_seq_len": 32},
           "attribution": {"kept_states": "sqrt", "granularity": "per-token"}}
    (root / "job.yaml").write_text(yaml.safe_dump(job))
    res = _invoke("attribute", root / "job.yaml", "--out", root / "run", "--quiet")
    assert res.exit_code == 0, res.output
    return root


def _copy(finished: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished / "run", tmp_path / "run"))


def _unlearn_job(finished: Path, tmp_path: Path, scores: Path, **changes) -> Path:
    cfg = {"model": {"path": str(finished / "model")}, "device": "cpu",
           "forget": {"options": {"per_entity": 1}}, "retain": {"options": {"per_entity": 1}},
           "scores": {"forget": str(scores)}, "optim": {"steps": 2},
           "eval": {"hazard": {"dataset": "world-hazard-mcqa", "limit": 4},
                    "general": {"dataset": "world-general-mcqa", "limit": 4}},
           "relearn": {"steps": 1, "n_docs": 2}, "output": {"save_model": False}, **changes}
    path = tmp_path / "unlearn.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


# -- ways to break a finished run -------------------------------------------------------
def truncate(name):
    def apply(run):
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: len(data) // 2])
    return apply


def delete(name):
    return lambda run: (run / name).unlink()


def manifest_text(text):
    return lambda run: (run / "manifest.json").write_text(text)


def edit_manifest(change):
    def apply(run):
        manifest = json.loads((run / "manifest.json").read_text())
        change(manifest)
        (run / "manifest.json").write_text(json.dumps(manifest))
    return apply


def flip_last_score(run):
    """One score changed in place: same size, same header, a readable file."""
    data = bytearray((run / "scores.safetensors").read_bytes())
    data[-2] ^= 0x10
    (run / "scores.safetensors").write_bytes(bytes(data))


def drop_a_document(run):
    table = pq.read_table(run / "documents.parquet")
    pq.write_table(table.slice(0, table.num_rows - 1), run / "documents.parquet")


def _set(dotted, value):
    def change(manifest):
        *parents, last = dotted.split(".")
        target = manifest
        for part in parents:
            target = target[part]
        target[last] = value
    return change


def _remove(dotted):
    def change(manifest):
        *parents, last = dotted.split(".")
        target = manifest
        for part in parents:
            target = target[part]
        del target[last]
    return change


# (id, command, breaker, expected texts, was)
BROKEN = [
    ("report-scores-truncated", "report", truncate("scores.safetensors"),
     ["scores.safetensors is unreadable", "--restart"], "fixed"),
    ("report-scores-deleted", "report", delete("scores.safetensors"),
     ["lacks scores.safetensors", "--restart"], "guard"),
    ("report-documents-deleted", "report", delete("documents.parquet"),
     ["lacks documents.parquet"], "guard"),
    ("report-documents-truncated", "report", truncate("documents.parquet"),
     ["documents.parquet is unreadable"], "fixed"),
    ("report-documents-row-dropped", "report", drop_a_document,
     ["documents.parquet has", "rows but scores.safetensors scores"], "fixed"),
    ("report-manifest-not-json", "report", manifest_text("{not json"),
     ["manifest.json is not readable JSON", "--restart"], "guard"),
    ("report-manifest-a-list", "report", manifest_text("[1, 2]"),
     ["manifest.json is not a JSON object"], "fixed"),
    ("report-manifest-empty", "report", manifest_text(""),
     ["manifest.json is not readable JSON"], "guard"),
    ("report-shapes-edited", "report", edit_manifest(_set("shapes.per_example", [999])),
     ["records [999]"], "fixed"),
    ("report-documents-count-edited", "report", edit_manifest(_set("corpus.documents", 999)),
     ["records 999 documents"], "fixed"),
    ("report-count-of-wrong-type", "report", edit_manifest(_set("corpus.documents", "many")),
     ["corpus.documents", "not of type int"], "fixed"),
    ("report-dtype-edited", "report", edit_manifest(_set("scores_dtype", "float16")),
     ["records float16"], "fixed"),
    ("report-format-unknown", "report", edit_manifest(_set("format", 7)),
     ["format 7"], "fixed"),
    ("report-score-edited", "report", flip_last_score,
     ["scores.safetensors was changed", "sha256"], "fixed"),
    ("report-max-seq-len-edited", "report", edit_manifest(_set("corpus.max_seq_len", 4)),
     ["max_seq_len 4"], "fixed"),
    ("status-manifest-not-json", "status", manifest_text("{not json"),
     ["manifest.json is not readable JSON"], "guard"),
    ("status-manifest-a-list", "status", manifest_text("[]"),
     ["not a JSON object"], "guard"),
    ("status-steps-of-wrong-type", "status", edit_manifest(_set("training.steps", "x")),
     ["training.steps", "not of type int"], "fixed"),
    ("status-timings-of-wrong-type", "status", edit_manifest(_set("timings", [1])),
     ["timings", "not of type dict"], "fixed"),
    ("unlearn-scores-truncated", "unlearn", truncate("scores.safetensors"),
     ["scores run directory", "is unreadable", "--restart"], "fixed"),
    ("unlearn-scores-deleted", "unlearn", delete("scores.safetensors"),
     ["lacks scores.safetensors"], "fixed"),
    ("unlearn-manifest-not-json", "unlearn", manifest_text("{oops"),
     ["scores.forget", "not readable JSON"], "fixed"),
    ("unlearn-manifest-a-list", "unlearn", manifest_text("[]"),
     ["not a JSON object"], "fixed"),
    ("unlearn-max-seq-len-removed", "unlearn", edit_manifest(_remove("corpus.max_seq_len")),
     ["lacks the key 'corpus.max_seq_len'"], "fixed"),
    ("unlearn-fingerprints-removed", "unlearn", edit_manifest(_remove("fingerprints")),
     ["lacks the key 'fingerprints.dataset'"], "guard"),
    ("unlearn-max-seq-len-of-wrong-type", "unlearn",
     edit_manifest(_set("corpus.max_seq_len", "32")), ["corpus.max_seq_len", "not of type int"], "fixed"),
    ("unlearn-score-edited", "unlearn", flip_last_score,
     ["scores.safetensors was changed"], "fixed"),
    ("unlearn-shapes-edited", "unlearn", edit_manifest(_set("shapes.per_token", [3, 3])),
     ["records [3, 3]"], "fixed"),
]


@pytest.mark.parametrize("case", BROKEN, ids=[c[0] for c in BROKEN])
def test_a_broken_run_is_refused_in_one_line(case, finished, tmp_path, refusal):
    _name, command, breaker, expected, _was = case
    run = _copy(finished, tmp_path)
    breaker(run)
    if command == "unlearn":
        out = tmp_path / "out"
        r = refusal(run, out)
        result = _invoke("unlearn", _unlearn_job(finished, tmp_path, run), "--out", out, "--quiet")
    else:
        r = refusal(run)
        result = _invoke(command, run, *(["--no-slurm"] if command == "status" else []))
    r.check(result.exit_code, result.stderr, *expected)


def test_the_unbroken_run_reads_back_whole(finished):
    run = read_run(finished / "run")
    assert run.per_token.shape[0] == run.manifest["corpus"]["documents"]
    assert set(run.manifest["digests"]) == {"scores.safetensors", "documents.parquet",
                                               "training_order.parquet"}


# -- directories that cannot be written ---------------------------------------------------
def _immutable(path: Path, on: bool) -> None:
    """Read-only even for root (the tests run as root, whom permission bits do not stop)."""
    done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True,
                          text=True)
    if on and done.returncode != 0:
        pytest.skip(f"chattr +i does not work here ({done.stderr.strip()}): no way to make a "
                    "directory read-only for root")


@pytest.fixture
def read_only():
    """``read_only(path)`` makes a directory unwritable until the test ends."""
    frozen = []

    def freeze(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        _immutable(path, True)
        frozen.append(path)
        return path

    yield freeze
    for path in frozen:
        _immutable(path, False)


# (id, command, layout: "out" (--out itself read-only), "parent" (its parent), "file"
# (a parent that is a file), "run" (report into a read-only run); expected texts, was)
UNWRITABLE = [
    ("attribute-out-read-only", "attribute", "out", ["--out", "cannot write in"], "fixed"),
    ("attribute-parent-read-only", "attribute", "parent", ["--out", "cannot write in"], "fixed"),
    ("attribute-parent-is-a-file", "attribute", "file", ["is a file, not a directory"], "fixed"),
    ("unlearn-out-read-only", "unlearn", "out", ["--out", "cannot write in"], "fixed"),
    ("unlearn-parent-read-only", "unlearn", "parent", ["--out", "cannot write in"], "fixed"),
    ("unlearn-parent-is-a-file", "unlearn", "file", ["is a file, not a directory"], "fixed"),
    ("report-run-read-only", "report", "run", ["Operation not permitted", "make it writable"],
     "fixed"),
]


@pytest.mark.parametrize("case", UNWRITABLE, ids=[c[0] for c in UNWRITABLE])
def test_an_unwritable_output_directory_is_refused_before_any_work(case, finished, tmp_path,
                                                                   refusal, read_only):
    _name, command, layout, expected, _was = case
    run = _copy(finished, tmp_path)
    if layout == "out":
        out = read_only(tmp_path / "out")
    elif layout == "parent":
        out = read_only(tmp_path / "locked") / "out"
    elif layout == "file":
        (tmp_path / "a-file").write_text("")
        out = tmp_path / "a-file" / "out"
    if command == "report":
        read_only(run)
        r = refusal(run)
        result = _invoke("report", run)
    else:
        config = (finished / "job.yaml" if command == "attribute"
                  else _unlearn_job(finished, tmp_path, run))
        r = refusal(tmp_path)
        result = _invoke(command, config, "--out", out, "--quiet")
    r.check(result.exit_code, result.stderr, *expected)


# -- click's own refusals, in the same one-line form -------------------------------------
USAGE = [
    ("config-is-a-directory", lambda tmp: ["attribute", tmp], ["is a directory",
                                                             "magic attribute --help"]),
    ("unknown-command", lambda tmp: ["atribute"], ["No such command", "magic --help"]),
    ("unknown-option", lambda tmp: ["unlearn", "--qiet"], ["No such option", "--quiet"]),
    ("missing-argument", lambda tmp: ["report"], ["Missing argument", "magic report --help"]),
    ("out-is-a-file", lambda tmp: ["attribute", "--out", tmp / "f"], ["is a file"]),
    ("nested-group-unknown", lambda tmp: ["datasets", "lst"], ["No such command",
                                                               "magic datasets --help"]),
]


@pytest.mark.parametrize("case", USAGE, ids=[c[0] for c in USAGE])
def test_a_usage_error_is_one_line(case, tmp_path, refusal):
    _name, args, expected = case
    (tmp_path / "f").write_text("")
    r = refusal(tmp_path)
    result = _invoke(*args(tmp_path))
    r.check(result.exit_code, result.stderr, *expected)


def test_help_is_unchanged_by_the_one_line_errors():
    result = _invoke("attribute", "--help")
    assert result.exit_code == 0 and result.output.startswith("Usage: magic attribute")


# -- finished work is never replaced by accident ------------------------------------------
def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_rerun_with_another_job_is_refused_and_names_the_setting(finished, tmp_path, refusal):
    run = _copy(finished, tmp_path)
    r = refusal(tmp_path)
    result = _invoke("attribute", finished / "job.yaml", "--out", run, "--quiet",
                     "--set", "train.lr=0.02")
    r.check(result.exit_code, result.stderr, "finished results of another job",
            "train.lr (0.01 there, 0.02 here)", "--restart")


def test_a_rerun_of_the_same_job_recomputes_and_swaps_in_whole_results(finished, tmp_path):
    # The job file does not pin its inputs (a rebuilt base model keeps its name),
    # so the same job recomputes; the results are deterministic, so they read back equal.
    run = _copy(finished, tmp_path)
    scores = (run / "scores.safetensors").read_bytes()
    result = _invoke("attribute", finished / "job.yaml", "--out", run, "--quiet")
    assert result.exit_code == 0, result.output
    assert f"wrote {run}" in result.stdout
    assert (run / "scores.safetensors").read_bytes() == scores
    assert not any(p.name.endswith(".replacing") for p in run.parent.iterdir())


def test_a_rerun_into_a_damaged_run_is_refused(finished, tmp_path, refusal):
    run = _copy(finished, tmp_path)
    flip_last_score(run)
    r = refusal(tmp_path)
    result = _invoke("attribute", finished / "job.yaml", "--out", run, "--quiet")
    r.check(result.exit_code, result.stderr, "was changed", "--restart")


def test_restart_replaces_a_finished_run_whole(finished, tmp_path):
    run = _copy(finished, tmp_path)
    result = _invoke("attribute", finished / "job.yaml", "--out", run, "--quiet",
                     "--set", "train.lr=0.02", "--restart")
    assert result.exit_code == 0, result.output
    assert read_run(run).manifest["config"]["train"]["lr"] == 0.02
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging left behind


def test_unlearn_into_an_attribution_run_is_refused(finished, tmp_path, refusal):
    run, job = _copy(finished, tmp_path), _unlearn_job(finished, tmp_path, finished / "run")
    r = refusal(tmp_path)
    result = _invoke("unlearn", job, "--out", run)
    r.check(result.exit_code, result.stderr, "holds a finished attribution run")


def test_unlearn_into_damaged_results_is_refused(finished, tmp_path, refusal):
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.json").write_text("{")
    job = _unlearn_job(finished, tmp_path, finished / "run")
    r = refusal(tmp_path)
    result = _invoke("unlearn", job, "--out", out)
    r.check(result.exit_code, result.stderr, "result.json is unreadable", "--restart")


def test_unlearn_recomputes_a_finished_run_refuses_another_job_and_replaces_on_restart(
        finished, tmp_path, refusal):
    job, out = _unlearn_job(finished, tmp_path, finished / "run"), tmp_path / "out"
    first = _invoke("unlearn", job, "--out", out, "--quiet", "--set", "output.save_model=true")
    assert first.exit_code == 0, first.output
    before = _files(tmp_path)

    again = _invoke("unlearn", job, "--out", out, "--quiet", "--set", "output.save_model=true")
    assert again.exit_code == 0, again.output
    assert set(_files(tmp_path)) == set(before)  # the same files, recomputed in place of the old

    r = refusal(tmp_path)
    other = _invoke("unlearn", job, "--out", out, "--quiet", "--set", "optim.lr=0.001")
    r.check(other.exit_code, other.stderr, "another job", "optim.lr")

    replaced = _invoke("unlearn", job, "--out", out, "--quiet", "--set", "optim.lr=0.001",
                       "--set", "output.save_model=true", "--restart")
    assert replaced.exit_code == 0, replaced.output
    result = json.loads((out / "result.json").read_text())
    assert result["optim"]["lr"] == 0.001
    assert result["model_dir"] == str(out / "model") and (out / "model" / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "unlearn.yaml"]


@pytest.mark.slow
def test_sigkill_during_a_restart_leaves_the_old_or_the_new_run_whole(finished, tmp_path):
    """A replacement killed at a random moment (the last one near its end, where the swap
    is): the run directory reads back whole every time, old or new, never a mix."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    run = _copy(finished, tmp_path)
    command = [sys.executable, "-m", "magic_driver.cli", "attribute", str(finished / "job.yaml"),
               "--out", str(run), "--quiet", "--set", "train.lr=0.02", "--restart"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    old = (finished / "run" / "scores.safetensors").read_bytes()
    start = time.monotonic()
    subprocess.run(command, env=env, check=True, capture_output=True)  # how long one takes
    length = time.monotonic() - start
    new = (run / "scores.safetensors").read_bytes()
    assert new != old
    shutil.rmtree(run)
    shutil.copytree(finished / "run", run)
    for moment in [rng.uniform(0.2, 1.0) * length for _ in range(3)] + [length * 0.97]:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(moment)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        lr = read_run(run).manifest["config"]["train"]["lr"]  # raises if not whole
        scores = (run / "scores.safetensors").read_bytes()
        assert (lr, scores) in ((0.01, old), (0.02, new)), \
            f"seed {seed}, killed after {moment:.2f} s: a mix of the old and the new run"
        if lr == 0.02:  # replaced: put the old run back for the next try
            shutil.rmtree(run)
            shutil.copytree(finished / "run", run)
    assert read_run(run).manifest["config"]["train"]["lr"] == 0.01


SWAPPER = """
import sys
import magic_core.atomic as atomic
if sys.argv[3] == "renames":  # as on a system without an atomic exchange of directories
    atomic._exchange = lambda a, b: False
print("ready", flush=True)
sys.stdin.readline()
atomic.replace_dir(sys.argv[1], sys.argv[2])
"""


@pytest.mark.parametrize("way", ["exchange", "renames"])
def test_replace_dir_killed_at_any_moment_leaves_one_whole_directory(way, tmp_path):
    """SIGKILL at random moments of the swap itself (many files, so that removing the old
    ones takes a while): after `recover_dir`, the target holds all old or all new files."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    target, new = tmp_path / "run", tmp_path / ".run.replacing"
    outcomes = set()
    for attempt in range(6):
        for folder, text in ((target, "old"), (new, "new")):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            for i in range(1500):
                (folder / f"{i}.txt").write_text(text)
        proc = subprocess.Popen([sys.executable, "-c", SWAPPER, str(new), str(target), way],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "ready\n"
        proc.stdin.write("go\n")
        proc.stdin.flush()
        time.sleep(rng.uniform(0, 0.03) if attempt else 0)
        proc.kill()
        proc.wait()
        recover_dir(target)
        texts = [p.read_text() for p in target.iterdir()]
        assert len(texts) == 1500 and len(set(texts)) == 1, f"seed {seed}, try {attempt}"
        outcomes.add(texts[0])
    assert not (tmp_path / ".run.replaced").exists()

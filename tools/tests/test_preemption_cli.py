"""`magic attribute` / `magic unlearn` stopped by a signal exit 75 and resume on rerun, exactly.

A tiny saved GPT-NeoX (no base-model build), float64. The subprocess tests
(slow: each starts `magic` three times) send real signals to a real
`magic attribute` process: one from inside at a chosen step (through a
wrapper that then runs the real CLI), one from the test process while the
run is under way. The in-process tests request the stop as the handler does.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
import yaml
from click.testing import CliRunner
from driver_tests import save_world_model
from magic_core import preemption
from magic_core.run_control import RunControl
from magic_driver.cli import main
from magic_driver.exit_codes import EXIT_PREEMPTED
from safetensors.torch import load_file

WRAPPER = textwrap.dedent("""
    import os, signal, sys
    from magic_core.run_control import RunControl
    from magic_driver.cli import main

    phase, step = sys.argv[1], int(sys.argv[2])
    original = RunControl.after_step

    def after_step(self, p, s, total, snapshot):
        if (p, s) == (phase, step):
            os.kill(os.getpid(), signal.SIGTERM)
        original(self, p, s, total, snapshot)

    RunControl.after_step = after_step
    main(sys.argv[3:], prog_name="magic")
""")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model")
    save_world_model(path, layers=2, hidden=16, max_positions=64, attention_dropout=0.0,
                     hidden_dropout=0.0)
    return path


def write_job(tmp_path, model_dir, n_docs=12):
    job = {"model": {"path": str(model_dir)}, "device": "cpu",
           "data": {"dataset": "world-attribution", "options": {"n_docs": n_docs, "k_planted": 2}},
           "query": {"dataset": "world-hazard-mcqa", "limit": 4},
           "train": {"optimizer": "adam", "lr": 1e-2, "batch_size": 2, "epochs": 2,
                     "precision": "fp64", "max_seq_len": 24},
           "attribution": {"kept_states": "sqrt", "granularity": "per-token"}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return str(path)


def magic(*args, cache, wrapper_at=None):
    """A `magic` process; with ``wrapper_at=(phase, step)`` it sends itself SIGTERM after that step."""
    cmd = [sys.executable, "-m", "magic_driver.cli", *args]
    if wrapper_at is not None:
        cmd = [sys.executable, "-c", WRAPPER, *map(str, wrapper_at), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MAGIC_CACHE": str(cache)})


def finish(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def scores(run):
    return load_file(run / "scores.safetensors")


def assert_same_scores(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, model_dir):
    tmp = tmp_path_factory.mktemp("uninterrupted")
    code, _, err = finish(magic("attribute", write_job(tmp, model_dir), "--out", str(tmp / "run"),
                                "--quiet", cache=tmp / "cache"))
    assert code == 0, err
    return scores(tmp / "run")


@pytest.mark.slow
def test_sigterm_in_the_backward_exits_75_and_the_rerun_gives_identical_scores(
        tmp_path, model_dir, uninterrupted):
    job, run = write_job(tmp_path, model_dir), tmp_path / "run"
    code, out, err = finish(magic("attribute", job, "--out", str(run), "--quiet",
                                  wrapper_at=("backward", 3), cache=tmp_path / "cache"))
    assert code == EXIT_PREEMPTED, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"preempted at backward step 3/12; checkpoint written to {run / 'checkpoints'}; "
        "rerun the same command to resume")
    progress = json.loads((run / "progress.json").read_text())
    assert progress["status"] == "preempted" and progress["phase"] == "backward"
    assert progress["phases_done"] == ["train", "query"]
    assert progress["last_checkpoint"]["step"] == 3
    assert not (run / "scores.safetensors").exists() and not (run / "manifest.json").exists()

    code, out, err = finish(magic("attribute", job, "--out", str(run), "--quiet",
                                  cache=tmp_path / "cache"))
    assert code == 0, err
    assert_same_scores(scores(run), uninterrupted)
    assert not (run / "checkpoints").exists()  # a finished run keeps no checkpoint
    progress = json.loads((run / "progress.json").read_text())
    assert progress["status"] == "done" and progress["phases_done"] == ["train", "query", "backward"]


@pytest.mark.slow
def test_sigusr1_from_outside_while_running_then_rerun(tmp_path, model_dir, uninterrupted):
    # The signal lands wherever the run is (setup, training, query or backward).
    job, run = write_job(tmp_path, model_dir), tmp_path / "run"
    proc = magic("attribute", job, "--out", str(run), "--quiet", cache=tmp_path / "cache")
    deadline = time.monotonic() + 300
    while not (run / "progress.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGUSR1)
    code, out, err = finish(proc)
    assert code == EXIT_PREEMPTED, err
    assert err.strip().splitlines()[-1].startswith("preempted at ")
    code, out, err = finish(magic("attribute", job, "--out", str(run), "--quiet",
                                  cache=tmp_path / "cache"))
    assert code == 0, err
    assert_same_scores(scores(run), uninterrupted)


# -- in-process: exit codes, --restart, refused checkpoints ------------------------------
class Recorder:
    """Patches RunControl.after_step: records the steps seen, requests a stop at one of them."""

    def __init__(self, monkeypatch, stop_at=None):
        self.seen, self.stop_at = [], stop_at
        original = RunControl.after_step

        def after_step(control, phase, step, total, snapshot):
            self.seen.append((phase, step))
            if (phase, step) == self.stop_at:
                preemption.request_stop("test")
            original(control, phase, step, total, snapshot)

        monkeypatch.setattr(RunControl, "after_step", after_step)


def cli(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def preempted_run(tmp_path, model_dir, monkeypatch):
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))
    job, run = write_job(tmp_path, model_dir), tmp_path / "run"
    Recorder(monkeypatch, ("backward", 2))
    res = cli("attribute", job, "--out", str(run), "--quiet")
    assert res.exit_code == EXIT_PREEMPTED, res.output
    assert res.output.strip().splitlines()[-1].startswith("preempted at backward step 2/12;")
    monkeypatch.undo()
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))
    return job, run


def test_restart_discards_the_checkpoint_and_starts_from_step_one(preempted_run, monkeypatch):
    job, run = preempted_run
    recorder = Recorder(monkeypatch)
    res = cli("attribute", job, "--out", str(run), "--quiet", "--restart")
    assert res.exit_code == 0, res.output
    assert recorder.seen[0] == ("train", 1)
    assert not (run / "checkpoints").exists()


def test_a_truncated_checkpoint_is_one_error_line_and_nothing_is_written(preempted_run):
    job, run = preempted_run
    victim = max((run / "checkpoints").glob("*.safetensors"), key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[:-64])
    res = cli("attribute", job, "--out", str(run), "--quiet")
    assert res.exit_code == 2, res.output
    line = res.output.strip().splitlines()[-1]
    assert line.startswith(f"error: checkpoint file {victim} is truncated") and "--restart" in line
    assert "Traceback" not in res.output and not (run / "scores.safetensors").exists()
    assert json.loads((run / "progress.json").read_text())["status"] == "failed"


def test_a_checkpoint_of_another_config_is_refused(preempted_run):
    job, run = preempted_run
    res = cli("attribute", job, "--out", str(run), "--quiet", "--set", "train.lr=0.02")
    assert res.exit_code == 2, res.output
    line = res.output.strip().splitlines()[-1]
    assert line.startswith(f"error: checkpoint {run / 'checkpoints'} belongs to a different job ("
                           "train differ)") and "--restart" in line


# -- unlearning --------------------------------------------------------------------------------
@pytest.fixture
def unlearn_job(tmp_path, model_dir):
    cfg = {"model": {"path": str(model_dir)}, "device": "cpu", "recipe": {"name": "gradient-ascent"},
           "forget": {"options": {"per_entity": 1}}, "retain": {"options": {"per_entity": 1}},
           "optim": {"steps": 4, "lr": 1e-3},
           "eval": {"hazard": {"dataset": "world-hazard-mcqa", "limit": 4},
                    "general": {"dataset": "world-general-mcqa", "limit": 4}},
           "relearn": {"steps": 2, "n_docs": 2}, "output": {"save_model": False}}
    path = tmp_path / "unlearn.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _result(run):
    result = json.loads((run / "result.json").read_text())
    for record in (result, result["training"], result["after_relearn"]["training"]):
        record.pop("seconds")
    return result


@pytest.mark.parametrize("stop_at, rerun", [(("unlearn", 2), "resume"), (("relearn", 1), "resume"),
                                            (("unlearn", 3), "restart")])
def test_unlearn_preempted_exits_75_and_the_rerun_gives_the_same_result(
        unlearn_job, tmp_path, monkeypatch, stop_at, rerun):
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))
    res = cli("unlearn", unlearn_job, "--out", str(tmp_path / "want"), "--quiet")
    assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        Recorder(patch, stop_at)
        res = cli("unlearn", unlearn_job, "--out", str(run), "--quiet")
    assert res.exit_code == EXIT_PREEMPTED, res.output
    assert res.output.strip().splitlines()[-1].startswith(
        f"preempted at {stop_at[0]} step {stop_at[1]}/")
    assert not (run / "result.json").exists()
    assert json.loads((run / "progress.json").read_text())["status"] == "preempted"

    recorder = Recorder(monkeypatch)
    res = cli("unlearn", unlearn_job, "--out", str(run), "--quiet",
              *(["--restart"] if rerun == "restart" else []))
    assert res.exit_code == 0, res.output
    first = (stop_at[0], stop_at[1] + 1) if rerun == "resume" else ("unlearn", 1)
    assert recorder.seen[0] == first
    assert _result(run) == _result(tmp_path / "want")
    assert not (run / "checkpoints").exists()
    assert json.loads((run / "progress.json").read_text())["status"] == "done"


def test_a_preempted_sweep_keeps_its_finished_points_and_resumes_the_current_one(
        unlearn_job, tmp_path, monkeypatch):
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))
    args = ["sweep", unlearn_job, "--param", "lr=1e-3,2e-3", "--quiet"]
    res = cli(*args, "--out", str(tmp_path / "want"))
    assert res.exit_code == 0, res.output
    with monkeypatch.context() as patch:
        Recorder(patch, ("unlearn", 2))
        res = cli(*args, "--out", str(tmp_path / "run"))  # stops in the first point
    assert res.exit_code == EXIT_PREEMPTED, res.output
    recorder = Recorder(monkeypatch)
    res = cli(*args, "--out", str(tmp_path / "run"))
    assert res.exit_code == 0, res.output
    assert recorder.seen[0] == ("unlearn", 3)  # the first point resumed, not restarted
    for point in ("000", "001"):
        assert _result(tmp_path / "run" / point) == _result(tmp_path / "want" / point)
    recorder = Recorder(monkeypatch)
    res = cli(*args, "--out", str(tmp_path / "run"))  # everything finished: nothing reruns
    assert res.exit_code == 0 and recorder.seen == []

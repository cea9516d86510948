"""`magic attribute` killed with SIGKILL resumes from its last periodic checkpoint, exactly;
SIGTERM stops it within the stated bound.

The tiny float64 job of test_preemption_cli. A wrapper slows each backward step
down (a sleep after it: no number changes) so that the test can kill the
process there; ``device_memory: 0`` spills every kept state, so the checkpoints
list spill files by reference.
"""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from magic_driver.exit_codes import EXIT_PREEMPTED

# The tiny job and its helpers, shared with test_preemption_cli (tests import in importlib mode).
_spec = importlib.util.spec_from_file_location(
    "_preemption_cli", Path(__file__).with_name("test_preemption_cli.py"))
_shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_shared)
assert_same_scores, finish, magic, scores, write_job = (
    _shared.assert_same_scores, _shared.finish, _shared.magic, _shared.scores, _shared.write_job)
model_dir = _shared.model_dir  # the fixture

SLOW_BACKWARD = textwrap.dedent("""
    import sys, time
    from magic_core.run_control import RunControl
    from magic_driver.cli import main

    original = RunControl.after_step

    def after_step(self, phase, step, total, snapshot):
        if phase == "backward":
            time.sleep(0.3)
        original(self, phase, step, total, snapshot)

    RunControl.after_step = after_step
    main(sys.argv[1:], prog_name="magic")
""")
# What SIGTERM to exit may take on this job: the current step, the final
# checkpoint (what only memory holds) and the interpreter's exit.
STOP_BOUND_S = 10.0
SPILL_ALL = ("--set", "attribution.device_memory='0'")


def run_slowly(args, cache):
    return subprocess.Popen([sys.executable, "-c", SLOW_BACKWARD, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MAGIC_CACHE": str(cache)})


def wait_for(predicate, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def header(run):
    try:
        return json.loads((run / "checkpoints" / "checkpoint.json").read_text())
    except (OSError, ValueError):
        return None


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, model_dir):
    tmp = tmp_path_factory.mktemp("uninterrupted")
    code, _, err = finish(magic("attribute", write_job(tmp, model_dir), "--out", str(tmp / "run"),
                                "--quiet", "--checkpoint-every", "off", cache=tmp / "cache"))
    assert code == 0, err
    return scores(tmp / "run")


@pytest.mark.slow
def test_sigkill_in_the_backward_then_rerun_resumes_from_the_last_checkpoint(
        tmp_path, model_dir, uninterrupted):
    job, run, cache = write_job(tmp_path, model_dir), tmp_path / "run", tmp_path / "cache"
    args = ["attribute", job, "--out", str(run), "--quiet", "--checkpoint-every", "0.2s", *SPILL_ALL]
    proc = run_slowly(args, cache)
    wait_for(lambda: (h := header(run)) is not None and h["phase"] == "backward" and h["step"] >= 2,
             proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    durable = header(run)
    assert durable["phase"] == "backward"
    assert any(e.get("path") for e in durable["files"].values()), "spilled states by reference"

    code, _, err = finish(magic(*args, cache=cache))
    assert code == 0, err
    assert_same_scores(scores(run), uninterrupted)
    progress = json.loads((run / "progress.json").read_text())
    assert progress["status"] == "done"
    assert progress["resumed_from"]["phase"] == "backward"
    assert progress["resumed_from"]["step"] == durable["step"]
    assert progress["resumed_from"]["written"] == durable["written"]
    assert not (run / "checkpoints").exists() and not (run / "kept-states").exists()


@pytest.mark.slow
def test_sigterm_stops_within_the_bound(tmp_path, model_dir):
    job, run, cache = write_job(tmp_path, model_dir), tmp_path / "run", tmp_path / "cache"
    proc = run_slowly(["attribute", job, "--out", str(run), "--quiet", *SPILL_ALL], cache)

    def in_backward():
        try:
            return json.loads((run / "progress.json").read_text())["phase"] == "backward"
        except (OSError, ValueError):
            return False
    wait_for(in_backward, proc)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    took = time.monotonic() - sent
    assert proc.returncode == EXIT_PREEMPTED, err
    assert took < STOP_BOUND_S, f"SIGTERM to exit took {took:.1f} s"


def test_a_bad_checkpoint_interval_is_refused_in_one_line(tmp_path, model_dir):
    code, _, err = finish(magic("attribute", write_job(tmp_path, model_dir), "--out",
                                str(tmp_path / "run"), "--checkpoint-every", "soon",
                                cache=tmp_path / "cache"))
    assert code == 2
    assert err.strip().splitlines() == [
        "error: --checkpoint-every: 'soon' is not a duration; write a number with s, m or h "
        "(e.g. 30s, 10m, 1h, or 0/off for none)"]
    code, _, err = finish(magic("attribute", write_job(tmp_path, model_dir), "--out",
                                str(tmp_path / "run"), "--set", "output.checkpoint_every=-3",
                                cache=tmp_path / "cache"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: output.checkpoint_every: ")

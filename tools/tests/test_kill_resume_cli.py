"""`magic attribute`, `unlearn` and `sweep` killed with SIGKILL resume from their last periodic
checkpoint, exactly; SIGTERM stops a run within the stated bound.

The tiny float64 jobs of test_preemption_cli. A wrapper slows each step of the
phases a test kills in (backward; unlearn and relearn) down (a sleep after it: no
number changes) so that the test can kill the process there; ``device_memory: 0``
spills every kept state, so the checkpoints list spill files by reference.
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
from driver_tests import sibling
from magic_driver.exit_codes import EXIT_PREEMPTED
from safetensors.torch import load_file

# The tiny job and its helpers, shared with test_preemption_cli.
_shared = sibling("test_preemption_cli")
assert_same_scores, finish, magic, scores, write_job, result_of = (
    _shared.assert_same_scores, _shared.finish, _shared.magic, _shared.scores, _shared.write_job,
    _shared._result)
model_dir, unlearn_job = _shared.model_dir, _shared.unlearn_job  # fixtures

# `magic ARGS...` whose steps of the phases in argv[1] (comma-separated) take 0.3 s longer.
SLOW_STEPS = textwrap.dedent("""
    import sys, time
    from magic_core.run_control import RunControl
    from magic_driver.cli import main

    slow = sys.argv[1].split(",")
    original = RunControl.after_step

    def after_step(self, phase, step, total, snapshot):
        if phase in slow:
            time.sleep(0.3)
        original(self, phase, step, total, snapshot)

    RunControl.after_step = after_step
    main(sys.argv[2:], prog_name="magic")
""")
# What SIGTERM to exit may take on this job: the current step, the final
# checkpoint (what only memory holds) and the interpreter's exit.
STOP_BOUND_S = 10.0
SPILL_ALL = ("--set", "attribution.device_memory='0'")


def run_slowly(args, cache, phases=("backward",)):
    return subprocess.Popen([sys.executable, "-c", SLOW_STEPS, ",".join(phases), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
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


def kill_after_checkpoint(proc, run, phase, step):
    """SIGKILL ``proc`` once ``run`` has a checkpoint after ``step`` or more of ``phase``;
    returns that (durable) checkpoint's header."""
    wait_for(lambda: (h := header(run)) is not None and h["phase"] == phase and h["step"] >= step,
             proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return header(run)


def assert_resumed_from(run, durable):
    progress = json.loads((run / "progress.json").read_text())
    assert progress["status"] == "done"
    assert progress["resumed_from"] == {"phase": durable["phase"], "step": durable["step"],
                                        "written": durable["written"]}


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


# -- unlearn and sweep --------------------------------------------------------------------
def model_tensors(run):
    return load_file(run / "model" / "model.safetensors")


def numbers_of(run):
    """A result without its timings and where it was written (``output``, the model's folder)."""
    result = result_of(run)
    result["config"].pop("output")
    result.pop("model_dir", None)
    return result


@pytest.mark.slow
def test_sigkill_while_unlearning_then_rerun_resumes_to_the_same_model_and_result(
        tmp_path, unlearn_job):
    cache = tmp_path / "cache"
    want = tmp_path / "want"
    code, _, err = finish(magic("unlearn", unlearn_job, "--out", str(want), "--quiet",
                                "--set", "output.save_model=true", "--checkpoint-every", "off",
                                cache=cache))
    assert code == 0, err

    run = tmp_path / "run"
    args = ["unlearn", unlearn_job, "--out", str(run), "--quiet", "--set",
            "output.save_model=true", "--checkpoint-every", "0.2s"]
    durable = kill_after_checkpoint(run_slowly(args, cache, ("unlearn", "relearn")), run,
                                    "unlearn", 2)
    assert not (run / "result.json").exists()

    code, _, err = finish(magic(*args, cache=cache))
    assert code == 0, err
    assert numbers_of(run) == numbers_of(want)
    got, expected = model_tensors(run), model_tensors(want)
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert_resumed_from(run, durable)
    assert not (run / "checkpoints").exists()


@pytest.mark.slow
def test_a_sweep_killed_in_its_second_point_reruns_only_that_point_from_its_checkpoint(
        tmp_path, unlearn_job):
    cache = tmp_path / "cache"
    grid = ["--param", "lr=1e-3,2e-3", "--quiet"]
    code, _, err = finish(magic("sweep", unlearn_job, *grid, "--out", str(tmp_path / "want"),
                                cache=cache))
    assert code == 0, err

    out = tmp_path / "run"
    args = ["sweep", unlearn_job, *grid, "--out", str(out), "--checkpoint-every", "0.2s"]
    durable = kill_after_checkpoint(run_slowly(args, cache, ("unlearn", "relearn")), out / "001",
                                    "unlearn", 2)
    first = (out / "000" / "result.json").stat().st_mtime_ns

    code, _, err = finish(magic(*args, cache=cache))
    assert code == 0, err
    assert (out / "000" / "result.json").stat().st_mtime_ns == first  # finished: not run again
    assert_resumed_from(out / "001", durable)
    for point in ("000", "001"):
        assert numbers_of(out / point) == numbers_of(tmp_path / "want" / point)

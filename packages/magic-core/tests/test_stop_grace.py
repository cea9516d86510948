"""A stop whose final checkpoint would outlast the scheduler's kill exits at once and resumes
from the last periodic checkpoint (`RunControl.stop_grace`), with identical scores."""

import json

import pytest
from magic_core import preemption
from magic_core.phase_checkpoint import CheckpointStore
from magic_core.progress import ProgressFile
from magic_core.run_control import DEFAULT_STOP_GRACE, RunControl, stop_grace


class StopAt(RunControl):
    """Checkpoints after every step and requests a stop after ``at`` = (phase, step)."""

    def __init__(self, run_dir, at, grace, every=0.0):
        super().__init__(CheckpointStore(run_dir / "checkpoints", {"job": "test"}),
                         ProgressFile(run_dir), checkpoint_every=every, stop_grace=grace)
        self.at = at

    def after_step(self, phase, step, total, snapshot):
        if (phase, step) == self.at:
            preemption.request_stop("test")
        super().after_step(phase, step, total, snapshot)


@pytest.fixture(autouse=True)
def no_stop_left_over():
    yield
    preemption.clear()


@pytest.mark.parametrize("phase, step, before", [("train", 3, "train step 2"),
                                                 ("backward", 2, "backward step 1")])
def test_a_too_slow_final_checkpoint_is_skipped_and_the_rerun_is_identical(
        phase, step, before, resumable_run, uninterrupted, assert_identical, tmp_path):
    control = StopAt(tmp_path, (phase, step), grace=1e-9)  # every checkpoint is "too slow"
    with pytest.raises(preemption.Preempted) as stopped:
        resumable_run(control, "sqrt")
    assert stopped.value.resumes_at == before
    assert f"resumes from the periodic checkpoint after {before}" in str(stopped.value)
    written = [(s["phase"], s["step"]) for s in control.saves]
    assert written[-1] == tuple(before.replace(" step", "").split()[:1]) + (step - 1,)
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["status"] == "preempted"
    assert progress["last_checkpoint"]["step"] == step - 1  # what the rerun continues from

    preemption.clear()
    again = RunControl(CheckpointStore(tmp_path / "checkpoints", {"job": "test"}),
                       ProgressFile(tmp_path))
    assert_identical(resumable_run(again, "sqrt"), uninterrupted("sqrt"))


def test_a_fast_or_first_final_checkpoint_is_written(resumable_run, tmp_path):
    # Generous grace: the final checkpoint is written at the stop.
    fast = StopAt(tmp_path / "fast", ("train", 2), grace=3600.0)
    with pytest.raises(preemption.Preempted) as stopped:
        resumable_run(fast, "sqrt")
    assert stopped.value.resumes_at is None and fast.saves[-1]["step"] == 2
    preemption.clear()
    # No earlier checkpoint to fall back on: the final one is written whatever it costs.
    first = StopAt(tmp_path / "first", ("train", 2), grace=1e-9, every=None)
    with pytest.raises(preemption.Preempted) as stopped:
        resumable_run(first, "sqrt")
    assert stopped.value.resumes_at is None and len(first.saves) == 1


def test_the_job_setting_is_a_duration_off_or_the_default():
    class Output:
        def __init__(self, value):
            self.stop_grace = value

    class Job:
        def __init__(self, value):
            self.output = Output(value)

    assert stop_grace(Job("2m")) == 120.0
    assert stop_grace(Job("off")) is None
    assert stop_grace(Job(None)) == DEFAULT_STOP_GRACE < 30  # inside Slurm's default KillWait

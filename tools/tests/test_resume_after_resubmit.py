"""A preempted run resumes when its job comes back with other Slurm resources.

Resubmitting a timed-out job with a longer `slurm.time` (or more CPUs) is
the usual way to finish it; the `slurm:` section does not change the run's
numbers, so its checkpoint must still be accepted.
"""

import pytest
import yaml
from click.testing import CliRunner
from driver_tests import save_world_model
from magic_core import preemption
from magic_core.run_control import RunControl
from magic_driver.cli import main
from magic_driver.exit_codes import EXIT_PREEMPTED


@pytest.fixture
def job(tmp_path, monkeypatch):
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))
    save_world_model(tmp_path / "model", layers=1, hidden=16, max_positions=64)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"path": str(tmp_path / "model")}, "device": "cpu",
        "data": {"dataset": "world-attribution", "options": {"n_docs": 6, "k_planted": 2}},
        "query": {"dataset": "world-hazard-mcqa", "limit": 2},
        "train": {"optimizer": "sgd", "lr": 0.03, "batch_size": 2, "precision": "fp64",
                  "max_seq_len": 24},
        "slurm": {"time": "01:00:00"},
    }))
    return str(path)


def test_a_changed_slurm_section_still_resumes(job, tmp_path, monkeypatch):
    run = str(tmp_path / "run")
    original = RunControl.after_step

    def stop_in_backward(control, phase, step, total, snapshot):
        if (phase, step) == ("backward", 1):
            preemption.request_stop("test: time limit")
        original(control, phase, step, total, snapshot)

    monkeypatch.setattr(RunControl, "after_step", stop_in_backward)
    first = CliRunner().invoke(main, ["attribute", job, "--out", run, "--quiet"])
    assert first.exit_code == EXIT_PREEMPTED, first.output
    monkeypatch.setattr(RunControl, "after_step", original)
    resumed = CliRunner().invoke(main, ["attribute", job, "--out", run, "--quiet",
                                        "--set", "slurm.time=04:00:00",
                                        "--set", "slurm.cpus_per_task=8"])
    assert resumed.exit_code == 0, resumed.output
    assert "wrote" in resumed.output

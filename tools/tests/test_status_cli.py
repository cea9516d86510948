"""`magic status RUN_DIR`: progress.json, results and the Slurm job state, read back."""

import json
import os
import socket
import stat
import subprocess
import sys

import pytest
from click.testing import CliRunner
from magic_driver.cli import main


def _progress(**changes):
    record = {"status": "running", "phase": "backward", "step": 12, "total": 40,
              "phases_done": ["train", "query"],
              "last_checkpoint": {"phase": "backward", "step": 10, "path": "/runs/x/checkpoint",
                                  "time": "2026-01-02T03:04:05+00:00"},
              "updated": "2026-01-02T03:04:09+00:00", "host": "elsewhere", "pid": 123,
              "slurm_job_id": None}
    return {**record, **changes}


def _run_dir(tmp_path, progress=None, **files):
    run = tmp_path / "run"
    run.mkdir()
    if progress is not None:
        (run / "progress.json").write_text(json.dumps(progress))
    for name, data in files.items():
        path = run / name.replace("__", "/").replace("_json", ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
    return run


def _status(*args):
    return CliRunner().invoke(main, ["status", *map(str, args)])


def test_running_run_shows_phase_step_and_last_checkpoint(tmp_path):
    run = _run_dir(tmp_path, _progress())
    result = _status(run, "--no-slurm")
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.output.splitlines())
    assert lines["state"].strip() == "running: backward step 12/40"
    assert lines["phases done"].strip() == "train, query"
    assert lines["last checkpoint"].strip() == (
        "backward step 10 at 2026-01-02T03:04:05+00:00 (/runs/x/checkpoint)")
    assert lines["updated"].strip().endswith("by elsewhere pid 123")
    assert "slurm job" not in lines


def test_a_killed_local_run_is_called_killed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    run = _run_dir(tmp_path, _progress(host=socket.gethostname(), pid=int(dead)))
    result = _status(run, "--no-slurm")
    assert f"(but process {dead} on {socket.gethostname()} is gone: it was killed)" in result.output


def test_finished_attribution_shows_its_result_and_slurm_state(tmp_path, monkeypatch):
    manifest = {"corpus": {"documents": 64}, "training": {"steps": 16}, "scores_dtype": "float64",
                "query": {"before_training": 1.5, "after_training": 0.75},
                "timings": {"total": 12.34}}
    run = _run_dir(tmp_path, _progress(status="done", phase="done", step=40, slurm_job_id="99",
                                       phases_done=["train", "query", "backward"]),
                   manifest_json=manifest)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    squeue = bin_dir / "squeue"
    squeue.write_text('#!/bin/bash\n[ "$3" = 99 ] && echo "COMPLETING None"\n')
    squeue.chmod(squeue.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    result = _status(run)
    assert result.exit_code == 0, result.output
    assert "state:           done\n" in result.output
    assert ("result:          64 documents, 16 steps, float64 scores, query 1.5 -> 0.75, 12.3 s"
            in result.output)
    assert "slurm job:       99: COMPLETING" in result.output
    info = json.loads(_status(run, "--json").output)
    assert info["progress"]["status"] == "done" and info["slurm_state"] == "COMPLETING"


def test_submitted_but_not_started(tmp_path):
    run = _run_dir(tmp_path, slurm__submission_json={"job_id": "7", "array_tasks": None})
    result = _status(run, "--no-slurm")
    assert result.exit_code == 0, result.output
    assert "state:     submitted, not started yet" in result.output
    assert "slurm job: 7: unknown" in result.output


def test_sweep_points_are_listed(tmp_path):
    run = _run_dir(tmp_path, slurm__submission_json={"job_id": "8", "array_tasks": 2},
                   **{"000__progress_json": _progress(status="done", phase="done", step=40),
                      "001__progress_json": _progress(phase="unlearn", step=3, total=50)})
    result = _status(run, "--no-slurm")
    assert "state:     running: 1 of 2 runs done, 1 running" in result.output
    assert "point 000: attribution run, done\n" in result.output
    assert "point 001: unlearning run, running: unlearn step 3/50" in result.output
    assert "running: unlearn step 3/50" in result.output


@pytest.mark.parametrize("case", ["missing", "empty", "not json", "wrong type"])
def test_missing_or_invalid_run_dirs_get_one_line_and_exit_2(case, tmp_path):
    run = tmp_path / "run"
    if case != "missing":
        run.mkdir()
    if case == "not json":
        (run / "progress.json").write_text("{")
    if case == "wrong type":
        (run / "progress.json").write_text(json.dumps(_progress(step="twelve")))
    result = _status(run)
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    expected = {"missing": "does not exist", "empty": "not a run directory",
                "not json": "unreadable", "wrong type": "'step' is missing or of the wrong type"}
    assert expected[case] in result.output

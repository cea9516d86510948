"""`magic submit`: the rendered batch script, the run directory's slurm/ files, refusals.

sbatch is a stand-in script here (the real Slurm run is test_slurm_cluster.py);
the rendered script itself is run by bash with stand-in srun/scontrol to check
its requeue decision.
"""

import json
import os
import stat
import subprocess
import textwrap

import pytest
import yaml
from click.testing import CliRunner
from magic_driver.cli import main
from magic_driver.job_kinds import build_any_job

JOB = {
    "data": {"dataset": "world-attribution", "n_docs": 8},
    "train": {"precision": "fp64", "batch_size": 2},
    "output": {"dir": "runs/small"},
    "slurm": {"nodes": 2, "tasks_per_node": 2, "gpus_per_node": 2, "cpus_per_task": 4,
              "mem": "64G", "time": "02:00:00", "partition": "gpu", "checkpoint_before_end": 120,
              "sbatch": ["--exclusive"]},
}
UNLEARN = {"kind": "unlearn", "output": {"dir": "runs/sweep"}, "slurm": {"time": "30"}}


def _executable(path, text):
    path.write_text("#!/bin/bash\n" + textwrap.dedent(text))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A submit directory with job files and a cluster profile folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(JOB))
    (tmp_path / "unlearn.yaml").write_text(yaml.safe_dump(UNLEARN))
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "hpc.yaml").write_text(yaml.safe_dump({
        "description": "test cluster", "partition": "batch", "account": "proj42",
        "setup": ["module load PrgEnv-cray cuda/12.6", "source /opt/venvs/magic/bin/activate"],
        "sbatch": ["--constraint=gh200"], "srun": ["--cpu-bind=none"],
    }))
    monkeypatch.setenv("MAGIC_CLUSTER_CONFIG", str(profiles))
    monkeypatch.delenv("MAGIC_CLUSTER", raising=False)
    return tmp_path


def _sbatch_lines(script):
    return [line.removeprefix("#SBATCH ") for line in script.splitlines()
            if line.startswith("#SBATCH ")]


def test_dry_run_renders_resources_profile_srun_and_requeue(work):
    result = CliRunner().invoke(main, ["submit", "job.yaml", "--cluster", "hpc", "--dry-run",
                                       "--set", "slurm.time=03:00:00"])
    assert result.exit_code == 0, result.output
    script = result.output
    run = work / "runs" / "small"
    assert _sbatch_lines(script) == [
        "--job-name=magic-attribute-small", "--nodes=2", "--ntasks-per-node=2",
        "--gpus-per-node=2", "--cpus-per-task=4", "--mem=64G", "--time=03:00:00",
        "--partition=gpu",  # the job's partition wins over the profile's
        "--account=proj42",  # the profile's default
        f"--chdir={work}", f"--output={run}/slurm/%j.out", "--open-mode=append",
        "--requeue", "--signal=USR1@120", "--constraint=gh200", "--exclusive",
    ]
    body = script.split("\n\n", 1)[1]
    assert "module load PrgEnv-cray cuda/12.6\nsource /opt/venvs/magic/bin/activate\n" in body
    assert 'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)' in body
    assert (f'srun --cpu-bind=none magic attribute {run}/slurm/job.yaml --out "$run_dir" --quiet'
            in body)
    assert 'if [ "$status" -eq 75 ] && [ "$stopped_by_slurm" -eq 0 ]; then' in body
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    assert not (work / "runs").exists()  # a dry run writes nothing


def test_submit_freezes_the_job_and_records_the_job_id(work, monkeypatch):
    bin_dir = work / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "sbatch", f"""\
        echo "$@" > {work}/sbatch.args
        echo "4242;cluster"
        """)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    runner = CliRunner()
    dry = runner.invoke(main, ["submit", "job.yaml", "--set", "train.lr=1e-4", "--dry-run"])
    result = runner.invoke(main, ["submit", "job.yaml", "--set", "train.lr=1e-4"])
    assert result.exit_code == 0, result.output
    run = work / "runs" / "small"
    assert result.output == (f"submitted batch job 4242: {run}; follow it with "
                             f"`magic status {run}`\n")
    slurm_dir = run / "slurm"
    assert (slurm_dir / "job.sbatch").read_text() == dry.output
    assert (work / "sbatch.args").read_text().split() == ["--parsable", str(slurm_dir / "job.sbatch")]
    frozen = yaml.safe_load((slurm_dir / "job.yaml").read_text())
    assert frozen["train"]["lr"] == 1e-4 and frozen["kind"] == "attribute"
    assert build_any_job(frozen) == build_any_job(JOB, ("train.lr=1e-4",))
    submission = json.loads((slurm_dir / "submission.json").read_text())
    assert submission["job_id"] == "4242" and submission["cluster"] == "local"
    assert not list(slurm_dir.glob(".*.tmp"))
    parsable = runner.invoke(main, ["submit", "job.yaml", "--parsable", "--out", "other"])
    assert parsable.output == "4242\n"


def test_array_sweep_renders_one_task_per_grid_point(work):
    result = CliRunner().invoke(main, ["submit", "unlearn.yaml", "--array", "--param",
                                       "lr=1e-5,1e-4", "--param", "steps=2,3", "--dry-run"])
    assert result.exit_code == 0, result.output
    run = work / "runs" / "sweep"
    assert "--array=0-3" in _sbatch_lines(result.output)
    assert f"--output={run}/slurm/%A_%a.out" in _sbatch_lines(result.output)
    assert "  2) point=(--set optim.lr=1e-4 --set optim.steps=2) ;;" in result.output
    assert f'srun magic unlearn {run}/slurm/job.yaml "${{point[@]}}" --out "$run_dir"' in result.output
    assert f'[ "$status" -eq 0 ] && magic report {run} > /dev/null' in result.output
    assert "MASTER_ADDR" not in result.output  # one task


REFUSALS = {
    "unknown profile": (["submit", "job.yaml", "--cluster", "hcp"],
                        "error: unknown cluster profile 'hcp'"),
    "unknown preset": (["submit", "preset:attr-wiki"], "error: unknown preset 'attr-wiki'"),
    "param on attribution": (["submit", "job.yaml", "--param", "lr=1,2"],
                             "error: --param/--array sweep unlearning jobs"),
    "array without grid": (["submit", "unlearn.yaml", "--array"], "error: --array needs the grid"),
    "bad grid point": (["submit", "unlearn.yaml", "--param", "lr=1e-4,fast"],
                       "error: optim.lr: expected a number, got 'fast'"),
    "multi-task unlearning": (["submit", "unlearn.yaml", "--set", "slurm.tasks_per_node=4"],
                              "error: slurm: unlearning runs in one process"),
    "bad profile": (["submit", "job.yaml", "--cluster", "broken"],
                    "broken.yaml: setup: expected a list, got 'module load x'"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals_are_one_line_exit_2_and_write_nothing(case, work):
    (work / "profiles" / "broken.yaml").write_text("setup: module load x\n")
    args, message = REFUSALS[case]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and message in result.output, result.output
    assert not (work / "runs").exists()


def test_missing_or_refusing_sbatch_leaves_no_run_directory(work, monkeypatch):
    bin_dir = work / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))  # no sbatch at all
    result = CliRunner().invoke(main, ["submit", "job.yaml"])
    assert result.exit_code == 2
    assert result.output.startswith("error: sbatch is not on PATH") and result.output.count("\n") == 1
    _executable(bin_dir / "sbatch", """\
        echo "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified" >&2
        exit 1
        """)
    result = CliRunner().invoke(main, ["submit", "job.yaml"])
    assert result.exit_code == 2
    assert result.output == ("error: sbatch refused the job (sbatch: error: Batch job submission "
                             "failed: Invalid account or account/partition combination specified); "
                             "nothing was submitted\n")
    assert not (work / "runs").exists()


def _run_script(work, srun_body):
    """Run the rendered script with stand-in srun and scontrol; returns (exit, scontrol calls)."""
    bin_dir = work / "bin"
    bin_dir.mkdir(exist_ok=True)
    _executable(bin_dir / "srun", srun_body)
    _executable(bin_dir / "scontrol", f'echo "$@" >> {work}/scontrol.calls\n')
    (work / "profiles" / "bare.yaml").write_text("description: no setup\n")
    single = {**JOB, "slurm": {"time": "10"}}
    (work / "single.yaml").write_text(yaml.safe_dump(single))
    script = CliRunner().invoke(main, ["submit", "single.yaml", "--cluster", "bare",
                                       "--dry-run"]).output
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "77"}
    proc = subprocess.run(["bash", "-c", script], env=env, timeout=60)
    calls = work / "scontrol.calls"
    return proc.returncode, calls.read_text().splitlines() if calls.exists() else []


def test_script_requeues_after_a_time_limit_checkpoint(work):
    assert _run_script(work, "exit 75\n") == (75, ["requeue 77"])


def test_script_leaves_requeue_to_slurm_when_slurm_stopped_it(work):
    # Slurm's own requeue/preemption/cancel signals the batch shell with TERM.
    assert _run_script(work, "kill -TERM $PPID\nsleep 0.2\nexit 75\n") == (75, [])


def test_script_passes_success_and_failure_through(work):
    assert _run_script(work, "exit 0\n") == (0, [])
    assert _run_script(work, "exit 1\n") == (1, [])


def test_wait_exits_with_the_jobs_exit_code(work, monkeypatch):
    bin_dir = work / "bin"
    bin_dir.mkdir()
    # sbatch --parsable --wait: the id at once, then the job's exit code when it ends.
    _executable(bin_dir / "sbatch", """\
        echo 31
        exit 3
        """)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    result = CliRunner().invoke(main, ["submit", "job.yaml", "--wait", "--parsable"])
    assert result.exit_code == 3
    assert result.output.splitlines()[0] == "31"
    assert "job 31 ended with exit code 3" in result.output
    assert json.loads((work / "runs" / "small" / "slurm" / "submission.json").read_text())[
        "job_id"] == "31"

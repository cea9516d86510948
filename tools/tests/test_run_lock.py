"""One run per run directory (`magic_driver.run_lock`), with real processes holding real locks.

A second `magic attribute` into a busy run directory refuses in one line
naming the first; a lock whose holder is gone (dead pid, reused pid, a
requeued Slurm job on another node) is taken over; the lock is gone after
success, a one-line error and a preemption. The runs are the tiny float64
GPT-NeoX jobs of test_preemption_cli.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from driver_tests import sibling
from magic_core import ConfigError
from magic_driver import run_lock
from magic_driver.cli import main
from magic_driver.exit_codes import EXIT_PREEMPTED
from magic_driver.run_lock import lock_path, process_start, run_dir_lock

_preemption = sibling("test_preemption_cli")
model_dir = _preemption.model_dir  # a tiny saved model (module fixture)
config = sibling("test_unlearn_cli").config  # a tiny model, its scores and unlearn.yaml
write_job, magic, finish = _preemption.write_job, _preemption.magic, _preemption.finish
HOST = socket.gethostname()

# A `magic` process that holds its run at every step until the file argv[1] exists.
HELD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from magic_core.run_control import RunControl
    from magic_driver.cli import main

    go = Path(sys.argv[1])
    original = RunControl.after_step

    def after_step(self, *args):
        while not go.exists():
            time.sleep(0.02)
        original(self, *args)

    RunControl.after_step = after_step
    main(sys.argv[2:], prog_name="magic")
""")

# Takes the lock of argv[1] once the file argv[2] exists; holds it for a while; says how it went.
CONTENDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from magic_core import ConfigError
    from magic_driver.run_lock import run_dir_lock

    run, go = Path(sys.argv[1]), Path(sys.argv[2])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    try:
        with run_dir_lock(run, "magic attribute"):
            time.sleep(6)  # the others look while it is held
        print("held")
    except ConfigError as exc:
        print("refused:", exc)
""")

# One rank of a two-rank gloo job taking the lock of argv[1]; argv[2]: rank, argv[3]: port.
RANK = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from magic_core import ConfigError
    import torch.distributed as dist
    from magic_core.distributed import init_from_environment, shutdown
    from magic_driver.run_lock import lock_path, run_dir_lock

    run, rank, port = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    os.environ.update(RANK=rank, WORLD_SIZE="2", LOCAL_RANK=rank, MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=port)
    launch = init_from_environment(backend="gloo")
    try:
        with run_dir_lock(run, "magic attribute", launch):
            print("in", json.loads(lock_path(run).read_text())["pid"], flush=True)
            dist.barrier()  # both read it while it is held
    except ConfigError as exc:
        print("refused:", exc, flush=True)
    finally:
        shutdown()
""")


def plant_lock(run: Path, **fields) -> Path:
    """A lock as another `magic attribute` would have left it; ``fields`` override."""
    record = {"command": "magic attribute", "pid": 4242, "host": HOST,
              "since": "2026-11-27T21:00:00Z", "started": None, "boot_id": None,
              "slurm_job_id": None, "slurm_restart": 0, "token": "planted", **fields}
    lock = lock_path(run)
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps(record))
    return lock


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait()


def attribute(job, run, *extra):
    return CliRunner().invoke(main, ["attribute", job, "--out", str(run), "--quiet", *extra])


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def wait_for(path: Path, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


# -- two real `magic attribute` processes ----------------------------------------------------
@pytest.mark.slow
def test_a_second_run_into_a_busy_run_dir_is_refused_naming_the_first(tmp_path, model_dir):
    job, run, go = write_job(tmp_path, model_dir), tmp_path / "run", tmp_path / "go"
    first = subprocess.Popen(
        [sys.executable, "-c", HELD, str(go), "attribute", job, "--out", str(run), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "MAGIC_CACHE": str(tmp_path / "cache")})
    try:
        wait_for(lock_path(run), first)
        code, _, err = finish(magic("attribute", job, "--out", str(run), "--quiet",
                                    cache=tmp_path / "cache"))
    finally:
        go.touch()
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {run} is in use by magic attribute (pid {first.pid} on "
                               f"host {HOST}, since 20"), lines[0]
    assert lines[0].endswith(f"wait for it to finish, or stop it (kill {first.pid})")

    code, out, err = finish(first)
    assert code == 0, err
    assert (run / "manifest.json").is_file() and out.startswith(f"wrote {run}")
    assert not lock_path(run).exists()


@pytest.mark.parametrize("stale", [False, True], ids=["no-lock", "stale-lock"])
@pytest.mark.slow
def test_of_runs_racing_for_one_lock_exactly_one_gets_it(tmp_path, stale):
    run, go = tmp_path / "run", tmp_path / "go"
    if stale:
        plant_lock(run, pid=dead_pid())
    procs = [subprocess.Popen([sys.executable, "-c", CONTENDER, str(run), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    for proc in procs:  # every one imported and waiting
        assert proc.stdout.readline().strip() == "ready", proc.communicate()
    go.touch()
    said = [proc.communicate(timeout=120)[0].splitlines()[-1] for proc in procs]
    assert sorted(s.split(":")[0] for s in said) == ["held", "refused", "refused", "refused"], said
    assert all("is in use by magic attribute (pid " in s for s in said if s != "held"), said
    assert not lock_path(run).exists()


# -- locks whose holder is gone --------------------------------------------------------------
def test_a_lock_of_a_dead_pid_is_taken_over_with_one_notice(tmp_path, model_dir, monkeypatch):
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))
    job, run = write_job(tmp_path, model_dir), tmp_path / "run"
    pid = dead_pid()
    plant_lock(run, pid=pid)
    res = attribute(job, run)
    assert res.exit_code == 0, res.output
    notices = [line for line in res.stderr.splitlines() if "lock" in line]
    assert notices == [f"magic: {run}: taking over the lock of magic attribute (pid {pid} on host "
                       f"{HOST}, since 2026-11-27T21:00:00Z): pid {pid} is not running"]
    assert not lock_path(run).exists()


@pytest.mark.skipif(process_start(os.getpid()) is None, reason="no /proc start times here")
def test_a_live_pid_is_refused_unless_it_started_at_another_time(tmp_path, model_dir,
                                                                   sleeper, monkeypatch):
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))
    job, run = write_job(tmp_path, model_dir), tmp_path / "run"
    started = process_start(sleeper.pid)
    lock = plant_lock(run, pid=sleeper.pid, started=started)
    line = one_line(attribute(job, run))
    assert line == (f"error: {run} is in use by magic attribute (pid {sleeper.pid} on host {HOST}, "
                    f"since 2026-11-27T21:00:00Z); wait for it to finish, or stop it "
                    f"(kill {sleeper.pid})")
    assert json.loads(lock.read_text())["token"] == "planted"  # left as it was
    assert not run.exists()

    plant_lock(run, pid=sleeper.pid, started=started + 1)  # the pid was reused since
    res = attribute(job, run)
    assert res.exit_code == 0, res.output
    assert f"pid {sleeper.pid} is now another process" in res.stderr
    assert not lock.exists()


def test_another_hosts_lock_is_refused_naming_the_file_to_delete(tmp_path, model_dir,
                                                                 monkeypatch):
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    job, run = write_job(tmp_path, model_dir), tmp_path / "run"
    lock = plant_lock(run, pid=1234, host="node-gone-7", slurm_job_id="555")
    line = one_line(attribute(job, run))
    assert line == (f"error: {run} is in use by magic attribute (pid 1234 on host node-gone-7, "
                    "since 2026-11-27T21:00:00Z); wait for it to finish, or if that run is gone "
                    f"(host node-gone-7 down), delete {lock}")
    # The same Slurm job, not requeued: another step of it may be running there.
    monkeypatch.setenv("SLURM_JOB_ID", "555")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    assert "node-gone-7" in one_line(attribute(job, run))
    assert lock.is_file() and not run.exists()


def test_a_requeued_slurm_job_takes_over_its_lock_from_another_host(tmp_path, model_dir,
                                                                    monkeypatch):
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))
    job, run = write_job(tmp_path, model_dir), tmp_path / "run"
    plant_lock(run, pid=1234, host="node-gone-7", slurm_job_id="555", slurm_restart=0)
    monkeypatch.setenv("SLURM_JOB_ID", "555")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    res = attribute(job, run)
    assert res.exit_code == 0, res.output
    assert "Slurm job 555 was requeued" in res.stderr
    assert not lock_path(run).exists()


def test_an_unreadable_lock_is_refused_naming_the_file(tmp_path, model_dir, monkeypatch):
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))
    job, run = write_job(tmp_path, model_dir), tmp_path / "run"
    lock = lock_path(run)
    lock.write_text("{half a rec")
    line = one_line(attribute(job, run))
    assert f"delete {lock}" in line and line.startswith(f"error: {run} is locked by {lock}")


# -- the lock is released on every way out ---------------------------------------------------
def test_the_lock_is_gone_after_a_one_line_error_and_so_are_folders_made_for_it(
        tmp_path, model_dir, monkeypatch):
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))
    job, run = write_job(tmp_path, model_dir), tmp_path / "a" / "b" / "run"
    line = one_line(attribute(job, run, "--set", "data.n_docs=1000"))
    assert "data.n_docs=1000" in line  # refused inside the run (the corpus), with the lock held
    assert not (tmp_path / "a").exists()


@pytest.mark.slow
def test_the_lock_is_gone_after_a_preemption_and_the_rerun_takes_it(tmp_path, model_dir,
                                                                    monkeypatch):
    job, run = write_job(tmp_path, model_dir), tmp_path / "run"
    code, _, err = finish(magic("attribute", job, "--out", str(run), "--quiet",
                                wrapper_at=("train", 2), cache=tmp_path / "cache"))
    assert code == EXIT_PREEMPTED, err
    assert not lock_path(run).exists()
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))
    res = attribute(job, run)
    assert res.exit_code == 0, res.output
    assert "lock" not in res.stderr  # nothing to take over
    assert json.loads((run / "progress.json").read_text())["status"] == "done"
    assert not lock_path(run).exists()


# -- every command, every rank ---------------------------------------------------------------
def test_unlearn_sweep_and_demo_refuse_a_busy_directory(config, tmp_path):
    run = tmp_path / "out"
    plant_lock(run, pid=1234, host="node-gone-7")
    for args in (["unlearn", str(config)], ["sweep", str(config), "--param", "lr=1e-4,1e-3"],
                 ["demo", "--out", str(run), "--device", "cpu"]):
        res = CliRunner().invoke(main, [*args, "--quiet"])
        assert f"{run} is in use by magic attribute (pid 1234 on host node-gone-7" in \
            one_line(res), args
    assert not run.exists()


def test_runs_inside_a_sweep_or_the_demo_record_the_command_that_was_started(tmp_path):
    outer, inner = tmp_path / "sweep", tmp_path / "sweep" / "000"
    with run_dir_lock(outer, "magic sweep"), run_dir_lock(inner, "magic unlearn"):
        record = json.loads(lock_path(inner).read_text())
        assert record["command"] == "magic sweep" and record["pid"] == os.getpid()
        assert record["host"] == HOST and record["started"] == process_start(os.getpid())
        with pytest.raises(ConfigError, match=r"sweep/000 is in use by magic sweep \(pid "):
            with run_dir_lock(inner, "magic unlearn"):
                pass
    assert not lock_path(inner).exists() and not lock_path(outer).exists()
    assert not outer.exists()  # made for the inner lock, empty again


def test_a_run_dir_in_a_folder_it_cannot_write_is_locked_inside(tmp_path, monkeypatch):
    # Tests run as root here, which writes anywhere: the folder's refusal is simulated.
    run = tmp_path / "scratch" / "alice"
    run.mkdir(parents=True)
    monkeypatch.setattr(run_lock, "_writable", lambda folder: folder != run.parent)
    assert lock_path(run) == run / ".run.lock"
    assert lock_path(tmp_path / "scratch" / "bob") == tmp_path / "scratch" / ".bob.lock"  # not there yet
    with run_dir_lock(run, "magic demo"):
        assert json.loads((run / ".run.lock").read_text())["command"] == "magic demo"
        with pytest.raises(ConfigError, match="alice is in use by magic demo"):
            with run_dir_lock(tmp_path / "scratch" / ".." / "scratch" / "alice", "magic demo"):
                pass
    assert sorted(run.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("busy", [False, True], ids=["free", "busy"])
def test_under_two_ranks_rank_zero_holds_the_lock_and_a_refusal_reaches_both(tmp_path, busy):
    run = tmp_path / "run"
    if busy:
        plant_lock(run, pid=1234, host="node-gone-7")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, "-c", RANK, str(run), str(rank), str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in (0, 1)]
    said = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        said.append(out.strip())
    if busy:
        assert all(s.startswith("refused: ") and "node-gone-7" in s for s in said), said
        assert lock_path(run).is_file()
    else:
        assert said == [f"in {procs[0].pid}"] * 2, said
        assert not lock_path(run).exists()

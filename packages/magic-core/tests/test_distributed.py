"""Reading the launcher's environment (no process group is started here)."""

import magic_core as mc
import pytest
import torch.distributed as dist
from magic_core import distributed
from magic_core.batch_stream import check_rows_per_rank
from magic_core.distributed import (
    Launch,
    first_host,
    init_from_environment,
    launch_from_environment,
)


def test_no_launcher_is_a_single_process_and_initializes_nothing():
    assert launch_from_environment({}) == Launch()
    assert init_from_environment(env={"RANK": "0", "WORLD_SIZE": "1"}).world_size == 1
    assert not dist.is_initialized()


def test_torchrun_variables():
    env = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "GROUP_RANK": "1",
           "MASTER_ADDR": "10.0.0.7", "MASTER_PORT": "29400",
           "SLURM_PROCID": "0", "SLURM_NTASKS": "2"}  # torchrun under srun: torchrun wins
    assert launch_from_environment(env) == Launch(
        rank=3, world_size=8, local_rank=1, node_rank=1, master_addr="10.0.0.7",
        master_port=29400, launcher="torchrun",
    )


def test_slurm_variables_without_scontrol(monkeypatch):
    monkeypatch.setattr(distributed.shutil, "which", lambda name: None)
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NODEID": "2",
           "SLURM_JOB_NODELIST": "gpu[007-010,012],cpu1", "SLURM_JOB_ID": "123456"}
    launch = launch_from_environment(env)
    assert launch == Launch(rank=5, world_size=8, local_rank=1, node_rank=2,
                            master_addr="gpu007", master_port=15000 + 123456 % 20000,
                            launcher="slurm")
    # Every task derives the same port; explicit variables override both guesses.
    override = launch_from_environment({**env, "MASTER_ADDR": "head", "MASTER_PORT": "1234"})
    assert (override.master_addr, override.master_port) == ("head", 1234)


def test_slurm_asks_scontrol_first(monkeypatch):
    calls = []

    class Done:
        stdout = "node-a\nnode-b\n"

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return Done()

    monkeypatch.setattr(distributed.shutil, "which", lambda name: "/usr/bin/scontrol")
    monkeypatch.setattr(distributed.subprocess, "run", fake_run)
    env = {"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "node-[a-b]"}
    assert launch_from_environment(env).master_addr == "node-a"
    assert calls == [["scontrol", "show", "hostnames", "node-[a-b]"]]


@pytest.mark.parametrize("nodelist, host", [
    ("node1", "node1"),
    ("node1,node2", "node1"),
    ("gpu[07-09,12]", "gpu07"),
    ("gpu[3,5-6],cpu[1-2]", "gpu3"),
    ("rack[1-2]-ib,login", "rack1-ib"),
])
def test_first_host_of_a_hostlist(nodelist, host):
    assert first_host(nodelist) == host


def test_bad_values_are_config_errors():
    with pytest.raises(mc.ConfigError, match="RANK"):
        launch_from_environment({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(mc.ConfigError, match="outside"):
        init_from_environment(env={"RANK": "2", "WORLD_SIZE": "2"})


def test_every_batch_needs_a_row_per_rank():
    check_rows_per_rank(12, 4, 2)
    check_rows_per_rank(12, 3, 2)  # uneven split of rows is fine
    check_rows_per_rank(10, 4, 2)  # last batch of 2 rows
    with pytest.raises(mc.ConfigError, match="multiple of 4"):
        check_rows_per_rank(10, 4, 4)  # last batch of 2 rows for 4 ranks
    with pytest.raises(mc.ConfigError, match="batch of 1 rows"):
        check_rows_per_rank(12, 1, 2)

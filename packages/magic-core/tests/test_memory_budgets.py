"""Kept-state budgets: a rank's share of its node's memory, and the disk room of a spill folder."""

from __future__ import annotations

import pytest
import torch
from magic_core import keep_schedule, memory, state_store
from magic_core.keep_schedule import disk_free, resolve_schedule
from magic_core.memory import host_memory_share, ranks_on_this_node

GIB = 2**30


@pytest.mark.parametrize("env, ranks", [
    ({}, 1),
    ({"LOCAL_WORLD_SIZE": "4"}, 4),  # torchrun
    ({"LOCAL_WORLD_SIZE": "2", "SLURM_PROCID": "0", "SLURM_NTASKS_PER_NODE": "4"}, 2),
    ({"SLURM_PROCID": "3", "SLURM_NTASKS_PER_NODE": "4"}, 4),  # srun --ntasks-per-node
    ({"SLURM_PROCID": "3", "SLURM_TASKS_PER_NODE": "4(x2),3"}, 4),  # the most on any node
    ({"SLURM_NTASKS_PER_NODE": "4"}, 1),  # a batch script's own process, not a task of srun
    ({"LOCAL_WORLD_SIZE": "x"}, 1),
])
def test_ranks_on_this_node_reads_the_launchers_variables(env, ranks):
    assert ranks_on_this_node(env) == ranks


def test_each_rank_of_a_node_counts_on_its_share_of_the_memory(monkeypatch):
    monkeypatch.setattr(memory, "available_host_memory", lambda: 64 * GIB)
    assert host_memory_share({}) == 64 * GIB
    assert host_memory_share({"LOCAL_WORLD_SIZE": "4"}) == 16 * GIB


def test_default_budgets_divide_the_nodes_memory_among_its_ranks(monkeypatch):
    """4 ranks on a node each taking half of its memory would ask for twice what it has."""
    monkeypatch.setattr(memory, "available_host_memory", lambda: 64 * GIB)
    monkeypatch.setattr(state_store, "available_host_memory", lambda: 64 * GIB, raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    cuda = state_store.default_budgets(torch.device("cuda"))
    assert cuda == (0, 8 * GIB)  # half of a quarter
    monkeypatch.setattr(memory, "available_host_memory", lambda: 512 * 2**20)
    monkeypatch.setattr(state_store, "available_host_memory", lambda: 512 * 2**20, raising=False)
    # On CPUs the in-memory tier is 128 MiB or half the rank's share, the less.
    assert state_store.default_budgets(torch.device("cpu")) == (64 * 2**20, 0)


def test_a_spill_folder_not_created_yet_has_its_parents_room(tmp_path):
    missing = tmp_path / "not" / "yet"
    assert disk_free(missing) == disk_free(tmp_path) > 0
    no_room = {"device": 0, "host": 0}
    # A sharded run's auto spills every state when the disk will hold them, created or not.
    assert resolve_schedule("auto", 64, 10**6, no_room, str(missing), gradients_apply=False) == "all"


def test_no_readable_disk_counts_no_room(tmp_path, monkeypatch):
    def unreadable(path):
        raise OSError("stale handle")

    monkeypatch.setattr(keep_schedule.shutil, "disk_usage", unreadable)
    assert disk_free(tmp_path) is None
    no_room = {"device": 0, "host": 0}
    assert resolve_schedule("auto", 64, 10**6, no_room, str(tmp_path), gradients_apply=False) == "sqrt"

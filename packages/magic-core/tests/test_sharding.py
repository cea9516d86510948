"""Sharded (FSDP) attribution equals the unsharded single-process run of the same job.

Two gloo ranks on the CPU (DTensor and bergson's simple_fsdp work on a CPU
mesh), float64, 6 documents x 2 epochs, adam, sqrt kept-state schedule. Documents of
different lengths give the ranks different token counts; an MLP width of 33
splits some parameters unevenly; batch size 3 splits rows 2/1; clipping puts
the global gradient norm (a reduction over shards) into the step; GPT-2 ties
its input and output embeddings.
"""

import socket
import sys
from pathlib import Path

import magic_core as mc
import pytest
import torch
import torch.multiprocessing as mp
from magic_core.sharding import InMemoryShards
from torch.distributed.tensor import Shard

JOBS = [
    {"model": "neox", "optimizer": "adam", "batch_size": 2, "granularity": "per-token",
     "max_grad_norm": 0.5},
    # Every kept state on disk: sharded states are stored and read back per rank.
    {"model": "gpt2", "optimizer": "adam", "batch_size": 3, "granularity": "per-example",
     "device_memory": "0"},
]
TOL = 1e-10  # relative to the largest score


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def worker():
    # Spawned children import the worker by name through the parent's sys.path.
    here = str(Path(__file__).parent)
    sys.path.insert(0, here)
    try:
        import magic_core_fsdp_worker

        yield magic_core_fsdp_worker
    finally:
        sys.path.remove(here)


@pytest.mark.parametrize("n", [1, 5, 16, 33, 152])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_shards_are_the_slices_shard0_describes(n, world_size):
    param = torch.arange(n * 2, dtype=torch.float64).reshape(n, 2)
    pieces = [InMemoryShards(world_size, r).local("w", param) for r in range(world_size)]
    for rank, piece in enumerate(pieces):
        size, offset = Shard.local_shard_size_and_offset(n, world_size, rank)
        assert piece.shape[0] == size
        if size:
            assert torch.equal(piece, param[offset:offset + size])
    assert torch.equal(torch.cat(pieces), param)


def test_fsdp_without_torch_distributed_is_refused(make_neox, tokenizer, small_corpus,
                                                   hazard_questions):
    with pytest.raises(mc.ConfigError, match="needs a torch.distributed run"):
        mc.attribute(
            make_neox(), tokenizer, small_corpus,
            mc.MultipleChoiceObjective(hazard_questions, tokenizer),
            mc.TrainConfig(precision="fp64", max_seq_len=24),
            mc.AttributionConfig(sharding="fsdp"), progress=False,
        )


def test_unknown_sharding_is_a_config_error():
    with pytest.raises(mc.ConfigError, match="attribution.sharding"):
        mc.from_mapping(mc.AttributionConfig, {"sharding": "fdsp"}, "attribution")


@pytest.mark.slow
def test_two_sharded_ranks_score_like_one_process(worker, tmp_path):
    mp.spawn(worker.run_rank, args=(2, free_port(), str(tmp_path), JOBS), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for job, *sharded in zip(JOBS, *ranks):
        single = worker.attribute(job)
        assert bool(single["tied"]) == (job["model"] == "gpt2")
        for rank, got in enumerate(sharded):
            for key in ("per_example", "per_token", "losses"):
                if single[key] is None:
                    assert got[key] is None
                    continue
                err = float((got[key] - single[key]).abs().max() / single[key].abs().max())
                print(f"{job} rank {rank} {key}: max relative error {err:.2e}")
                assert err <= TOL, (job, rank, key, err)
            for key in ("query_before", "query_after"):
                assert abs(got[key] - single[key]) <= TOL * abs(single[key]), (job, key)
            assert got["tied"] == single["tied"]
            if job.get("device_memory") == "0":
                assert got["kept"]["placed"]["disk"] > 0 == got["kept"]["placed"]["device"]


@pytest.mark.slow
def test_a_stopped_sharded_run_resumes_to_identical_scores(worker, tmp_path):
    # Each rank stores its own shards of the states, query gradient and cotangents.
    stops = [("train", 2), ("query", 1), ("backward", 3)]  # requested on rank 0 only
    job = {"model": "neox", "optimizer": "adam", "batch_size": 4, "granularity": "per-token",
           "max_grad_norm": 0.5}
    mp.spawn(worker.run_rank_preempted, args=(2, free_port(), str(tmp_path), job, stops),
             nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for rank in ranks:
        assert rank["stopped"] == stops
        assert torch.equal(rank["got"]["per_token"], rank["want"]["per_token"])
        assert torch.equal(rank["got"]["losses"], rank["want"]["losses"])
        assert rank["got"]["query_after"] == rank["want"]["query_after"]
    assert torch.equal(ranks[0]["got"]["per_token"], ranks[1]["got"]["per_token"])


@pytest.mark.slow
def test_sharded_checkpoints_list_kept_shards_by_reference_and_resume_identically(worker, tmp_path):
    # Every kept state spills (device_memory 0): each rank into its own folder; a checkpoint after
    # every step; killed in the backward, resumed; then a corrupted spill file of rank 1.
    job = {"model": "neox", "optimizer": "adam", "batch_size": 2, "granularity": "per-token",
           "device_memory": "0"}
    mp.spawn(worker.run_rank_durable, args=(2, free_port(), str(tmp_path), job, ["backward", 3],
                                            ["train", 4]), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for r, got in enumerate(ranks):
        assert torch.equal(got["got"]["per_token"], got["want"]["per_token"])
        assert torch.equal(got["got"]["losses"], got["want"]["losses"])
        assert got["got"]["query_after"] == got["want"]["query_after"]
        folder = (tmp_path / "run" / "kept-states" / f"rank-{r:05d}").resolve()
        spilled = {e["group"]: e["path"] for h in got["headers"] for e in h["files"].values()
                   if e.get("path") and e["rank"] == r}
        assert spilled and all(Path(p).parent == folder for p in spilled.values())
        for header, names in zip(got["headers"], got["written"]):
            if header["phase"] == "train":
                # Training's checkpoints write this rank's current state (rank 0: the log) only.
                assert set(names) - {"log.safetensors", f"train-{header['step']:06d}-log.safetensors"} \
                    == {f"train-{header['step']:06d}-rank{r:04d}.safetensors"}, names
        written = [n for names in got["written"] for n in names]
        lasting = [n for n in written if n.startswith(("kept-", "query"))]
        assert len(lasting) == len(set(lasting)), "a kept shard was written twice"
        assert not any(n.startswith(tuple(spilled)) for n in written), "a spilled shard was written"
        assert got["swept"], "a killed process's later spill is swept on resume"
        assert not [p for p in got["left"] if p.endswith(".safetensors")]
        message = got["refusal"]
        assert message is not None and "\n" not in message
        assert got["corrupted"] in message and "corrupted" in message
    assert torch.equal(ranks[0]["got"]["per_token"], ranks[1]["got"]["per_token"])

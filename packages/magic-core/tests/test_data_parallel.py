"""Data-parallel attribution equals the single-process run of the same job.

Two gloo ranks on the CPU, float64, tiny GPT-NeoX, 6 documents x 2 epochs,
adam, sqrt kept-state schedule (and one job with the gradients schedule). The batch sizes give each rank documents of
different lengths (so the ranks' token counts differ) and, at 3, an uneven
split of rows; clipping puts the global gradient norm into the step.
"""

import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

JOBS = [
    {"batch_size": 2, "granularity": "per-example"},
    {"batch_size": 4, "granularity": "per-token"},
    {"batch_size": 3, "granularity": "per-example", "max_grad_norm": 0.5},
    # Replays apply each step's reduced, clipped gradient again.
    {"batch_size": 3, "granularity": "per-token", "max_grad_norm": 0.5, "kept_states": "gradients"},
]
TOL = 1e-10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    # Spawned children import the worker by name through the parent's sys.path.
    here = str(Path(__file__).parent)
    sys.path.insert(0, here)
    try:
        import magic_core_dp_worker

        yield magic_core_dp_worker
    finally:
        sys.path.remove(here)


@pytest.mark.slow
def test_two_ranks_score_like_one_process(worker, tmp_path):
    mp.spawn(worker.run_rank, args=(2, free_port(), str(tmp_path), JOBS), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for job, *distributed in zip(JOBS, *ranks):
        single = worker.attribute(job)
        for rank, got in enumerate(distributed):
            for key in ("per_example", "per_token", "losses"):
                if single[key] is None:
                    assert got[key] is None
                    continue
                err = float((got[key] - single[key]).abs().max())
                print(f"{job} rank {rank} {key}: max abs error {err:.2e}")
                assert err <= TOL, (job, rank, key, err)
            assert abs(got["query_after"] - single["query_after"]) <= TOL

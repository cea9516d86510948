"""A spawned rank resuming a checkpoint that one process wrote (a plain module, so spawn can
import it): the data-parallel job of `magic_core_preempt_worker`, run to its end."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from magic_core.distributed import init_from_environment, shutdown
from magic_core_preempt_worker import StopOnRankZero, attribute


def run_rank_resuming(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    init_from_environment(backend="gloo")
    try:
        got = attribute(StopOnRankZero(Path(out_dir) / "run", None, rank))
    finally:
        shutdown()
    torch.save({"got": got.per_token, "losses": got.train_losses}, Path(out_dir) / f"rank{rank}.pt")

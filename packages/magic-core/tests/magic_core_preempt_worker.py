"""One spawned rank of the data-parallel preemption test (a plain module, so spawn can import it).

Each rank runs the same job three ways in one process group: uninterrupted;
stopped by a request on rank 0 alone (the ranks must agree to stop at the
same step); and resumed until it finishes. It saves what it got.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path

import magic_core as mc
import magic_datasets as md
import torch
from magic_core import preemption
from magic_core.distributed import init_from_environment, shutdown
from magic_core.phase_checkpoint import CheckpointStore
from magic_core.progress import ProgressFile
from magic_core.run_control import RunControl
from magic_datasets.world import World, build_tokenizer
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM


class StopOnRankZero(RunControl):
    def __init__(self, run_dir: Path, at, rank: int):
        super().__init__(CheckpointStore(run_dir / "checkpoints", {"job": "dp"}),
                         ProgressFile(run_dir, enabled=rank == 0))
        self.at, self.rank = at, rank

    def after_step(self, phase, step, total, snapshot):
        if (phase, step) == self.at and self.rank == 0:
            preemption.request_stop("test")
        super().after_step(phase, step, total, snapshot)


def attribute(control: RunControl | None):
    tokenizer = build_tokenizer(World())
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, attn_implementation="eager"))
    train = mc.TrainConfig(optimizer="adam", lr=1e-2, batch_size=4, epochs=2, precision="fp64",
                           max_seq_len=24, seed=0, max_grad_norm=0.5)
    with preemption.handle_signals(), control.progress if control else nullcontext():
        return mc.attribute(
            model, tokenizer, md.load("world-attribution", n_docs=6, k_planted=2),
            mc.MultipleChoiceObjective(md.load("world-hazard-mcqa").select(range(6)), tokenizer),
            train, mc.AttributionConfig(kept_states="sqrt", granularity="per-token"),
            progress=False, control=control)


def run_rank(rank: int, world_size: int, port: int, out_dir: str, stops: list) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    init_from_environment(backend="gloo")
    run_dir = Path(out_dir) / "run"
    stopped = []
    try:
        want = attribute(None)
        for at in stops:
            try:
                attribute(StopOnRankZero(run_dir, tuple(at), rank))
            except preemption.Preempted as exc:
                stopped.append((exc.phase, exc.step))
        got = attribute(StopOnRankZero(run_dir, None, rank))
    finally:
        shutdown()
    torch.save({"want": want.per_token, "got": got.per_token, "stopped": stopped,
                "losses": (want.train_losses, got.train_losses),
                "files": sorted(p.name for p in (run_dir / "checkpoints").iterdir())},
               Path(out_dir) / f"rank{rank}.pt")

"""One attribution job, run alike by a single process and by each spawned rank.

A plain module (not a test file) so `torch.multiprocessing.spawn` can import
it in its children: the test puts this folder on ``sys.path``, which spawned
children inherit. The model, corpus and query are rebuilt here because
pytest fixtures do not cross into the children; they are conftest's tiny
GPT-NeoX and data, at 6 documents.
"""

from __future__ import annotations

import os
from pathlib import Path

import magic_core as mc
import magic_datasets as md
import torch
from magic_core.distributed import init_from_environment, shutdown
from magic_datasets.world import World, build_tokenizer
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM


def attribute(job: dict) -> dict[str, torch.Tensor | None]:
    """Scores of one job: ``batch_size``, ``granularity`` and ``max_grad_norm`` vary."""
    tokenizer = build_tokenizer(World())
    cfg = GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, attn_implementation="eager",
    )
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(cfg)
    corpus = md.load("world-attribution", n_docs=6, k_planted=2)
    objective = mc.MultipleChoiceObjective(
        md.load("world-hazard-mcqa").select(range(6)), tokenizer
    )
    train = mc.TrainConfig(
        optimizer="adam", lr=1e-2, batch_size=job["batch_size"], epochs=2, precision="fp64",
        max_seq_len=24, seed=0, max_grad_norm=job.get("max_grad_norm"),
    )
    result = mc.attribute(
        model, tokenizer, corpus, objective, train,
        mc.AttributionConfig(kept_states=job.get("kept_states", "sqrt"), granularity=job["granularity"]), progress=False,
    )
    return {"per_example": result.per_example, "per_token": result.per_token,
            "losses": torch.tensor(result.train_losses), "query_after": result.query_after}


def run_rank(rank: int, world_size: int, port: int, out_dir: str, jobs: list[dict]) -> None:
    """A spawned rank: join through torchrun's variables, run every job, save the scores."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)  # the ranks share a small machine
    launch = init_from_environment(backend="gloo")
    assert launch.world_size == world_size and launch.rank == rank
    try:
        results = [attribute(job) for job in jobs]
    finally:
        shutdown()
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")

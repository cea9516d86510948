"""One attribution job, run alike unsharded by a single process and sharded by each spawned rank.

A plain module (not a test file) so `torch.multiprocessing.spawn` can import
it in its children (the test puts this folder on ``sys.path``). The models
are conftest's tiny GPT-NeoX (untied) and GPT-2 (tied embeddings) with an
MLP width of 33, so that some parameters split unevenly over two ranks.
"""

from __future__ import annotations

import os
from pathlib import Path

import magic_core as mc
import magic_datasets as md
import torch
from magic_core.distributed import init_from_environment, shutdown
from magic_datasets.world import World, build_tokenizer
from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM


def build_model(kind: str, vocab_size: int):
    torch.manual_seed(0)
    if kind == "neox":
        return GPTNeoXForCausalLM(GPTNeoXConfig(
            vocab_size=vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=33, max_position_embeddings=64, attn_implementation="eager",
        ))
    model = GPT2LMHeadModel(GPT2Config(
        vocab_size=vocab_size, n_embd=16, n_layer=2, n_head=2, n_inner=33, n_positions=64,
        attn_implementation="eager", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=None,
    ))
    model.tie_weights()
    return model


def attribute(job: dict, sharding: str = "none", control=None) -> dict:
    """Scores of one job: ``model``, ``optimizer``, ``batch_size``, ``granularity``,
    ``max_grad_norm``, ``device_memory`` (0: every kept state goes to disk)."""
    tokenizer = build_tokenizer(World())
    model = build_model(job["model"], len(tokenizer))
    corpus = md.load("world-attribution", n_docs=6, k_planted=2)
    objective = mc.MultipleChoiceObjective(md.load("world-hazard-mcqa").select(range(5)), tokenizer)
    train = mc.TrainConfig(
        optimizer=job["optimizer"], lr=1e-2, batch_size=job["batch_size"], epochs=2,
        precision="fp64", max_seq_len=24, seed=0, max_grad_norm=job.get("max_grad_norm"),
    )
    result = mc.attribute(
        model, tokenizer, corpus, objective, train,
        mc.AttributionConfig(kept_states="sqrt", granularity=job["granularity"], sharding=sharding,
                             device_memory=job.get("device_memory", "auto")),
        progress=False, control=control,
    )
    return {"per_example": result.per_example, "per_token": result.per_token,
            "losses": torch.tensor(result.train_losses), "query_after": result.query_after,
            "query_before": result.query_before, "tied": result.tied_parameters,
            "kept": result.kept_states}


def run_rank(rank: int, world_size: int, port: int, out_dir: str, jobs: list[dict]) -> None:
    """A spawned rank: join through torchrun's variables, run every job sharded, save the scores."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)  # the ranks share a small machine
    init_from_environment(backend="gloo")
    try:
        results = [attribute(job, sharding="fsdp") for job in jobs]
    finally:
        shutdown()
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")


def run_rank_preempted(rank: int, world_size: int, port: int, out_dir: str, job: dict,
                       stops: list) -> None:
    """A spawned rank: the sharded job uninterrupted, then stopped at each of ``stops`` in turn
    (requested on rank 0 only) and resumed to the end, as `magic_core_preempt_worker` does."""
    from contextlib import nullcontext

    from magic_core import preemption
    from magic_core_preempt_worker import StopOnRankZero

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    init_from_environment(backend="gloo")
    run_dir = Path(out_dir) / "run"

    def run(control):
        with preemption.handle_signals(), control.progress if control else nullcontext():
            return attribute(job, "fsdp", control)

    stopped = []
    try:
        want = run(None)
        for at in stops:
            try:
                run(StopOnRankZero(run_dir, tuple(at), rank))
            except preemption.Preempted as exc:
                stopped.append((exc.phase, exc.step))
        got = run(StopOnRankZero(run_dir, None, rank))
    finally:
        shutdown()
    torch.save({"want": want, "got": got, "stopped": stopped}, Path(out_dir) / f"rank{rank}.pt")


def run_rank_durable(rank: int, world_size: int, port: int, out_dir: str, job: dict,
                     kill_at: list, corrupt_at: list) -> None:
    """A spawned rank of the durable sharded checkpoint test: the job uninterrupted; then with a
    checkpoint after every step, "killed" (an exception out of a step on every rank, no cleanup)
    after ``kill_at`` and rerun to the end; then killed after ``corrupt_at`` in a second run
    directory, rank 1's last listed spill file corrupted, and rerun (refused). Saves the scores,
    whether a stray spill in the rank's folder was swept on resume,
    each checkpoint's header and bytes, the names each checkpoint wrote and the refusal."""
    import json
    from contextlib import nullcontext

    import torch.distributed as dist
    from magic_core import preemption
    from magic_core.phase_checkpoint import CheckpointError, CheckpointStore
    from magic_core.progress import ProgressFile
    from magic_core.run_control import RunControl

    class Killed(Exception):
        pass

    class Periodic(RunControl):
        def __init__(self, run_dir: Path, kill=None):
            super().__init__(CheckpointStore(run_dir / "checkpoints", {"job": "fsdp"}),
                             ProgressFile(run_dir, enabled=rank == 0), checkpoint_every=1e-9)
            self.kill, self.headers, self.written = kill, [], []
            original = self.store._write

            def write(name, *args):
                self.written[-1].append(name)
                return original(name, *args)
            self.store._write = write

        def after_step(self, phase, step, total, snapshot):
            self.written.append([])
            super().after_step(phase, step, total, snapshot)
            self.headers.append(json.loads(self.store.header.read_text()))
            if (phase, step) == self.kill:
                raise Killed

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    init_from_environment(backend="gloo")

    def run(control):
        with preemption.handle_signals(), control.progress if control else nullcontext():
            return attribute(job, "fsdp", control)

    out = Path(out_dir)
    try:
        want = run(None)
        killed = Periodic(out / "run", tuple(kill_at))
        try:
            run(killed)
        except Killed:
            pass
        # A spill the killed process made after its last checkpoint, swept on resume.
        folder = out / "run" / "kept-states" / f"rank-{rank:05d}"
        stray = folder / "state-0000009-deadbeef0000.safetensors"
        stray.write_bytes(b"partial")
        resumed = Periodic(out / "run")
        got = run(resumed)
        swept = not stray.exists()
        resumed.finished()
        left = sorted(str(p.relative_to(out)) for p in (out / "run").rglob("*") if p.is_file())

        corrupted = Periodic(out / "corrupt", tuple(corrupt_at))
        try:
            run(corrupted)
        except Killed:
            pass
        spills = [e["path"] for e in corrupted.headers[-1]["files"].values()
                  if e.get("path") and e["rank"] == 1]
        if rank == 1:
            with open(spills[-1], "r+b") as f:  # same size, other bytes
                f.seek(f.seek(0, 2) // 2)
                f.write(b"\xff" * 64)
        dist.barrier()
        try:
            run(Periodic(out / "corrupt"))
            refusal = None
        except CheckpointError as exc:
            refusal = str(exc)
    finally:
        shutdown()
    torch.save({"want": want, "got": got, "headers": killed.headers, "written": killed.written,
                "saves": killed.saves, "resumed_saves": resumed.saves, "left": left, "swept": swept,
                "corrupted": spills[-1], "refusal": refusal}, out / f"rank{rank}.pt")

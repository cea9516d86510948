"""A run stopped on one world size resumes on another: data-parallel shares regroup, shards refuse.

The 2-rank to 1-process direction is in test_preemption (it reuses that test's
2-rank checkpoint); here one process stops in the backward and two gloo
ranks finish it, within 1e-10 relative of an uninterrupted single process
(float64; the sums of the shares are added in another order).
"""

import json
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from magic_core import preemption
from magic_core.phase_checkpoint import CheckpointError, CheckpointStore, Snapshot

TOL = 1e-10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max()) / float(want.abs().max())


@pytest.mark.slow
@pytest.mark.parametrize("at", [("backward", 2), ("train", 3)])
def test_one_process_stopped_resumes_on_two_ranks(tmp_path, monkeypatch, at):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import magic_core_preempt_worker as worker
    import magic_core_world_worker

    want = worker.attribute(None)
    with pytest.raises(preemption.Preempted):
        worker.attribute(worker.StopOnRankZero(tmp_path / "run", at, 0))
    mp.spawn(magic_core_world_worker.run_rank_resuming, args=(2, _free_port(), str(tmp_path)),
             nprocs=2, join=True)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert relative_error(got["got"], want.per_token) <= TOL, rank
        # Training before the stop is the one process's, bit for bit.
        before = at[1] if at[0] == "train" else len(want.train_losses)
        assert got["losses"][:before] == want.train_losses[:before]
    progress = json.loads((tmp_path / "run" / "progress.json").read_text())
    assert progress["status"] == "done"
    assert (progress["resumed_from"]["phase"], progress["resumed_from"]["step"]) == at


def _saved(directory, world_bound: bool, value: float = 1.0) -> dict:
    """A one-rank checkpoint with a per-rank file, its header edited to say 2 ranks wrote it."""
    store = CheckpointStore(directory, {"job": "x"})
    store.save("backward", 3, 8, Snapshot({"log": {"losses": torch.zeros(2)}},
                                          {"weight_grads": torch.full((4,), value)},
                                          world_bound=world_bound))
    header = json.loads(store.header.read_text())
    header["world_size"] = 2
    store.header.write_text(json.dumps(header))
    return header


def test_shards_saved_by_two_ranks_are_refused_in_one_line_naming_both_sizes(tmp_path):
    _saved(tmp_path / "ck", world_bound=True)
    with pytest.raises(CheckpointError) as refused:
        CheckpointStore(tmp_path / "ck", {"job": "x"}).load()
    message = str(refused.value)
    assert message == (
        f"checkpoint {tmp_path / 'ck'} holds the shards of a sharded (fsdp) run on 2 rank(s) and "
        f"this run has 1; rerun on 2 rank(s) to resume, or with --restart (or delete "
        f"{tmp_path / 'ck'}) to start over")
    assert "\n" not in message


def test_shares_of_two_ranks_go_to_the_one_rank_that_takes_them_over(tmp_path):
    header = _saved(tmp_path / "ck", world_bound=False, value=1.0)
    other = _saved(tmp_path / "other", world_bound=False, value=2.0)
    mine, theirs = "backward-000003-rank0000.safetensors", "backward-000003-rank0001.safetensors"
    (tmp_path / "ck" / theirs).write_bytes((tmp_path / "other" / mine).read_bytes())
    header["files"][theirs] = {**other["files"][mine], "rank": 1}  # as rank 1 wrote it
    (tmp_path / "ck" / "checkpoint.json").write_text(json.dumps(header))

    loaded = CheckpointStore(tmp_path / "ck", {"job": "x"}).load()
    assert loaded.saved_world_size == 2
    assert [p["weight_grads"].tolist() for p in loaded.per_rank_parts] == [[1.0] * 4, [2.0] * 4]

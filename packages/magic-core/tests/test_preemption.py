"""Stopping an attribution after any step and rerunning it gives the uninterrupted scores, bit for bit.

Tiny GPT-NeoX, float64, 5 documents x 2 epochs at batch 2: 5 steps. A stop
is requested the way the signal handler does (`request_stop`) after a
chosen step, or by a real SIGTERM; the rerun finds the checkpoint and must
produce torch.equal scores, losses and query values.
"""

import json
import os
import signal
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from magic_core import preemption
from magic_core.phase_checkpoint import CheckpointError, CheckpointStore
from magic_core.progress import ProgressFile
from magic_core.run_control import RunControl


class StopAfter(RunControl):
    """Requests a stop after ``(phase, step)`` finished, or sends this process a real signal."""

    def __init__(self, run_dir, at=None, signal_number=None, job="test"):
        super().__init__(CheckpointStore(run_dir / "checkpoints", {"job": job}), ProgressFile(run_dir))
        self.at, self.signal_number = at, signal_number

    def after_step(self, phase, step, total, snapshot):
        if (phase, step) == self.at:
            if self.signal_number is None:
                preemption.request_stop("test")
            else:
                os.kill(os.getpid(), self.signal_number)
        super().after_step(phase, step, total, snapshot)


@pytest.fixture(scope="module")
def run(resumable_run):
    return resumable_run


STOPS = [("train", 2, "sqrt"), ("train", 5, "log"), ("query", 1, "sqrt"),
         ("backward", 1, "sqrt"), ("backward", 3, "log"), ("backward", 4, "all"),
         ("train", 3, "gradients"), ("query", 1, "gradients"), ("backward", 2, "gradients")]


@pytest.mark.parametrize("phase, step, schedule", STOPS)
def test_a_stopped_phase_resumes_to_identical_scores(phase, step, schedule, run, uninterrupted,
                                                     tmp_path, assert_identical):
    with pytest.raises(preemption.Preempted) as stopped:
        run(StopAfter(tmp_path, (phase, step)), schedule)
    assert (stopped.value.phase, stopped.value.step) == (phase, step)
    assert str(stopped.value).startswith(f"preempted at {phase} step {step}/")
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["status"] == "preempted" and progress["phase"] == phase
    assert progress["last_checkpoint"]["step"] == step

    resumed = run(StopAfter(tmp_path), schedule)
    assert_identical(resumed, uninterrupted(schedule))
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["status"] == "done" and progress["phases_done"] == ["train", "query", "backward"]


def test_a_real_sigterm_stops_after_the_step_and_every_phase_resumes(run, uninterrupted, tmp_path, assert_identical):
    # Stopped three times (training, query, backward), resumed each time.
    for at in [("train", 1), ("query", 1), ("backward", 2)]:
        with pytest.raises(preemption.Preempted) as stopped:
            run(StopAfter(tmp_path, at, signal.SIGTERM))
        assert (stopped.value.phase, stopped.value.step) == at and stopped.value.reason == "SIGTERM"
    assert_identical(run(StopAfter(tmp_path)), uninterrupted("sqrt"))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers are put back


def test_sigusr1_is_a_stop_request_too(run, tmp_path):
    with pytest.raises(preemption.Preempted) as stopped:
        run(StopAfter(tmp_path, ("train", 3), signal.SIGUSR1))
    assert stopped.value.reason == "SIGUSR1"


def test_nested_signal_handling_keeps_the_outer_handlers_and_a_pending_request():
    # A sweep handles signals around its runs, which handle them too.
    with preemption.handle_signals():
        ours = signal.getsignal(signal.SIGTERM)
        preemption.request_stop("between runs")
        with preemption.handle_signals():
            assert preemption.stop_requested() == "between runs"
        assert signal.getsignal(signal.SIGTERM) is ours
        assert preemption.stop_requested() == "between runs"
    assert preemption.stop_requested() is None


@pytest.fixture
def stopped_in_backward(run, tmp_path):
    with pytest.raises(preemption.Preempted):
        run(StopAfter(tmp_path, ("backward", 2)))
    header = json.loads((tmp_path / "checkpoints" / "checkpoint.json").read_text())
    assert header["phase"] == "backward" and header["fingerprint"]["job"] == "test"
    return tmp_path


def _largest_file(run_dir):
    return max((run_dir / "checkpoints").glob("*.safetensors"), key=lambda p: p.stat().st_size)


def test_a_truncated_checkpoint_file_is_reported_not_used(run, stopped_in_backward):
    victim = _largest_file(stopped_in_backward)
    victim.write_bytes(victim.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=f"{victim}.*truncated.*--restart"):
        run(StopAfter(stopped_in_backward))


def test_a_corrupted_checkpoint_file_is_reported_not_used(run, stopped_in_backward):
    victim = _largest_file(stopped_in_backward)
    data = bytearray(victim.read_bytes())
    data[-8] ^= 0xFF  # same size, one flipped byte in a tensor
    victim.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"{victim} is corrupted.*--restart"):
        run(StopAfter(stopped_in_backward))


def test_a_truncated_header_is_reported(run, stopped_in_backward):
    header = stopped_in_backward / "checkpoints" / "checkpoint.json"
    header.write_text(header.read_text()[:50])
    with pytest.raises(CheckpointError, match="checkpoint.json is unreadable.*--restart"):
        run(StopAfter(stopped_in_backward))


def test_a_checkpoint_of_another_job_is_refused(run, stopped_in_backward):
    with pytest.raises(CheckpointError, match=r"different job \(train differ\)"):
        run(StopAfter(stopped_in_backward), lr=2e-2)
    with pytest.raises(CheckpointError, match=r"different job \(attribution differ\)"):
        run(StopAfter(stopped_in_backward), schedule="log")
    with pytest.raises(CheckpointError, match=r"different job \(job differ\)"):
        run(StopAfter(stopped_in_backward, job="another"))


def test_where_kept_states_live_does_not_make_another_job(run, uninterrupted, stopped_in_backward, assert_identical):
    # A requeue onto a node with less memory spills kept states to disk: same numbers.
    resumed = run(StopAfter(stopped_in_backward), host_memory="0", device_memory="0",
                  spill_dir=str(stopped_in_backward / "spill"))
    assert_identical(resumed, uninterrupted("sqrt"))


def test_clearing_the_store_starts_over(run, uninterrupted, stopped_in_backward, assert_identical):
    control = StopAfter(stopped_in_backward)
    control.store.clear()
    assert not (stopped_in_backward / "checkpoints").exists()
    assert_identical(run(control), uninterrupted("sqrt"))


def test_progress_file_contract(tmp_path):
    progress = ProgressFile(tmp_path / "run", interval=3600)
    assert not (tmp_path / "run").exists()  # nothing before the first phase
    with pytest.raises(RuntimeError), progress:
        progress.start("train", 10)
        progress.advance(1)  # within the interval: not written
        assert json.loads(progress.path.read_text())["step"] == 0
        progress.checkpoint("train", 1, tmp_path / "ck")
        raise RuntimeError
    data = json.loads(progress.path.read_text())
    assert set(data) == {"status", "phase", "step", "total", "phases_done", "history",
                         "last_checkpoint", "resumed_from", "updated", "host", "pid",
                         "slurm_job_id"}
    assert data["status"] == "failed" and data["step"] == 1 and data["pid"] == os.getpid()
    assert data["resumed_from"] is None  # this process started afresh
    assert data["last_checkpoint"]["phase"] == "train" and data["last_checkpoint"]["step"] == 1
    again = ProgressFile(tmp_path / "run")  # a rerun says "running" before its first phase
    assert json.loads(again.path.read_text())["status"] == "running"
    with again:
        again.start("query", 1)
        again.start("backward", 5)
    data = json.loads(again.path.read_text())
    assert data["status"] == "done" and data["phase"] == "done"
    assert data["phases_done"] == ["train", "query", "backward"]
    # train failed at step 1 of 10 in the first process: phases_done lists it, history does not
    assert data["history"] == [{"phase": "query", "step": 0, "total": 1},
                               {"phase": "backward", "step": 0, "total": 5}]


def test_a_refused_run_leaves_no_progress_file(tmp_path):
    with pytest.raises(ValueError), ProgressFile(tmp_path / "run"):
        raise ValueError
    assert not (tmp_path / "run").exists()



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_data_parallel_ranks_stop_together_and_resume_identically(tmp_path, monkeypatch):
    # Spawned children import the worker by name through the parent's sys.path.
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import magic_core_preempt_worker as worker

    stops = [("train", 2), ("backward", 3)]  # requested on rank 0 only
    mp.spawn(worker.run_rank, args=(2, _free_port(), str(tmp_path), stops), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for rank in ranks:
        assert rank["stopped"] == stops
        assert torch.equal(rank["got"], rank["want"])
        assert rank["losses"][0] == rank["losses"][1]
    assert torch.equal(ranks[0]["got"], ranks[1]["got"])
    # Cotangent shares differ per rank: one file each, next to the shared states.
    assert {"backward-000003-rank0000.safetensors", "backward-000003-rank0001.safetensors"} <= set(
        ranks[0]["files"])
    # The checkpoint of the last stop (backward 3 on 2 ranks) resumes in one process: the
    # shares of both ranks add up (test_world_size_resume has the reverse and the refusal).
    resumed = worker.attribute(worker.StopOnRankZero(tmp_path / "run", None, 0))
    want = ranks[0]["want"]
    assert float((resumed.per_token - want).abs().max()) <= 1e-10 * float(want.abs().max())
    progress = json.loads((tmp_path / "run" / "progress.json").read_text())
    assert progress["resumed_from"]["phase"] == "backward" and progress["resumed_from"]["step"] == 3

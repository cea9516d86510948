"""Stop requests: preemption and time-limit signals become a flag the loops check.

Slurm (and most schedulers) announce the end of a job with SIGTERM, or with
SIGUSR1 ahead of the time limit (``--signal=USR1@120``). Interrupting a
training or backward step would leave nothing worth saving, so the handler
only records the request; each loop checks it after a finished step, writes
a phase checkpoint and raises `Preempted`. Repeated signals change nothing:
a scheduler that sends USR1 and later TERM must not kill the checkpoint
write it asked for (SIGINT and SIGKILL still end the process at once).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist

SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None)) if s)

_requested: str | None = None
_depth = 0  # nesting of handle_signals: only the outermost installs, restores and clears


class Preempted(Exception):
    """The run stopped after a finished step on request; rerunning it resumes from ``checkpoint``."""

    def __init__(self, phase: str, step: int, total: int, checkpoint: Path | None, reason: str = "",
                 resumes_at: str | None = None):
        self.phase, self.step, self.total = phase, step, total
        self.checkpoint, self.reason, self.resumes_at = checkpoint, reason, resumes_at
        if resumes_at is not None:  # the final checkpoint would have outlasted the kill
            where = f"resumes from the periodic checkpoint after {resumes_at} ({checkpoint})"
        elif checkpoint:
            where = f"checkpoint written to {checkpoint}"
        else:
            where = "no checkpoint written"
        super().__init__(f"preempted at {phase} step {step}/{total}; {where}; "
                         "rerun the same command to resume")


def request_stop(reason: str = "stop requested") -> None:
    """Ask the running loops to stop after their current step (the first reason is kept)."""
    global _requested
    if _requested is None:
        _requested = reason


def stop_requested() -> str | None:
    """The reason of a pending stop request in this process, or None."""
    return _requested


def clear() -> None:
    global _requested
    _requested = None


def _on_signal(signum, frame) -> None:
    request_stop(signal.Signals(signum).name)


@contextmanager
def handle_signals() -> Iterator[None]:
    """SIGTERM and SIGUSR1 request a stop while inside; the previous handlers come back after.

    Nested uses (a sweep around its runs) keep the outer one's handlers and
    any request already made. Outside the main thread Python cannot install
    handlers, so there this is a no-op (`request_stop` still works).
    """
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    previous = {s: signal.signal(s, _on_signal) for s in SIGNALS}
    clear()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        for s, handler in previous.items():
            signal.signal(s, handler)
        clear()  # a request that came after the last step has nothing left to stop


def stop_agreed() -> bool:
    """Whether to stop after this step: a request on any rank stops every rank.

    Under torch.distributed this is a collective, so every rank must call it
    after the same step; a signal reaching the ranks a step apart then still
    stops them all together, and no rank waits in a collective for one that left.
    """
    return any_rank(_requested is not None)[0]


def any_rank(*flags: bool) -> tuple[bool, ...]:
    """Each flag, true when it is true on any rank (one collective for all of them)."""
    if not dist.is_initialized():
        return flags
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    agreed = torch.tensor([1.0 if f else 0.0 for f in flags], device=device)
    dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in agreed.tolist())

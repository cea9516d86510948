"""Which training states to keep, forward and during backward replays.

A state is "before step i". Schedules trade memory for recomputation:

* ``auto``: ``all`` when every state fits the checkpoint store's budgets
  (memory, then the spill directory's free disk), else ``sqrt``.
* ``all``: keep every state; the backward never replays.
* ``sqrt``: keep every ceil(sqrt(n))-th state; the backward replays each
  segment once, keeping its states (about 2 sqrt(n) states, n extra steps).
* ``log``: keep states at repeated halvings of what remains; a replay keeps
  its own halfway points (O(log n) states, O(n log n) extra steps).
"""

from __future__ import annotations

import math
import shutil
import tempfile


def forward_checkpoints(n_steps: int, mode: str) -> list[int]:
    """Indices of the states to keep while training forward."""
    if mode == "all":
        return list(range(n_steps))
    if mode == "sqrt":
        return list(range(0, n_steps, max(1, math.isqrt(n_steps - 1) + 1 if n_steps > 1 else 1)))
    if mode == "log":
        kept, i = [], 0
        while i < n_steps:
            kept.append(i)
            i += max(1, (n_steps - i) // 2)
        return kept
    raise ValueError(f"unknown checkpoint schedule {mode!r}")


def replay_keep(start: int, target: int, mode: str) -> int:
    """While replaying from ``start`` to reach ``target``, the next state to keep."""
    if mode == "log":
        return start + max(1, (target - start) // 2)
    return start + 1


def resolve_schedule(mode: str, n_steps: int, state_size: int, budgets: dict[str, int],
                     spill_dir: str | None) -> str:
    """The concrete schedule for ``mode`` (``auto`` becomes ``all`` or ``sqrt``)."""
    if mode != "auto":
        forward_checkpoints(n_steps, mode)  # rejects unknown names
        return mode
    room = sum(budgets.values())
    try:
        # Leave a tenth of the disk to everything else.
        room += int(shutil.disk_usage(spill_dir or tempfile.gettempdir()).free * 0.9)
    except OSError:
        pass
    return "all" if n_steps * state_size <= room else "sqrt"

"""Which training states to keep, forward and during backward replays.

A state is "before step i". Schedules trade memory for recomputation:

* ``auto``: ``all`` when every state fits the store's memory budgets, else
  ``gradients`` (unsharded runs; what does not fit in memory is spilled to
  disk), else ``all`` when the spill directory has room for every state,
  else ``sqrt``.
* ``all``: keep every state; the backward never replays.
* ``gradients``: keep every `GRADIENTS_SEGMENT`-th state and the other
  steps' gradients (a third of an Adam state each); the backward rebuilds
  each segment's states by applying the kept gradients again, which is
  optimizer arithmetic only: no forward or backward pass is recomputed.
* ``sqrt``: keep every ceil(sqrt(n))-th state; the backward replays each
  segment once, keeping its states (about 2 sqrt(n) states, n extra steps).
* ``log``: keep states at repeated halvings of what remains; a replay keeps
  its own halfway points (O(log n) states, O(n log n) extra steps).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

from .errors import ConfigError

# The ``gradients`` schedule's segment length. A segment's replayed states
# are all held during its backward, so the segment length, not the run's
# length, sets the backward's memory: (length - 1) states and gradients. 4
# holds 3 of each, where ceil(sqrt(n)) held 7 at 64 steps and 15 at 256; it
# writes (1 + 2/4) n gradient-sizes to the store against (1 + 2/sqrt(n)) n.
GRADIENTS_SEGMENT = 4


def kept_in_training(n_steps: int, mode: str) -> list[int]:
    """Indices of the states to keep while training forward."""
    if mode == "all":
        return list(range(n_steps))
    if mode == "gradients":
        return list(range(0, n_steps, GRADIENTS_SEGMENT))
    if mode == "sqrt":
        return list(range(0, n_steps, max(1, math.isqrt(n_steps - 1) + 1 if n_steps > 1 else 1)))
    if mode == "log":
        kept, i = [], 0
        while i < n_steps:
            kept.append(i)
            i += max(1, (n_steps - i) // 2)
        return kept
    raise ValueError(f"unknown checkpoint schedule {mode!r}")


def kept_gradients(n_steps: int, mode: str) -> set[int]:
    """Steps whose gradient the ``gradients`` schedule keeps: those its replays apply.

    A segment's replay stops before its last step (the state after it is
    the next kept state), so that step's gradient is never needed.
    """
    if mode != "gradients":
        return set()
    kept = set(kept_in_training(n_steps, mode))
    return {i for i in range(n_steps - 1) if i + 1 not in kept}


def replay_keep(start: int, target: int, mode: str) -> int:
    """While replaying from ``start`` to reach ``target``, the next state to keep."""
    if mode == "log":
        return start + max(1, (target - start) // 2)
    return start + 1


def resolve_schedule(mode: str, n_steps: int, state_size: int, budgets: dict[str, int],
                     spill_dir: str | None, *, gradients_apply: bool = True) -> str:
    """The concrete schedule for ``mode`` (``auto`` becomes ``all``, ``gradients`` or ``sqrt``).

    ``gradients_apply`` is False where a step's update cannot be applied
    again from a kept gradient (sharded runs).
    """
    if mode == "gradients" and not gradients_apply:
        raise ConfigError("attribution.kept_states: gradients needs an unsharded run "
                          "(attribution.sharding: none); use sqrt, log or auto with fsdp")
    if mode != "auto":
        kept_in_training(n_steps, mode)  # rejects unknown names
        return mode
    room = sum(budgets.values())
    if n_steps * state_size <= room:
        return "all"
    if gradients_apply:
        # A third of the bytes of `all` (less on disk, fewer reads), and its
        # replays cost optimizer arithmetic only.
        return "gradients"
    free = disk_free(spill_dir or tempfile.gettempdir())
    if free is not None:
        room += int(free * 0.9)  # leave a tenth of the disk to everything else
    return "all" if n_steps * state_size <= room else "sqrt"


def disk_free(path: str | os.PathLike) -> int | None:
    """Free bytes of the file system that will hold ``path``: a folder not created yet
    (the store creates it when it first spills) lives on its nearest existing parent's.
    None where that cannot be read."""
    target = Path(path).absolute()
    for folder in (target, *target.parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free
            except OSError:
                return None
    return None

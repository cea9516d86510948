"""Where the training states kept for the backward live: memory first, then disk.

The backward needs the state before every step it differentiates. Keeping
every state makes replays unnecessary (the cheapest schedule) but costs one
model-plus-optimizer state per step, so the store places each kept state in
the first tier with room:

1. **device**: the tensors stay where training made them (for a CPU run,
   host memory). Free: steps are out of place, so a kept state is never
   modified later.
2. **host** (CUDA runs only): copied to host memory by a background thread
   on a side stream, so the copy overlaps the next steps.
3. **disk**: written as one file per state by a background thread with
   direct I/O (see `state_files`), and read back ahead of time during the
   backward (`prefetch`) into reused buffers.

A state in a slower tier is an `Offloaded` entry; `materialize` turns an
entry back into a state on the run's device, waiting for its copy or read.
The budgets are bytes; ``None`` means "what the machine has" (see
`default_budgets`). They bound what is held at once: `release` gives an
entry's bytes back once the backward has taken it, and `hold` places the
states the backward's replays keep for later within the same budgets (a
replayed state is an entry like a kept one, not a state left on the device).

The ``gradients`` schedule keeps each step's gradient too (a ``{name:
tensor}`` dict) in a second store of kind ``"gradient"`` that draws on the
same budgets, so states and gradients together stay within them.

A store made **durable** (`make_durable`, by a run that writes phase
checkpoints) spills into a folder tied to the run, under unique names, and
records each file's sha256 as it writes it (and flushes the file to disk);
a checkpoint then lists the file
instead of writing the state again (`file_of`). Such files outlive their use
in the backward: they are deleted once no checkpoint refers to them
(`collect`), or with the run's checkpoint when the run ends.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import torch
from torch.distributed.tensor import DTensor
from torchopt.pytree import tree_map

from . import state_tensors
from .memory import host_memory_share
from .sharding import local_shard
from .state_files import BufferPool, StoredFile, read_state, write_state

log = logging.getLogger(__name__)


def state_bytes(state) -> int:
    # A sharded state takes this rank's shards only.
    return sum(local_shard(t).numel() * t.element_size() for t in state.differentiable_tensors())


def state_structure(state):
    """``state`` without its memory: tensors on the meta device, for rebuilding stored states.

    A template that held the initial state itself would keep a whole state
    on the device for the run's length. Sharded states keep their DTensors,
    whose mesh and placements a rebuilt state needs (each holds one shard).
    """
    if any(isinstance(t, DTensor) for t in state.params.values()):
        return state

    def meta(t):
        return torch.empty_like(t, device="meta") if isinstance(t, torch.Tensor) else t

    return dataclasses.replace(state, params={k: meta(t) for k, t in state.params.items()},
                               opt_state=tree_map(meta, state.opt_state))


def gradient_bytes(gradient: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in gradient.values())


def _gradient_tensors(gradient: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"grad.{k}": t for k, t in gradient.items()}


def _gradient_from_tensors(tensors: dict[str, torch.Tensor], template) -> dict[str, torch.Tensor]:
    return {k[len("grad."):]: t for k, t in tensors.items()}


class _Kind(NamedTuple):
    """How a store measures, flattens and rebuilds what it keeps."""

    size: Callable
    to_tensors: Callable
    from_tensors: Callable
    device_tensors: Callable  # the rebuilt entry's tensors on the run's device


def _kind(name: str) -> _Kind:
    if name == "gradient":
        return _Kind(gradient_bytes, _gradient_tensors, _gradient_from_tensors,
                     lambda gradient: gradient.values())
    return _Kind(state_bytes, state_tensors.to_tensors, state_tensors.from_tensors,
                 lambda state: state.differentiable_tensors())


CPU_MEMORY_BUDGET = 128 * 2**20


def default_budgets(device: torch.device) -> tuple[int, int]:
    """(device bytes, host bytes) for kept states when the config says ``auto``.

    A GPU's memory is left to the backward's own working set (the states go
    to host memory instead); host memory may take half of this rank's share of
    what is available (the node's free memory divided among its ranks).
    A CPU run keeps up to `CPU_MEMORY_BUDGET` in memory and spills the rest,
    which kept the backward's peak at 1.9x training's on the cpu benchmark
    preset and 1.3x on cpu-small (`benchmarks/attribution.py`); small runs stay in memory.
    """
    if device.type == "cuda":
        return 0, host_memory_share() // 2
    return min(CPU_MEMORY_BUDGET, host_memory_share() // 2), 0


# Tensors of a kept entry that live on the run's device; the rest (RNG states,
# the batch index) stay small host tensors.
_LARGE = ("param.", "opt.", "grad.")


class Offloaded:
    """A kept state that lives off the device (host memory or a file) until used."""

    def __init__(self, future: Future, tier: str, nbytes: int):
        self._future = future  # -> (tensors dict on host, or a StoredFile)
        self.tier = tier
        self.nbytes = nbytes
        self._loaded: Future | None = None


class StateStore(dict):
    """``{step: state or Offloaded}``, filled by `keep` within the budgets.

    ``shares_budgets_with`` makes this store count against another's
    budgets (the gradient store against the state store's).
    """

    def __init__(self, device: torch.device, template, *, device_budget: int = 0,
                 host_budget: int = 0, spill_dir: str | os.PathLike | None = None,
                 kind: str = "state", shares_budgets_with: StateStore | None = None):
        super().__init__()
        self.device = torch.device(device)
        self.template = template  # the run's initial state: structure, buffers
        self.kind = kind
        self._kind = _kind(kind)
        if shares_budgets_with is None:
            self.budgets = {"device": device_budget,
                            "host": host_budget if self.device.type == "cuda" else 0}
            self.used = {"device": 0, "host": 0, "disk": 0}  # held now
            self.kept_bytes = {"device": 0, "host": 0, "disk": 0}  # placed by `keep`, in all
        else:
            self.budgets, self.used = shares_budgets_with.budgets, shares_budgets_with.used
            self.kept_bytes = shares_budgets_with.kept_bytes
        self.placed = {"device": 0, "host": 0, "disk": 0}  # entries placed by `keep`
        self.held = {"device": 0, "host": 0, "disk": 0}  # entries placed by `hold`
        self._spill_root = spill_dir
        self._spill_dir: Path | None = None
        # One worker keeps writes in order and bounds the memory of queued copies.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="magic-ckpt")
        self._side = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self._pending = threading.BoundedSemaphore(2)
        self._pool = BufferPool()  # used by the worker thread only
        self.durable_dir: Path | None = None
        self._released: set[Path] = set()  # durable files the run has read back for good
        self._released_lock = threading.Lock()

    # -- durability ----------------------------------------------------------------
    def make_durable(self, directory: str | os.PathLike) -> None:
        """Spill into ``directory`` (kept after use, digests recorded); before the first `keep`."""
        self.durable_dir = Path(directory).resolve()

    def file_of(self, entry) -> StoredFile | None:
        """The durable file holding ``entry`` once written (waits for the write), else None."""
        if not isinstance(entry, Offloaded) or entry.tier != "disk" or self.durable_dir is None:
            return None
        stored = entry._future.result()
        return stored if stored.sha256 is not None else None

    def host_tensors(self, entry) -> dict[str, torch.Tensor] | None:
        """The host copy of a host-tier entry (flat tensors), else None."""
        if isinstance(entry, Offloaded) and entry.tier == "host":
            return entry._future.result()
        return None

    def adopt(self, step: int, stored: StoredFile) -> None:
        """Keep the (verified) file ``stored`` for ``step``: by reference when durable, else read
        and held within the budgets."""
        if self.durable_dir is not None:
            done: Future = Future()
            done.set_result(stored)
            self.used["disk"] += stored.bytes
            self[step] = Offloaded(done, "disk", stored.bytes)
            return
        tensors = {k: t.clone() for k, t in read_state(stored.path, BufferPool()).items()}
        item = self._kind.from_tensors(tensors, self.template)
        self[step], _ = self._place(step, item, self._kind.size(item))

    def collect(self, referenced: set[Path]) -> None:
        """Delete the files read back for good that no checkpoint refers to any longer."""
        with self._released_lock:
            gone = {p for p in self._released if p not in referenced}
            self._released -= gone
        for path in gone:
            path.unlink(missing_ok=True)

    def sweep(self, referenced: set[Path]) -> None:
        """Delete this kind's files in the durable folder that ``referenced`` lacks.

        For a run starting or resuming: those are a killed process's spills
        made after its last checkpoint, or an abandoned run's.
        """
        if self.durable_dir is None or not self.durable_dir.is_dir():
            return
        for path in self.durable_dir.glob(f"{self.kind}-*.safetensors"):
            if path not in referenced:
                path.unlink(missing_ok=True)

    # -- placing ---------------------------------------------------------------
    def keep(self, step: int, item) -> None:
        """Keep a state (or, in a gradient store, a gradient) for step ``step``."""
        size = self._kind.size(item)
        self[step], tier = self._place(step, item, size)
        self.placed[tier] += 1
        self.kept_bytes[tier] += size

    def hold(self, step: int, item):
        """An entry holding ``item`` (the state before step ``step``) within the budgets, for
        `materialize` and `prefetch`; not kept in the store. `release` it once taken."""
        entry, tier = self._place(step, item, self._kind.size(item))
        self.held[tier] += 1
        return entry

    def release(self, entry) -> None:
        """Give back the budget of an entry (kept, held or adopted) the run has taken."""
        if isinstance(entry, Offloaded):
            self.used[entry.tier] -= entry.nbytes
        else:
            self.used["device"] -= self._kind.size(entry)

    def _place(self, step: int, item, size: int) -> tuple:
        """(entry, tier): ``item`` in the first tier with room, counted as used."""
        for tier in ("device", "host"):
            if self.used[tier] + size <= self.budgets[tier]:
                self.used[tier] += size
                return (item if tier == "device" else self._offload(step, item, "host", size)), tier
        self.used["disk"] += size
        return self._offload(step, item, "disk", size), "disk"

    def _offload(self, step: int, item, tier: str, size: int) -> Offloaded:
        tensors = self._kind.to_tensors(item)
        ready = None
        if self._side is not None:
            ready = torch.cuda.Event()
            ready.record()
        # Waiting here (at most two copies in flight) keeps a slow disk from
        # holding an unbounded number of states in memory.
        self._pending.acquire()
        target = self._path(step) if tier == "disk" else None
        side = self._side

        digest = self.durable_dir is not None

        def copy():
            try:
                if target is None:
                    return self._to_host(tensors, ready)
                if side is None or ready is None:
                    return write_state(target, tensors, self._pool, digest=digest, sync=digest)
                with torch.cuda.stream(side):
                    side.wait_event(ready)
                    return write_state(target, tensors, self._pool, digest=digest, sync=digest)
            finally:
                self._pending.release()

        return Offloaded(self._worker.submit(copy), tier, size)

    def _to_host(self, tensors: dict[str, torch.Tensor], ready) -> dict[str, torch.Tensor]:
        if self._side is None:
            return {k: t.contiguous() for k, t in tensors.items()}
        with torch.cuda.stream(self._side):
            self._side.wait_event(ready)
            host = {k: t.to("cpu", non_blocking=False).contiguous() for k, t in tensors.items()}
        return host

    def _path(self, step: int) -> Path:
        if self.durable_dir is not None:
            # A unique name: a file an existing checkpoint lists is never overwritten.
            self.durable_dir.mkdir(parents=True, exist_ok=True)
            return self.durable_dir / f"{self.kind}-{step:07d}-{uuid.uuid4().hex[:12]}.safetensors"
        if self._spill_dir is None:
            root = self._spill_root or tempfile.gettempdir()
            Path(root).mkdir(parents=True, exist_ok=True)
            self._spill_dir = Path(tempfile.mkdtemp(prefix="magic-states-", dir=root))
            log.info("kept %ss beyond the memory budgets spill to %s", self.kind, self._spill_dir)
        return self._spill_dir / f"{self.kind}-{step:07d}.safetensors"

    # -- reading -----------------------------------------------------------------
    def prefetch(self, entry) -> Future | None:
        """Start bringing an offloaded entry back to the device (its future)."""
        if not isinstance(entry, Offloaded):
            return None
        if entry._loaded is None:
            entry._loaded = self._worker.submit(self._load, entry)
        return entry._loaded

    def _load(self, entry: Offloaded):
        stored = entry._future.result()
        if isinstance(stored, StoredFile):
            tensors = read_state(stored.path, self._pool)
            if self.durable_dir is None:
                stored.path.unlink(missing_ok=True)
            else:
                with self._released_lock:
                    self._released.add(stored.path)
            # The small ones are copied out so that only params and optimizer
            # tensors hold the pool's buffer (until the state is dropped).
            tensors = {k: (t if k.startswith(_LARGE) else t.clone()) for k, t in tensors.items()}
        else:
            tensors = stored
        if self._side is not None:
            with torch.cuda.stream(self._side):
                tensors = {k: (t.to(self.device) if k.startswith(_LARGE) else t)
                           for k, t in tensors.items()}
            self._side.synchronize()
        return self._kind.from_tensors(tensors, self.template)

    def materialize(self, entry):
        """The state (or gradient) an entry holds, on the run's device."""
        loaded = self.prefetch(entry)
        if loaded is None:
            return entry
        state = loaded.result()
        if self._side is not None:
            # Loaded on the side stream: tell the allocator the main stream uses it now.
            for t in self._kind.device_tensors(state):
                t.record_stream(torch.cuda.current_stream(self.device))
        return state

    def summary(self) -> dict:
        # ``bytes``: what `keep` placed (with a store sharing the budgets, both stores').
        return {"placed": dict(self.placed), "bytes": dict(self.kept_bytes),
                "budgets": dict(self.budgets), "held": dict(self.held)}

    def close(self) -> None:
        self._worker.shutdown(wait=True)
        self._pool.clear()
        # Durable files may be listed by the run's last checkpoint: they go with it.
        if self._spill_dir is not None:
            shutil.rmtree(self._spill_dir, ignore_errors=True)
            self._spill_dir = None

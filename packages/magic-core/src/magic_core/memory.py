"""Memory figures: what the host has free, and a run's peak resident memory per phase."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Mapping

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6,
          "mib": 2**20, "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12,
          "tib": 2**40}


def parse_bytes(text: str | int, where: str) -> int:
    """``"512MiB"``, ``"2GB"``, ``1073741824`` -> bytes; raises ValueError naming ``where``."""
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"{where} must be >= 0, got {text}")
        return text
    match = _SIZE.match(str(text))
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"{where}: cannot read {text!r} as a size; write e.g. 512MiB, 8GiB or 0")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def available_host_memory() -> int:
    """MemAvailable from /proc/meminfo (what can be used without swapping)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


_SLURM_COUNT = re.compile(r"(\d+)(?:\(x\d+\))?")  # "4(x2),3": 4 tasks on 2 nodes, 3 on one


def _count(text: str | None) -> int:
    return int(text) if text and text.strip().isdigit() else 0


def ranks_on_this_node(env: Mapping[str, str] | None = None) -> int:
    """How many processes of this run share this node's memory: torchrun's
    ``LOCAL_WORLD_SIZE``, else Slurm's tasks per node (under ``srun``), else 1.

    Slurm's ``SLURM_TASKS_PER_NODE`` (``"4(x2),3"``) may differ from node to
    node; the largest count is taken, which never overcommits a node.
    """
    env = os.environ if env is None else env
    if _count(env.get("LOCAL_WORLD_SIZE")):
        return _count(env.get("LOCAL_WORLD_SIZE"))
    if "SLURM_PROCID" in env:  # srun's variables, as `distributed.launch_from_environment` reads
        if _count(env.get("SLURM_NTASKS_PER_NODE")):
            return _count(env.get("SLURM_NTASKS_PER_NODE"))
        counts = [int(n) for n in _SLURM_COUNT.findall(env.get("SLURM_TASKS_PER_NODE", ""))]
        if counts and max(counts) > 0:
            return max(counts)
    return 1


def host_memory_share(env: Mapping[str, str] | None = None) -> int:
    """This process's share of the node's available host memory: every rank of the
    node sees the same MemAvailable, so each may count on its 1/ranks part only."""
    return available_host_memory() // ranks_on_this_node(env)


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class ResidentPeak:
    """Samples this process's resident memory in a thread; `peak()` since the last `reset()`.

    ru_maxrss only ever grows over the process's life, so a per-phase peak
    (training against backward in one process) needs sampling.
    """

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self._peak = resident_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            value = resident_bytes()
            if value > self._peak:
                self._peak = value
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def reset(self) -> None:
        self._peak = resident_bytes()

    def peak(self) -> int:
        return max(self._peak, resident_bytes())


class PhasePeaks:
    """Peak memory of each phase of a run, in bytes: GPU memory allocated on CUDA, else resident memory."""

    def __init__(self, device):
        import torch

        self.cuda = torch.device(device).type == "cuda"
        self.device = device
        self.peaks: dict[str, int] = {}
        self._sampler: ResidentPeak | None = None

    def start(self, phase: str) -> None:
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        elif self._sampler is None:
            self._sampler = ResidentPeak().__enter__()
        else:
            self._sampler.reset()

    def stop(self, phase: str) -> None:
        if self.cuda:
            import torch

            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            assert self._sampler is not None, "stop() before start()"
            peak = self._sampler.peak()
        self.peaks[phase] = max(self.peaks.get(phase, 0), peak)

    def close(self) -> None:
        if self._sampler is not None:
            self._sampler.__exit__(None, None, None)
            self._sampler = None

"""Joining a torch.distributed job from the launcher's environment.

Two launchers are understood: torchrun (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and Slurm's ``srun``
(``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``, ``SLURM_NODEID``,
``SLURM_JOB_NODELIST``). torchrun's variables win when both are present, since
torchrun started under srun sets them per worker. Without either (or with a
world of one) the run stays a plain single process and nothing is initialized,
so single-process results are untouched. The backend is NCCL when CUDA is
available and gloo otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import ConfigError


@dataclass(frozen=True)
class Launch:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    launcher: str = "single"  # "torchrun", "slurm" or "single"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self) -> torch.device:
        """This rank's device: its local GPU when CUDA is available, else the CPU."""
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")


def _int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise ConfigError(f"environment variable {name}={env[name]!r} is not an integer") from None


def first_host(nodelist: str) -> str:
    """The first host of a Slurm hostlist: ``"gpu[07-09,12],cpu1"`` -> ``"gpu07"``.

    Only the first entry is expanded (one bracket group; zero padding kept),
    which is all a rendezvous address needs.
    """
    match = re.match(r"[^,\[]*(\[[^\]]*\])?[^,]*", nodelist.strip())
    entry = match.group(0) if match else ""
    bracket = re.search(r"\[([^\]]*)\]", entry)
    if not entry or entry.startswith("["):
        raise ConfigError(f"cannot read a host name from SLURM_JOB_NODELIST={nodelist!r}")
    if bracket is None:
        return entry
    first = bracket.group(1).split(",")[0].split("-")[0]
    return entry[: bracket.start()] + first + entry[bracket.end():]


def _slurm_master(env: Mapping[str, str]) -> str:
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        return "127.0.0.1"
    # scontrol knows every hostlist form; the parser is the fallback off-cluster.
    if shutil.which("scontrol"):
        try:
            out = subprocess.run(["scontrol", "show", "hostnames", nodelist],
                                 capture_output=True, text=True, check=True, timeout=30)
            if out.stdout.split():
                return out.stdout.split()[0]
        except (OSError, subprocess.SubprocessError):
            pass
    return first_host(nodelist)


def _slurm_port(env: Mapping[str, str]) -> int:
    # Every task of a job computes the same port, and concurrent jobs sharing
    # a node are unlikely to collide.
    job_id = env.get("SLURM_JOB_ID", "")
    return 15000 + int(job_id) % 20000 if job_id.isdigit() else 29500


def launch_from_environment(env: Mapping[str, str] | None = None) -> Launch:
    """Read this process's place in the job from ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        return Launch(
            rank=_int(env, "RANK"), world_size=_int(env, "WORLD_SIZE"),
            local_rank=_int(env, "LOCAL_RANK") if "LOCAL_RANK" in env else 0,
            node_rank=_int(env, "GROUP_RANK") if "GROUP_RANK" in env else 0,
            master_addr=env.get("MASTER_ADDR", "127.0.0.1"),
            master_port=_int(env, "MASTER_PORT") if "MASTER_PORT" in env else 29500,
            launcher="torchrun",
        )
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        return Launch(
            rank=_int(env, "SLURM_PROCID"), world_size=_int(env, "SLURM_NTASKS"),
            local_rank=_int(env, "SLURM_LOCALID") if "SLURM_LOCALID" in env else 0,
            node_rank=_int(env, "SLURM_NODEID") if "SLURM_NODEID" in env else 0,
            master_addr=env.get("MASTER_ADDR") or _slurm_master(env),
            master_port=_int(env, "MASTER_PORT") if "MASTER_PORT" in env else _slurm_port(env),
            launcher="slurm",
        )
    return Launch()


def init_from_environment(backend: str | None = None, env: Mapping[str, str] | None = None) -> Launch:
    """Join the launcher's process group; a no-op for a single process.

    Returns the `Launch`, whose `device()` is where this rank should run. If a
    process group already exists it is kept and described instead.
    """
    if dist.is_initialized():
        return Launch(rank=dist.get_rank(), world_size=dist.get_world_size(),
                      local_rank=int(os.environ.get("LOCAL_RANK", 0)), launcher="existing")
    launch = launch_from_environment(env)
    if not 0 <= launch.rank < launch.world_size:
        raise ConfigError(f"rank {launch.rank} is outside a world of {launch.world_size} processes")
    if launch.world_size == 1:
        return launch
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(launch.local_rank)
    host = f"[{launch.master_addr}]" if ":" in launch.master_addr else launch.master_addr
    dist.init_process_group(backend, init_method=f"tcp://{host}:{launch.master_port}",
                            rank=launch.rank, world_size=launch.world_size)
    return launch


def shutdown() -> None:
    """Leave the process group (after a barrier, so no rank exits mid-collective)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()

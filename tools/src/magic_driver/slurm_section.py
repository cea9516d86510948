"""The ``slurm:`` section of a job file: what `magic submit` asks the scheduler for.

Cluster-wide settings (module loads, the Python environment, default
partition and account) live in cluster profiles (see `clusters`), so one job
file runs on any cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from magic_core import ConfigError

# Slurm's --time forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
_MEM = re.compile(r"^\d+[KMGT]?$")
# Slurm's --signal accepts at most 65535 seconds of warning.
MAX_SIGNAL_SECONDS = 65535


def time_limit_seconds(text: str) -> int:
    """``"1-02:00:00"`` -> 93600; a mistake names the accepted forms."""
    m = _TIME.match(text.strip())
    if not m:
        raise ConfigError(f"slurm.time: {text!r} is not a Slurm time; use e.g. '90' (minutes), "
                          "'04:00:00' or '1-12:00:00'")
    days, a, b, c = m.groups()
    if days is not None:  # D-H[:M[:S]]
        parts = [int(a), int(b or 0), int(c or 0)]
        return int(days) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]
    if c is not None:  # H:M:S
        return int(a) * 3600 + int(b) * 60 + int(c)
    if b is not None:  # M:S
        return int(a) * 60 + int(b)
    return int(a) * 60  # M


@dataclass(frozen=True)
class SlurmSection:
    """What `magic submit` asks the scheduler for; every other command ignores it.
    Cluster-wide settings live in the cluster profile."""

    nodes: int = 1
    """Nodes, at least 1."""
    tasks_per_node: int = 1
    """Ranks per node, one per GPU (at least 1; unlearning jobs run one)."""
    gpus_per_node: int = 0
    """GPUs per node (``--gpus-per-node``); 0 asks for none."""
    cpus_per_task: int | None = None
    """CPU cores per rank; null: the partition's default."""
    mem: str | None = None
    """Memory per node, e.g. ``200G`` or ``512000M``; null: the partition's default."""
    time: str = "01:00:00"
    """The time limit, in a form Slurm reads: ``90`` (minutes), ``M:S``, ``H:M:S``,
    ``D-H``, ``D-H:M`` or ``D-H:M:S``."""
    partition: str | None = None
    """null: the cluster profile's."""
    account: str | None = None
    """null: the cluster profile's."""
    job_name: str | None = None
    """null: ``magic-<kind>-<run dir name>``."""
    # Longer than one training or backward step, so the run reaches a step's end in time.
    checkpoint_before_end: int = 300
    """Seconds of SIGUSR1 warning before the time limit (1 to 65535, less than the
    limit): the run checkpoints, exits 75 and the job script requeues it."""
    requeue: bool = True
    """true: ``--requeue``, the SIGUSR1 warning and a requeue when the run exits 75;
    false: none of them (resubmit to resume a stopped run)."""
    sbatch: list[str] = field(default_factory=list)
    """More sbatch options, each a long option, e.g. ``["--constraint=gh200", "--exclusive"]``."""

    def __post_init__(self):
        for name in ("nodes", "tasks_per_node"):
            if getattr(self, name) < 1:
                raise ConfigError(f"slurm.{name} must be >= 1, got {getattr(self, name)}")
        if self.gpus_per_node < 0:
            raise ConfigError(f"slurm.gpus_per_node must be >= 0, got {self.gpus_per_node}")
        if self.cpus_per_task is not None and self.cpus_per_task < 1:
            raise ConfigError(f"slurm.cpus_per_task must be >= 1, got {self.cpus_per_task}")
        if self.mem is not None and not _MEM.match(self.mem):
            raise ConfigError(f"slurm.mem: {self.mem!r} is not a Slurm memory size; use e.g. "
                              "'64G' or '512000M'")
        limit = time_limit_seconds(self.time)
        if not 0 < self.checkpoint_before_end < min(limit, MAX_SIGNAL_SECONDS + 1):
            raise ConfigError(
                f"slurm.checkpoint_before_end must be between 1 and the time limit "
                f"({limit} s, at most {MAX_SIGNAL_SECONDS}); got {self.checkpoint_before_end}"
            )
        for option in self.sbatch:
            if not option.startswith("--"):
                raise ConfigError(f"slurm.sbatch: {option!r} is not a long sbatch option "
                                  "(e.g. '--constraint=gh200')")

    @property
    def tasks(self) -> int:
        return self.nodes * self.tasks_per_node

"""A real one-node Slurm cluster in a temporary folder, for tests (needs root).

Debian's slurmctld, slurmd and munge are installed with apt-get when
missing. Where that cannot happen (not root, no apt-get, no package
mirror) `SlurmUnavailable` says why and the tests skip; a cluster that
has what it needs and still does not start raises `SlurmFailed`. Everything the daemons write (config, key, socket, state, logs, pid
files) lives in the folder; nothing under /etc is touched, and `stop` ends
exactly the daemons `start` started, by their pids.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
FINISHED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")


class SlurmUnavailable(RuntimeError):
    """Why no cluster can run on this machine at all (the tests skip with this message)."""


class SlurmFailed(RuntimeError):
    """The daemons were there and did not come up: a failure to look into."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def install_if_missing() -> None:
    """Install the daemons with apt-get if needed; `SlurmUnavailable` if that cannot be."""
    # The daemons run as root (SlurmUser=root), so without root nothing can start.
    if os.geteuid() != 0:
        raise SlurmUnavailable("the test cluster's daemons run as root; run these tests as root")
    if all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "munged", "sbatch")):
        return
    if shutil.which("apt-get") is None:
        raise SlurmUnavailable("slurmctld/slurmd/munge are not installed and there is no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise SlurmUnavailable(f"`{' '.join(command)}` failed: {' / '.join(tail)}")


def _memory_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise SlurmUnavailable("cannot read the memory size from /proc/meminfo")


class LocalSlurm:
    """``start()`` -> a cluster whose clients work with ``env`` (SLURM_CONF set)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.host = socket.gethostname().split(".")[0]
        self.conf = folder / "slurm.conf"
        self.pids: dict[str, int] = {}
        # A Unix socket path has at most 107 bytes; a deep temporary folder may exceed it.
        self.socket = folder / "munge.socket"
        if len(str(self.socket)) > 100:
            self.socket = Path(tempfile.mkdtemp(prefix="magic-munge-", dir="/tmp")) / "socket"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def _write_config(self) -> None:
        f = self.folder
        for sub in ("state", "spool"):
            (f / sub).mkdir(parents=True, exist_ok=True)
        cpus = os.cpu_count() or 1
        self.conf.write_text("\n".join([
            "ClusterName=magictest",
            f"SlurmctldHost={self.host}",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.socket}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "SchedulerType=sched/backfill",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "ReturnToService=2",
            "MinJobAge=600",  # finished jobs stay visible to scontrol during the tests
            "KillWait=30",  # time a preempted step has to checkpoint before SIGKILL
            f"StateSaveLocation={f / 'state'}",
            f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'slurmctld.pid'}",
            f"SlurmdPidFile={f / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'slurmctld.log'}",
            f"SlurmdLogFile={f / 'slurmd.log'}",
            f"NodeName={self.host} CPUs={cpus} RealMemory={max(_memory_mib() - 1024, 512)} "
            "State=UNKNOWN",
            f"PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
        ]) + "\n")

    def _start_munge(self) -> None:
        key = self.folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._daemon("munged", ["munged", "--force", f"--socket={self.socket}",
                                f"--key-file={key}", f"--log-file={self.folder / 'munged.log'}",
                                f"--pid-file={self.folder / 'munged.pid'}",
                                f"--seed-file={self.folder / 'munged.seed'}"])

    def _daemon(self, name: str, command: list[str]) -> None:
        """Start a forking daemon and record the pid from its pid file."""
        proc = subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=60)
        if proc.returncode != 0:
            raise SlurmFailed(f"{name} did not start: {(proc.stderr or proc.stdout).strip()}")
        pid_file = self.folder / f"{name}.pid"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if pid_file.is_file() and pid_file.read_text().strip().isdigit():
                self.pids[name] = int(pid_file.read_text())
                return
            time.sleep(0.1)
        raise SlurmFailed(f"{name} wrote no pid file {pid_file}; log:\n{self.log(name)}")

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text()[-2000:] if path.is_file() else "(none)"

    def start(self, timeout: float = 60) -> LocalSlurm:
        install_if_missing()
        self._write_config()
        self._start_munge()
        self._daemon("slurmctld", ["slurmctld"])
        self._daemon("slurmd", ["slurmd"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.run(["sinfo", "-h", "-o", "%T"], check=False)
            if proc.stdout.strip() == "idle":
                return self
            time.sleep(0.5)
        raise SlurmFailed(f"the node never became idle; slurmctld log:\n{self.log('slurmctld')}"
                               f"\nslurmd log:\n{self.log('slurmd')}")

    def run(self, command: list[str], check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=60,
                              check=check, **kwargs)

    def job_fields(self, job_id: str, name: str) -> list[str]:
        """``name`` of the job, or of each task of a job array."""
        proc = self.run(["scontrol", "-o", "show", "job", job_id], check=False)
        return [item.split("=", 1)[1] for line in proc.stdout.splitlines()
                for item in line.split() if item.startswith(f"{name}=")]

    def job_field(self, job_id: str, name: str) -> str | None:
        values = self.job_fields(job_id, name)
        return values[0] if values else None

    def wait_for_end(self, job_id: str, timeout: float, on_pending=None) -> str:
        """Poll until the job (every array task) is finished; returns the states, joined.

        ``on_pending(reason)`` sees each poll that finds the job pending.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.job_fields(job_id, "JobState")
            if states and all(s in FINISHED for s in states):
                return ",".join(sorted(set(states)))
            if "PENDING" in states and on_pending is not None:
                on_pending(self.job_field(job_id, "Reason"))
            time.sleep(0.5)
        raise TimeoutError(f"job {job_id} still {self.job_fields(job_id, 'JobState')} after "
                           f"{timeout} s")

    def _cancel_jobs(self, timeout: float = 60) -> None:
        """A job left running (a failed test) would outlive the daemons: cancel it first."""
        if "slurmctld" not in self.pids:
            return
        queued = self.run(["squeue", "-h", "-o", "%A"], check=False).stdout.split()
        if not queued:
            return
        self.run(["scancel", *queued], check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.run(["squeue", "-h", "-o", "%A"], check=False).stdout.split():
                return
            time.sleep(0.5)

    def stop(self) -> None:
        self._cancel_jobs()
        # Node daemon first, so the controller sees no half-finished node.
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, 9)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes (the daemons are not our children, but be safe).
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().split(")")[-1].split()[0] == "Z")

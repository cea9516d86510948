"""One run per run directory: a lock file beside it, held for as long as a command runs in it.

``magic attribute``, ``unlearn``, ``sweep`` and ``demo`` hold ``.NAME.lock``
next to their run directory ``NAME`` (beside it, not in it: `run_output`
builds a replacement under another name and swaps it in, and the lock must
name the directory through that swap; see `lock_path` for a folder that
cannot be written). The file records who holds it: the
command, pid, host, since when, the process's start time and boot id (to
tell a reused pid), and the Slurm job id and restart count.

A second run refuses in one line naming the first. A lock whose holder is
gone is taken over, with one notice line:

- same host: the pid is not running (or is a zombie), is now another process
  (its start time differs), or the host has rebooted since;
- another host, which cannot be asked: only a later incarnation of the same
  Slurm job (same ``SLURM_JOB_ID``, another ``SLURM_RESTART_COUNT``: Slurm
  requeued it, so the earlier one is gone). Anything else from another host
  is refused with the exact file to delete should that host be gone.

Creating the lock is atomic (a complete record is hard-linked into place,
``O_CREAT|O_EXCL`` where the file system has no hard links); taking over
and releasing happen under an ``flock`` of the lock file, so that of two
runs finding the same stale lock one wins. (Where ``flock`` is not
supported, two runs taking over one stale lock in the same instant are not
excluded.) It is released on every exit of the block (success, an error,
preemption); a SIGKILLed run leaves it to the dead-process rule.

Under torch.distributed only rank 0 takes the lock; its verdict is
broadcast, so every rank refuses together or none does.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from contextvars import ContextVar
from datetime import datetime, timezone
from pathlib import Path

from magic_core import ConfigError

from .notices import notice
from .run_output import check_writable

# How long a takeover or release waits for another's flock (held for a few
# system calls) before going on without it: a wedged network file system.
GUARD_WAIT_S = 10.0
# A lock replaced or removed while we looked at it is looked at again, this often.
ATTEMPTS = 20
# Errors of hard links on file systems that have none (FAT, some FUSE and SMB mounts).
NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV}

# The command of the outermost lock in this process: the runs a sweep or the
# demo makes record it, so that a refusal names what the user started.
_command: ContextVar[str | None] = ContextVar("magic_run_lock_command", default=None)


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK)


def lock_path(run_dir: Path) -> Path:
    """The lock file of ``run_dir``: ``.NAME.lock`` beside it (in the real folder its name is
    in: the name is what a swap replaces).

    Where that folder cannot be written (``--out /scratch/$USER``) nothing can
    swap the run directory either, and the lock is ``RUN_DIR/.run.lock``.
    """
    path = Path(run_dir).absolute()
    path = path.resolve() if path.name in ("", ".", "..") else path.parent.resolve() / path.name
    if path.parent == path or (path.is_dir() and not _writable(path.parent)):
        return path / ".run.lock"
    return path.with_name(f".{path.name}.lock")


def _read_proc(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on; None where /proc does not have it."""
    stat = _read_proc(f"/proc/{pid}/stat")
    return stat.rsplit(")", 1)[1].split() if stat and ")" in stat else None


def process_start(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (field 22 of /proc/PID/stat)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def boot_id() -> str | None:
    return _read_proc("/proc/sys/kernel/random/boot_id")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    fields = _stat_fields(pid)
    return not (fields and fields[0] in ("Z", "X"))  # killed, not yet reaped


def _slurm_restart() -> int:
    value = os.environ.get("SLURM_RESTART_COUNT", "0")
    return int(value) if value.isdigit() else 0


def own_record(command: str) -> dict:
    pid = os.getpid()
    return {"command": command, "pid": pid, "host": socket.gethostname(),
            "since": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "started": process_start(pid), "boot_id": boot_id(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID") or None,
            "slurm_restart": _slurm_restart(), "token": uuid.uuid4().hex}


def gone_because(holder: dict) -> str | None:
    """Why the holder of a lock is known to be gone; None while it may be running."""
    pid = holder["pid"]
    if holder["host"] == socket.gethostname():
        here_boot = boot_id()
        if holder.get("boot_id") and here_boot and holder["boot_id"] != here_boot:
            return "the host has restarted since"
        if not _running(pid):
            return f"pid {pid} is not running"
        started = process_start(pid)
        if holder.get("started") is not None and started is not None \
                and holder["started"] != started:
            return f"pid {pid} is now another process"
        return None
    job = os.environ.get("SLURM_JOB_ID")
    if job and holder.get("slurm_job_id") == job and holder.get("slurm_restart") != _slurm_restart():
        return f"Slurm job {job} was requeued"
    return None


def _who(holder: dict) -> str:
    return (f"{holder.get('command', 'a magic run')} (pid {holder['pid']} on host "
            f"{holder['host']}, since {holder.get('since', '?')})")


def in_use(run_dir: Path, lock: Path, holder: dict) -> str:
    """The refusal of a run directory whose lock ``holder`` may still be running."""
    if holder["host"] == socket.gethostname():
        fix = f"stop it (kill {holder['pid']})"
    else:
        fix = f"if that run is gone (host {holder['host']} down), delete {lock}"
    return f"{run_dir} is in use by {_who(holder)}; wait for it to finish, or {fix}"


def _parse(text: str, run_dir: Path, lock: Path) -> dict:
    try:
        holder = json.loads(text)
        if isinstance(holder, dict) and isinstance(holder.get("pid"), int) \
                and holder["pid"] > 0 and isinstance(holder.get("host"), str):
            return holder
    except ValueError:
        pass
    raise ConfigError(f"{run_dir} is locked by {lock}, which is not a lock this version "
                      f"writes; if no run is using {run_dir}, delete {lock}")


def _temp_with(lock: Path, text: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f"{lock.name}.", suffix=".tmp", dir=lock.parent)
    try:
        with suppress(OSError):  # file systems without modes
            os.fchmod(fd, 0o644)  # others read whose run it is
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return Path(name)


def _create(lock: Path, text: str) -> bool:
    """Put a lock holding ``text`` at ``lock`` if there is none; whether it did."""
    tmp = _temp_with(lock, text)
    try:
        os.link(tmp, lock)  # the record is whole the moment the name exists
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in NO_LINKS:
            raise
    finally:
        tmp.unlink(missing_ok=True)
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _flock(fd: int) -> None:
    """An exclusive flock of ``fd`` if the file system gives one within `GUARD_WAIT_S`."""
    deadline = time.monotonic() + GUARD_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        except OSError:
            return  # not supported here (ENOLCK, EBADF on NFS for a read-only fd, ...)


@contextmanager
def _guarded(lock: Path) -> Iterator[str | None]:
    """The text of the lock file now at ``lock`` under its flock; None if there is none.

    Whoever replaces or removes a lock does it under this guard, so a text read
    here stays the lock's until the block ends.
    """
    for _ in range(ATTEMPTS):
        try:
            fd = os.open(lock, os.O_RDWR)
        except PermissionError:
            fd = os.open(lock, os.O_RDONLY)  # another user's: read it, flock if we can
        except FileNotFoundError:
            yield None
            return
        try:
            _flock(fd)
            try:
                current = os.stat(lock)
            except FileNotFoundError:
                current = None
            mine = os.fstat(fd)
            if current is None or (current.st_ino, current.st_dev) != (mine.st_ino, mine.st_dev):
                continue  # removed or replaced while we waited: look again
            with os.fdopen(os.dup(fd)) as f:
                text = f.read()
            yield text
            return
        finally:
            os.close(fd)
    raise ConfigError(f"the lock {lock} keeps changing; is a run starting there in a loop? "
                      "Rerun once it settles")


def acquire(run_dir: Path, command: str) -> dict:
    """Take the lock of ``run_dir`` for ``command``; return the record it holds.

    Raises ConfigError naming the holder if another run may be using it.
    """
    run_dir, lock = Path(run_dir), lock_path(run_dir)
    record = own_record(command)
    text = json.dumps(record, indent=1) + "\n"
    for _ in range(ATTEMPTS):
        if _create(lock, text):
            return record
        with _guarded(lock) as current:
            if current is None:
                continue  # released meanwhile
            holder = _parse(current, run_dir, lock)
            reason = gone_because(holder)
            if reason is None:
                raise ConfigError(in_use(run_dir, lock, holder))
            tmp = _temp_with(lock, text)
            try:
                os.replace(tmp, lock)
            finally:
                tmp.unlink(missing_ok=True)
        notice(f"{run_dir}: taking over the lock of {_who(holder)}: {reason}")
        return record
    raise ConfigError(f"the lock {lock} keeps changing; is a run starting there in a loop? "
                      "Rerun once it settles")


def release(run_dir: Path, record: dict) -> None:
    """Remove the lock of ``run_dir`` if it is still ``record``'s (a later incarnation of a
    Slurm job may have taken it over)."""
    lock = lock_path(run_dir)
    with _guarded(lock) as current:
        if current is None:
            return
        try:
            token = json.loads(current).get("token")
        except (ValueError, AttributeError):
            return
        if token == record["token"]:
            lock.unlink(missing_ok=True)


def _missing_parents(path: Path) -> list[Path]:
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


@contextmanager
def _held(run_dir: Path, command: str) -> Iterator[None]:
    check_writable(run_dir)  # the established refusal of a directory that cannot be written
    lock = lock_path(run_dir)
    made = _missing_parents(lock.parent)
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        record = acquire(run_dir, command)
    except BaseException:
        _remove_empty(made)
        raise
    token = _command.set(command)
    try:
        yield
    finally:
        _command.reset(token)
        release(run_dir, record)
        _remove_empty(made)


def _remove_empty(folders: list[Path]) -> None:
    """Folders made for the lock, gone again if the run left them empty (a refused run
    leaves nothing behind)."""
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            return


@contextmanager
def run_dir_lock(run_dir: Path, command: str, launch=None) -> Iterator[None]:
    """Hold the lock of ``run_dir`` for ``command`` (e.g. ``"magic attribute"``) in the block.

    ``launch``: the `magic_core.distributed.Launch` of a torch.distributed
    run; rank 0 takes the lock, and its refusal is raised on every rank (the
    others would wait for it in a collective otherwise). Runs nested in
    another locked run (a sweep's points, the demo's runs) record the outer
    command.
    """
    command = _command.get() or command
    if launch is None or launch.world_size == 1:
        with _held(run_dir, command):
            yield
        return
    import torch.distributed as dist

    with ExitStack() as held:
        failure: Exception | None = None
        if launch.is_main:
            try:
                held.enter_context(_held(run_dir, command))
            except Exception as exc:  # every rank must hear of it, whatever it is
                failure = exc
        verdict = [None if failure is None else str(failure)]
        dist.broadcast_object_list(verdict, src=0)
        if failure is not None:
            raise failure
        if verdict[0] is not None:
            raise ConfigError(verdict[0])
        yield

"""Writes that never leave a half-written file behind: temp name, then rename.

A rename survives the process being killed at once, but not the machine
losing power: until the kernel writes them out, the file's data and the
directory entry naming it live only in the page cache. A write asked to be
``durable`` therefore flushes the file to disk (`fsync`) before the rename,
and the directory after it, so that whoever sees the new name after a crash
also finds complete contents (a phase checkpoint must not count as durable
before that).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_file(path: str | os.PathLike) -> None:
    """Flush ``path``'s data and size to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: str | os.PathLike) -> None:
    """Flush ``directory``'s entries (names created, renamed or removed in it) to the disk.

    A no-op where directories cannot be opened for it (Windows).
    """
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (PermissionError, IsADirectoryError):
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):  # file systems without directory sync
            raise
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike, *, durable: bool = False,
                publish: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place on success.

    ``durable``: the file is flushed to disk before the rename and, unless
    ``publish`` is false (a caller renaming several files syncs their
    directory once, with `fsync_dir`), its directory after it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if durable:
            fsync_file(tmp)
        os.replace(tmp, path)
        if durable and publish:
            fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str, *, durable: bool = False) -> None:
    with atomic_path(path, durable=durable) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, data, *, durable: bool = False) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n",
               durable=durable)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (Linux renameat2); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def aside_path(target: Path) -> Path:
    """Where `replace_dir` keeps the old contents of ``target`` while it swaps."""
    return target.with_name(f".{target.name}.replaced")


def replace_dir(new: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the complete directory ``new`` to ``target``, replacing what is there.

    ``target`` holds the whole old or the whole new contents at every moment
    (a process killed at any point included): one atomic exchange where the
    system has one, else two renames that `recover_dir` undoes half-way.
    """
    new, target = Path(new), Path(target)
    if not target.exists():
        new.rename(target)
        return
    aside = aside_path(target)
    shutil.rmtree(aside, ignore_errors=True)
    if _exchange(new, target):
        new.rename(aside)  # the old contents, under a name nothing reads
    else:
        target.rename(aside)
        new.rename(target)
    shutil.rmtree(aside, ignore_errors=True)


def recover_dir(target: str | os.PathLike) -> None:
    """Finish what a killed `replace_dir` left: the old contents back if nothing replaced them,
    else the old contents removed."""
    target = Path(target)
    aside = aside_path(target)
    if not aside.is_dir():
        return
    if target.exists():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.rename(target)

"""A kept state's tensors in one file, written and read without the page cache.

Spilled states are written once and read once, so caching them in the
kernel's page cache only costs: every page is copied and faulted in twice,
on the compute threads' cores. Direct I/O (``O_DIRECT``) moves the bytes
between the disk and a reused, page-aligned buffer by DMA instead; where the
file system refuses it (tmpfs, macOS) the same bytes go through ordinary
reads and writes.

The file is a valid safetensors file (tools can open it): the header is
padded with spaces so the data starts on a block boundary, tensors are laid
out by descending element size (each offset a multiple of its element
size), and a trailing ``__padding__`` entry makes the length a whole number
of blocks, as direct I/O requires.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

BLOCK = 4096
_DIRECT = getattr(os, "O_DIRECT", 0)

_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}
_FROM_NAME = {name: dtype for dtype, name in _DTYPES.items()}


@dataclass(frozen=True)
class StoredFile:
    """A file of tensors on disk, with its sha256 (None: not computed) and size."""

    path: Path
    sha256: str | None
    bytes: int


def _round_up(n: int, to: int = BLOCK) -> int:
    return -(-n // to) * to


class BufferPool:
    """Page-aligned anonymous buffers, reused once nothing views them.

    A buffer is free again when the only reference left is the pool's own:
    `torch.frombuffer` holds one reference to the buffer for as long as any
    tensor views it. Reusing buffers keeps the backward from faulting in
    fresh pages for every state it reads.
    """

    def __init__(self):
        self._buffers: list[mmap.mmap] = []

    def get(self, nbytes: int) -> mmap.mmap:
        for buf in self._buffers:
            # References: the list's, this loop's name, getrefcount's argument.
            if len(buf) >= nbytes and sys.getrefcount(buf) <= 3:
                return buf
        buf = mmap.mmap(-1, _round_up(nbytes))
        self._buffers.append(buf)
        return buf

    def clear(self) -> None:
        self._buffers.clear()


def _layout(tensors: dict[str, torch.Tensor]) -> tuple[bytes, list[tuple[str, torch.Tensor, int]], int]:
    """(header bytes, [(name, tensor, data offset)], file size)."""
    order = sorted(tensors, key=lambda k: -tensors[k].element_size())
    meta, placed, offset = {}, [], 0
    for name in order:
        t = tensors[name]
        if t.dtype not in _DTYPES:
            raise TypeError(f"cannot spill a {t.dtype} tensor ({name})")
        nbytes = t.numel() * t.element_size()
        meta[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                      "data_offsets": [offset, offset + nbytes]}
        placed.append((name, t, offset))
        offset += nbytes
    header_len = _round_up(8 + len(json.dumps(meta)) + 200) - 8  # room for the padding entry
    pad = _round_up(offset) - offset
    if pad:
        meta["__padding__"] = {"dtype": "U8", "shape": [pad], "data_offsets": [offset, offset + pad]}
    header = json.dumps(meta).encode()
    header = struct.pack("<Q", header_len) + header + b" " * (header_len - len(header))
    return header, placed, len(header) + offset + pad


def _open(path: Path, flags: int) -> int:
    if _DIRECT:
        try:
            return os.open(path, flags | _DIRECT, 0o600)
        except OSError:
            pass  # e.g. tmpfs: no direct I/O there
    return os.open(path, flags, 0o600)


def _transfer(fd: int, view: memoryview, write: bool) -> int:
    done = 0
    while done < len(view):
        n = os.write(fd, view[done:]) if write else os.readv(fd, [view[done:]])
        if n == 0:
            break
        done += n
    return done


def _copy_into(buf: mmap.mmap, at: int, flat: torch.Tensor) -> None:
    if flat.device.type == "cpu":
        # A plain memcpy, not a torch copy: this runs on the store's worker
        # thread, where a torch copy would start a second OpenMP team whose
        # spinning threads take the cores from the training's own team.
        buf[at: at + flat.numel()] = flat.numpy().data
    else:
        torch.frombuffer(buf, dtype=torch.uint8, count=flat.numel(), offset=at).copy_(flat)


def write_state(path: Path, tensors: dict[str, torch.Tensor], pool: BufferPool, *,
                digest: bool = False, sync: bool = False) -> StoredFile:
    """Write ``tensors`` to ``path``; with ``digest`` the sha256 of the bytes written, computed
    from the buffer once here (a checkpoint referring to the file never reads it back); with
    ``sync`` the file is flushed to disk before this returns (its directory entry is the
    checkpoint's to flush)."""
    header, placed, size = _layout(tensors)
    buf = pool.get(size)
    buf[: len(header)] = header
    for _, t, offset in placed:
        if t.numel():
            _copy_into(buf, len(header) + offset, t.detach().reshape(-1).view(torch.uint8))
    fd = _open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        with memoryview(buf) as view:
            written = _transfer(fd, view[:size], write=True)
        if sync:
            os.fsync(fd)  # direct I/O skips the page cache, not the file's metadata
    finally:
        os.close(fd)
    if written != size:
        raise OSError(f"short write to {path}: {written} of {size} bytes")
    sha = None
    if digest:
        with memoryview(buf) as view:
            sha = hashlib.sha256(view[:size]).hexdigest()
    return StoredFile(path, sha, size)


def read_state(path: Path, pool: BufferPool) -> dict[str, torch.Tensor]:
    """The file's tensors, viewing a pool buffer (valid until they are dropped)."""
    fd = _open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        buf = pool.get(size)
        with memoryview(buf) as view:
            read = _transfer(fd, view[: _round_up(size)], write=False)
    finally:
        os.close(fd)
    (header_len,) = struct.unpack("<Q", buf[:8])
    if read != size or 8 + header_len > size:
        raise OSError(f"{path} is truncated ({read} of {size} bytes)")
    meta = json.loads(buf[8: 8 + header_len])
    start = 8 + header_len
    tensors = {}
    for name, info in meta.items():
        if name == "__padding__":
            continue
        begin, end = info["data_offsets"]
        dtype = _FROM_NAME[info["dtype"]]
        count = (end - begin) // dtype.itemsize
        if start + end > size:
            raise OSError(f"{path} is truncated: {name} ends past the file")
        t = (torch.frombuffer(buf, dtype=dtype, count=count, offset=start + begin) if count
             else torch.empty(0, dtype=dtype))
        tensors[name] = t.view(info["shape"])
    return tensors

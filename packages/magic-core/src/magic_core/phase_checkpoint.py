"""Phase checkpoints: what a stopped run needs to continue, verified before it is used.

A checkpoint is a directory (``RUN_DIR/checkpoints/``) holding safetensors
files and one JSON header, ``checkpoint.json``, that lists them with their
sha256 and records the phase, the step and the run's fingerprint (everything
the numbers depend on). Files are written under temporary names and renamed;
the header is renamed into place last, so the header on disk always
describes complete files, and files of an older checkpoint are removed only
after it.

What is on disk already is not written again. A group the snapshot marks
``lasting`` (its tensors never change once made: a kept state, a kept
gradient, the query gradient) is written once, under a name without the
step, and later checkpoints list that same file. A group given as a
`StoredFile` (a kept state spilled durably, see `state_store`) is listed by
its path and the digest computed when it was written; the store's
``referenced`` then names such files, which their owner must keep.

A checkpoint is durable once its header is: every file it lists is flushed
to disk (``fsync``) and so is the directory entry naming it, before the
header is written, flushed and renamed into place (see `atomic`). A machine
that loses power then finds the last header and every file it lists.

Loading checks the header, the fingerprint and every file's size and sha256.
A truncated, corrupted or foreign checkpoint raises `CheckpointError` (one
line naming the file and the fix) instead of being used.

Under torch.distributed, tensors every rank holds alike are written once, by
rank 0 (``Snapshot.shared``); tensors that differ per rank and change
(cotangent shares, a sharded run's current state) go to one file per rank
(``Snapshot.per_rank``); groups of a rank's own (``Snapshot.rank_groups``:
a sharded run's kept shards, its query gradient) are files of that rank,
lasting ones written once or listed by reference as above, so a sharded
run's checkpoint rewrites no kept shard either. The run directory must be
on a filesystem every rank sees, as for the run's other outputs.

The world size is not part of the fingerprint. A checkpoint of ``n`` ranks
loaded by ``m`` ranks gives rank ``r`` the per-rank tensors of the saved
ranks ``s`` with ``s % m == r`` (``Checkpoint.per_rank_parts``, none when
``r >= n``), for the caller to combine (cotangent shares add up); a snapshot
whose per-rank tensors only make sense for its own world size (``world_bound``:
a sharded run's shards) is refused in one line naming both sizes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .atomic import atomic_path, fsync_dir, write_json
from .errors import ConfigError
from .fingerprint import digest, file_sha256
from .progress import now_iso
from .state_files import StoredFile

# 5: a rank's own groups (sharded kept shards) as files of their own, listed by reference;
# 4: the world size outside the fingerprint (a run may resume on other ranks); 3: files listed
# by reference (lasting groups, spilled states); 2 rewrote every group each time; 1 had one
# layout per phase.
FORMAT = 5
READABLE = (4, 5)  # a format-4 checkpoint reads as it did (its shards in the per-rank file)
HEADER = "checkpoint.json"
FIX = "rerun with --restart (or delete {directory}) to start over"
log = logging.getLogger(__name__)


class CheckpointError(ConfigError):
    """A checkpoint that must not be used (truncated, corrupted, from another job)."""


@dataclass
class Snapshot:
    """What a loop hands over to be saved."""

    # group -> its tensors, or the file already holding them
    shared: dict[str, dict[str, torch.Tensor] | StoredFile] = field(default_factory=dict)
    per_rank: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)  # small and JSON-able
    lasting: set[str] = field(default_factory=set)  # groups whose tensors never change
    # This rank's own groups (shards), each its own file or a file listed by reference.
    rank_groups: dict[str, dict[str, torch.Tensor] | StoredFile] = field(default_factory=dict)
    # The per-rank tensors are meaningless to another world size (shards, not shares).
    world_bound: bool = False


@dataclass
class Checkpoint:
    phase: str
    step: int
    total: int
    shared: dict[str, dict[str, torch.Tensor]]  # shared groups and this rank's own ones
    per_rank: dict[str, torch.Tensor]
    meta: dict
    directory: Path
    written: str
    # Groups listed by reference (spilled states): verified, left for their owner to read.
    files: dict[str, StoredFile] = field(default_factory=dict)
    saved_world_size: int = 1
    # This rank's part of the saved ranks' per-rank tensors: the saved ranks s with
    # s % world_size == rank, in order (``per_rank`` is the first, or empty).
    per_rank_parts: list[dict[str, torch.Tensor]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.per_rank_parts and self.per_rank:
            self.per_rank_parts = [self.per_rank]  # saved and loaded on the same world size


def _storable(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors, none sharing memory (safetensors refuses aliases)."""
    out, seen = {}, set()
    for name, t in tensors.items():
        t = t.detach().to("cpu").contiguous()
        key = t.untyped_storage().data_ptr()
        if t.numel() and key in seen:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[name] = t
    return out


class CheckpointStore:
    """The checkpoint directory of one run, as seen by this rank."""

    def __init__(self, directory: str | os.PathLike, fingerprint: dict | None = None):
        self.directory = Path(directory)
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world_size = dist.get_world_size() if dist.is_initialized() else 1
        # Callers add what they know (job config, model, data) before the first save or load.
        self.fingerprint: dict = dict(fingerprint or {})
        # Lasting groups on disk that this rank writes: group -> (name in the header, entry).
        self._lasting: dict[str, tuple[str, dict]] = {}
        self.referenced: set[Path] = set()  # files outside the directory the header lists
        self.spill_dir = self.directory.parent / "kept-states"  # durable spills; cleared with it
        self.last_written = 0  # bytes the last `save` wrote (this rank)

    @property
    def header(self) -> Path:
        return self.directory / HEADER

    def exists(self) -> bool:
        return self.header.is_file()

    def _error(self, what: str) -> CheckpointError:
        return CheckpointError(f"{what}; {FIX.format(directory=self.directory)}")

    # -- saving ------------------------------------------------------------------
    @property
    def rank_spill_dir(self) -> Path:
        """This rank's folder of durable spills when every rank spills its own (sharded runs)."""
        return self.spill_dir / f"rank-{self.rank:05d}"

    def _write(self, name: str, tensors: dict[str, torch.Tensor], group: str | None,
               rank: int | None) -> dict:
        # Flushed now; the directory entry with the others' before the header (`save`).
        with atomic_path(self.directory / name, durable=True, publish=False) as tmp:
            save_file(_storable(tensors), str(tmp))
            size = tmp.stat().st_size
            entry = {"sha256": file_sha256(tmp), "bytes": size, "group": group, "rank": rank}
        self.last_written += size
        return entry

    def _group_file(self, prefix: str, group: str, value, lasting: bool,
                    rank: int | None) -> tuple[str, dict]:
        """(name, header entry) of a group (shared: ``rank`` None): listed if on disk already,
        else written."""
        if lasting and group in self._lasting:
            return self._lasting[group]
        if isinstance(value, StoredFile):
            path = value.path.resolve()
            named = str(path), {"sha256": value.sha256, "bytes": value.bytes, "group": group,
                                "rank": rank, "path": str(path), "lasting": True}
        else:
            stem = group if rank is None else f"{group}-rank{rank:04d}"
            name = f"{stem}.safetensors" if lasting else f"{prefix}-{stem}.safetensors"
            entry = self._write(name, value, group, rank)
            named = name, {**entry, "lasting": lasting}
        if lasting:
            self._lasting[group] = named
        return named

    def save(self, phase: str, step: int, total: int, snapshot: Snapshot) -> Path:
        """Write ``snapshot`` as the run's checkpoint; every rank calls this at the same step."""
        self.directory.mkdir(parents=True, exist_ok=True)
        prefix = f"{phase}-{step:06d}"
        files = {}
        self.last_written = 0
        groups: dict[str, tuple] = {g: (v, None) for g, v in snapshot.shared.items()
                                    if self.rank == 0}
        groups.update({g: (v, self.rank) for g, v in snapshot.rank_groups.items()})
        for group, (value, rank) in groups.items():
            name, entry = self._group_file(prefix, group, value, group in snapshot.lasting, rank)
            files[name] = entry
        # A lasting group left out is gone for good (a state the backward used).
        self._lasting = {g: named for g, named in self._lasting.items() if g in groups}
        if snapshot.per_rank:
            name = f"{prefix}-rank{self.rank:04d}.safetensors"
            files[name] = self._write(name, snapshot.per_rank, None, self.rank)
        # The names of this rank's new files, and of the spills listed, on disk for good.
        for folder in {self.directory} | {Path(e["path"]).parent for e in files.values()
                                          if e.get("path")}:
            fsync_dir(folder)
        if self.world_size > 1:
            gathered: list[dict] = [{} for _ in range(self.world_size)]
            dist.all_gather_object(gathered, files)
            files = {k: v for part in gathered for k, v in part.items()}
        if self.rank == 0:
            write_json(self.header, {
                "format": FORMAT, "phase": phase, "step": step, "total": total,
                "world_size": self.world_size, "world_bound": snapshot.world_bound,
                "written": now_iso(), "host": socket.gethostname(),
                "fingerprint_digest": digest(self.fingerprint), "fingerprint": self.fingerprint,
                "files": files, "meta": snapshot.meta,
            }, durable=True)
            for stale in self.directory.iterdir():
                if stale.name != HEADER and stale.name not in files:
                    stale.unlink(missing_ok=True)
        if self.world_size > 1:
            dist.barrier()  # the header exists before any rank reports the checkpoint
        self.referenced = {Path(e["path"]) for e in files.values() if e.get("path")}
        log.info("checkpoint after %s step %d/%d written to %s", phase, step, total, self.directory)
        return self.directory

    # -- loading -----------------------------------------------------------------
    def load(self, device: str | torch.device = "cpu") -> Checkpoint | None:
        """The verified checkpoint, or None when there is none; every rank calls this."""
        try:
            checkpoint, failure = self._load_here(torch.device(device)), None
        except CheckpointError as exc:
            checkpoint, failure = None, exc
        if self.world_size > 1:
            # Ranks that disagree (one cannot read its shard) would otherwise
            # resume different steps and wait for each other forever; every
            # rank reports the first failing rank's line.
            outcomes: list[tuple[bool, str]] = [(False, "")] * self.world_size
            dist.all_gather_object(outcomes, (checkpoint is not None, str(failure or "")))
            messages = [message for _, message in outcomes if message]
            if failure is None and messages:
                failure = CheckpointError(messages[0])
            elif failure is None and len({found for found, _ in outcomes}) > 1:
                failure = self._error(f"checkpoint {self.directory} is missing on some ranks")
        if failure is not None:
            raise failure
        return checkpoint

    def _read_header(self) -> dict:
        try:
            header = json.loads(self.header.read_text())
        except (OSError, ValueError) as exc:
            raise self._error(f"checkpoint header {self.header} is unreadable ({type(exc).__name__})") from None
        if not isinstance(header, dict) or header.get("format") not in READABLE:
            raise self._error(f"checkpoint header {self.header} is not a format-{FORMAT} checkpoint")
        return header

    def _check_fingerprint(self, header: dict) -> None:
        if header.get("fingerprint_digest") == digest(self.fingerprint):
            return
        theirs = header.get("fingerprint") or {}
        differ = sorted(k for k in set(theirs) | set(self.fingerprint)
                        if digest(theirs.get(k)) != digest(self.fingerprint.get(k)))
        raise self._error(f"checkpoint {self.directory} belongs to a different job "
                          f"({', '.join(differ) or 'fingerprint'} differ)")

    def _check_world_size(self, header: dict) -> int:
        """The saved world size; refused where its per-rank tensors cannot be regrouped."""
        saved = header.get("world_size", 1)
        if saved != self.world_size and header.get("world_bound"):
            raise CheckpointError(
                f"checkpoint {self.directory} holds the shards of a sharded (fsdp) run on {saved} "
                f"rank(s) and this run has {self.world_size}; rerun on {saved} rank(s) to resume, "
                f"or with --restart (or delete {self.directory}) to start over")
        return saved

    def _mine(self, rank: int | None, saved: int) -> bool:
        """Whether this rank reads a file of saved rank ``rank`` (None: shared)."""
        if rank is None:
            return True
        return rank == self.rank if saved == self.world_size else rank % self.world_size == self.rank

    def _load_here(self, device: torch.device) -> Checkpoint | None:
        if not self.exists():
            return None
        header = self._read_header()
        self._check_fingerprint(header)
        saved = self._check_world_size(header)
        shared: dict[str, dict[str, torch.Tensor]] = {}
        parts: dict[int, dict[str, torch.Tensor]] = {}
        files: dict[str, StoredFile] = {}
        lasting, referenced = {}, set()
        for name, entry in header["files"].items():
            if not self._mine(entry["rank"], saved):
                continue
            path = Path(entry["path"]) if entry.get("path") else self.directory / name
            if not path.is_file():
                raise self._error(f"checkpoint file {path} is missing")
            size = path.stat().st_size
            if size != entry["bytes"]:
                raise self._error(f"checkpoint file {path} is truncated or overwritten "
                                  f"({size} bytes, {entry['bytes']} written)")
            if file_sha256(path) != entry["sha256"]:
                raise self._error(f"checkpoint file {path} is corrupted (sha256 differs from its header)")
            if entry.get("lasting"):
                lasting[entry["group"]] = (name, entry)
            if entry.get("path"):
                # A spilled state: its owner reads it when needed (it may be large).
                files[entry["group"]] = StoredFile(path, entry["sha256"], entry["bytes"])
                referenced.add(path)
                continue
            try:
                tensors = load_file(path, device=str(device))
            except (SafetensorError, OSError, ValueError) as exc:
                raise self._error(f"checkpoint file {path} cannot be read ({exc})") from None
            tensors.pop("__padding__", None)
            if entry["group"] is not None:
                shared[entry["group"]] = tensors  # shared, or this rank's own group
            else:
                parts[entry["rank"]] = tensors
        self._lasting, self.referenced = lasting, referenced
        per_rank_parts = [parts[r] for r in sorted(parts)]
        return Checkpoint(header["phase"], header["step"], header["total"], shared,
                          per_rank_parts[0] if per_rank_parts else {}, header.get("meta", {}),
                          self.directory, header.get("written", ""), files, saved, per_rank_parts)

    # -- removal -----------------------------------------------------------------
    def clear(self) -> None:
        """Remove the checkpoint (a finished run, or ``--restart``); every rank calls this."""
        if self.world_size > 1:
            dist.barrier()  # no rank is still reading it
        # Each rank removes its own spills (its folder may be on a disk of its node only).
        shutil.rmtree(self.rank_spill_dir, ignore_errors=True)
        if self.rank == 0:
            shutil.rmtree(self.directory, ignore_errors=True)
            shutil.rmtree(self.spill_dir, ignore_errors=True)
        self._lasting, self.referenced = {}, set()
        if self.world_size > 1:
            dist.barrier()

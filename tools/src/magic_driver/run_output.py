"""Where a run writes: checked before any work starts, and never over another job's results.

The output directory of `magic attribute` or `magic unlearn`:

- holds no finished results: the run works in it (resuming its checkpoint);
- holds the finished results of the same job: they are recomputed and
  replaced. The job file does not pin its inputs (a rebuilt base model, an
  updated dataset or model at the same path), and results that silently
  outlive the inputs they came from are worse than the time a rerun costs;
- holds the finished results of another job, or damaged ones: refused in one
  line, unless ``--restart``;
- a replacement (same job, or ``--restart``) is built in a hidden sibling,
  ``.NAME.replacing``, and swapped in only once complete, so that the
  directory holds the whole old or the whole new results at every moment (a
  killed process included). A replacement stopped by a signal resumes there
  when the command is run again.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from magic_core import ConfigError
from magic_core.atomic import recover_dir, replace_dir
from magic_core.run_reader import read_run
from magic_core.typed_config import to_mapping

from .resumable import CHECKPOINTS, UNFINGERPRINTED
from .run_files import MANIFEST, RESULT, read_json_object


def _read_result(run_dir: Path) -> dict:
    return read_json_object(run_dir / RESULT, f"{run_dir} holds damaged results; pass --restart "
                            "to replace them, or choose another --out")


def _read_manifest(run_dir: Path) -> dict:
    return read_run(run_dir).manifest


# kind -> (the file that marks its results finished, its reader, what it is called)
KINDS: dict[str, tuple[str, Callable[[Path], dict], str]] = {
    "attribute": (MANIFEST, _read_manifest, "attribution run"),
    "unlearn": (RESULT, _read_result, "unlearning run"),
}


def staging_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.replacing")


def check_writable(directory: Path, option: str = "--out") -> None:
    """Refuse an output directory that cannot be written, before any work is done.

    Probes by writing (and removing) a directory where the run will write:
    permission bits do not say it (root ignores them; an immutable or
    read-only mount does not show in them).
    """
    existing = directory
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():
            break  # a dangling link: mkdir would fail on it
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ConfigError(f"{option} {directory}: {existing} is a file, not a directory; choose "
                          f"another {option}")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".magic-write-check.", dir=existing))
    except OSError as exc:
        raise ConfigError(f"{option} {directory}: cannot write in {existing} "
                          f"({exc.strerror or type(exc).__name__}); choose another {option} or "
                          "make it writable") from None


def _leaves(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in _leaves(sub, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def differing_settings(recorded: dict, job) -> list[str]:
    """The job's settings that differ from those a finished run recorded, as
    ``key (there -> here)``; settings that do not change results are left out.
    A key the record lacks (written before it existed) does not count."""
    here = json.loads(json.dumps(to_mapping(job), default=str))
    there = _leaves({k: v for k, v in recorded.items() if k not in UNFINGERPRINTED})
    mine = _leaves({k: v for k, v in here.items() if k not in UNFINGERPRINTED})
    return [f"{key} ({json.dumps(there[key])} there, {json.dumps(value)} here)"
            for key, value in mine.items() if key in there and there[key] != value]


@dataclass
class Plan:
    target: Path
    work_dir: Path  # where the run writes: target, or its staging sibling

    @property
    def replacing(self) -> bool:
        return self.work_dir != self.target

    def commit(self) -> None:
        """The run in ``work_dir`` is complete: its results become ``target``'s."""
        if self.replacing:
            replace_dir(self.work_dir, self.target)

    def abandon(self) -> None:
        """The run failed: a replacement with no checkpoint to resume from is dropped."""
        if self.replacing and not (self.work_dir / CHECKPOINTS).exists():
            shutil.rmtree(self.work_dir, ignore_errors=True)


def plan_output(target: Path, job, kind: str, *, restart: bool = False,
                is_main: bool = True) -> Plan:
    """Decide where a run of ``job`` (``kind``: attribute or unlearn) writes for ``target``."""
    target = Path(target)
    if is_main:
        recover_dir(target)
    check_writable(target)
    marker, read, _ = KINDS[kind]
    for other, (other_marker, _, name) in KINDS.items():
        if other != kind and (target / other_marker).is_file():
            raise ConfigError(f"--out {target} holds a finished {name} ({other_marker}); choose "
                              "another --out")
    if not (target / marker).is_file():
        return Plan(target, target)
    staging = staging_path(target)
    check_writable(target.parent)  # the swap renames target there
    if restart:
        if is_main:
            shutil.rmtree(staging, ignore_errors=True)
        return Plan(target, staging)
    if staging.is_dir():
        return Plan(target, staging)  # a replacement a signal stopped: it resumes
    record = read(target)
    if not isinstance(record.get("config"), dict):
        raise ConfigError(f"--out {target} holds finished results whose job is not recorded; "
                          "pass --restart to replace them, or choose another --out")
    differ = differing_settings(record["config"], job)
    if differ:
        raise ConfigError(f"--out {target} holds the finished results of another job "
                          f"({'; '.join(differ[:3])}{'; ...' if len(differ) > 3 else ''}); pass "
                          "--restart to replace them, or choose another --out")
    return Plan(target, staging)

"""`magic report DIR`: the human-readable files of a run, again, from its machine-readable ones.

An attribution run: report.md, token_heatmap.html and score_histogram.png from
scores.safetensors, documents.parquet and manifest.json. An unlearning run or
sweep: table.md and table.json from each point's result.json (the array tasks
of `magic submit --array` call this after each point). A folder with only
table.json (the demo's unlearn/): table.md from it. Any other folder magic
wrote (a demo's root): each of those found inside it.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import click
import magic_unlearn as mu
from magic_core import ConfigError
from magic_core.outputs import MANIFEST
from magic_core.report import HEATMAP, HISTOGRAM, SUMMARY, write_report
from magic_core.run_reader import read_run

from .run_files import NOT_RUNS, PROGRESS, RESULT, SLURM_DIR, SUBMISSION, SWEEP, TABLE_JSON
from .sweep_grid import grid

# demo root -> demo/unlearn/runs/<run>
_DEPTH = 3


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable ({type(exc).__name__}); rerun that job") from None


def rerender_attribution(run_dir: Path) -> list[Path]:
    run = read_run(run_dir)  # checked whole before anything is rewritten
    assert run.per_example is not None  # read_run loads the scores
    write_report(run_dir, run.documents(), run.per_example, run.per_token, run.manifest)
    written = [SUMMARY, HISTOGRAM] + ([HEATMAP] if run.per_token is not None else [])
    return [run_dir / name for name in written]


@contextmanager
def _exclusive(run_dir: Path) -> Iterator[None]:
    """Array tasks finishing together must not drop each other's rows from the table."""
    with open(run_dir / ".report.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # a file system without locks: last writer wins
            pass
        yield


def rerender_table(run_dir: Path) -> list[Path]:
    sweep = _json(run_dir / "sweep.json") if (run_dir / "sweep.json").is_file() else None
    targets: list[tuple[Path, list[str] | None]]
    if sweep is None:
        targets = [(run_dir, None)]
    else:
        assignments = grid(tuple(sweep.get("params", [])))
        targets = [(run_dir / f"{i:03d}", list(a)) for i, a in enumerate(assignments)]
    with _exclusive(run_dir):
        rows, base = [], None
        for folder, point in targets:
            if not (folder / RESULT).is_file():
                continue  # a point still queued or running
            result = _json(folder / RESULT)
            base = base or result.get("before")
            row = mu.flat_row(result)
            if point is not None:
                row.update(point=point, dir=folder.name)
            rows.append(row)
        if not rows:
            raise ConfigError(f"{run_dir}: no finished point has a {RESULT} yet; see "
                              f"`magic status {run_dir}`")
        mu.write_table(run_dir, rows, base)
    return [run_dir / "table.md", run_dir / "table.json"]


def rerender_saved_table(folder: Path) -> list[Path]:
    """table.md again from table.json: a table of runs that are not points of a sweep."""
    saved = _json(folder / TABLE_JSON)
    if not isinstance(saved.get("rows"), list):
        raise ConfigError(f"{folder / TABLE_JSON} has no list of rows; rerun the job that wrote it")
    with _exclusive(folder):
        mu.write_table(folder, saved["rows"], saved.get("base"))
    return [folder / "table.md"]


def _render_one(folder: Path) -> list[Path] | None:
    """The folder's own files again; None when it has nothing to render from."""
    if (folder / MANIFEST).is_file():
        return rerender_attribution(folder)
    if (folder / RESULT).is_file() or (folder / SWEEP).is_file():
        return rerender_table(folder)
    if (folder / TABLE_JSON).is_file():
        return rerender_saved_table(folder)
    return None


def _is_run(folder: Path) -> bool:
    return (folder / PROGRESS).is_file() or (folder / SLURM_DIR / SUBMISSION).is_file()


def _render_tree(folder: Path, depth: int, skipped: list[str], top: bool = True) -> list[Path]:
    try:
        written = _render_one(folder)
    except ConfigError as exc:
        if top:
            raise
        skipped.append(str(exc))  # one damaged run does not stop the others' rendering
        return []
    # A run's or a sweep's files cover what is inside it; the points of an array
    # sweep may be running in other tasks, so they are left alone.
    if any((folder / name).is_file() for name in (MANIFEST, RESULT, SWEEP)):
        return written or []
    if written is None and _is_run(folder):
        if top:
            raise ConfigError(f"{folder} is not finished: nothing to render yet; see "
                              f"`magic status {folder}`")
        skipped.append(f"{folder}: not finished, nothing to render yet (see `magic status "
                       f"{folder}`)")
        return []
    written = written or []
    if depth > 0:
        for sub in sorted(folder.iterdir()):
            if sub.is_dir() and sub.name not in NOT_RUNS and not sub.name.startswith("."):
                written += _render_tree(sub, depth - 1, skipped, top=False)
    return written


def rerender(run_dir: Path, note: Callable[[str], None] | None = None) -> list[Path]:
    """Rewrite the human-readable files of ``run_dir`` and the runs inside it; returns them.

    ``note`` hears about runs inside it that were skipped, unfinished or
    damaged (default: a line on stderr each).
    """
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {str(run_dir)!r} does not exist")
    skipped: list[str] = []
    written = _render_tree(run_dir, _DEPTH, skipped)
    if not written:
        why = f" ({'; '.join(skipped)})" if skipped else ""
        raise ConfigError(
            f"{run_dir}: nothing to render, no finished run: no {MANIFEST} (attribution), "
            f"{RESULT}, {SWEEP} or {TABLE_JSON} (unlearning) in it or its subfolders{why}; give "
            "a folder that magic attribute, unlearn, sweep or demo wrote")
    for line in skipped:
        (note or partial(click.echo, err=True))(f"skipped {line}")
    return written

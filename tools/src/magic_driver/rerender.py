"""`magic report RUN_DIR`: the human-readable files of a run, again, from its machine-readable ones.

An attribution run: report.md, token_heatmap.html and score_histogram.png from
scores.safetensors, documents.parquet and manifest.json. An unlearning run or
sweep: table.md and table.json from each point's result.json (the array tasks
of `magic submit --array` call this after each point).
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import magic_unlearn as mu
import pyarrow.parquet as pq
from magic_core import ConfigError
from magic_core.outputs import DOCUMENTS, MANIFEST, SCORES
from magic_core.report import HEATMAP, HISTOGRAM, SUMMARY, write_report
from safetensors.torch import load_file

from .sweep import grid

RESULT = "result.json"


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable ({type(exc).__name__}); rerun that job") from None


def rerender_attribution(run_dir: Path) -> list[Path]:
    missing = [name for name in (SCORES, DOCUMENTS) if not (run_dir / name).is_file()]
    if missing:
        raise ConfigError(f"{run_dir} has {MANIFEST} but lacks {', '.join(missing)}; the run "
                          "directory is damaged, rerun the job")
    scores = load_file(str(run_dir / SCORES))
    if "per_example" not in scores:
        raise ConfigError(f"{run_dir / SCORES} has no per_example scores; rerun the job")
    table = pq.read_table(run_dir / DOCUMENTS)
    write_report(run_dir, table, scores["per_example"], scores.get("per_token"),
                 _json(run_dir / MANIFEST))
    written = [SUMMARY, HISTOGRAM] + ([HEATMAP] if "per_token" in scores else [])
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


def rerender(run_dir: Path) -> list[Path]:
    """Rewrite the run's human-readable files; returns them."""
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {str(run_dir)!r} does not exist")
    if (run_dir / MANIFEST).is_file():
        return rerender_attribution(run_dir)
    if (run_dir / RESULT).is_file() or (run_dir / "sweep.json").is_file():
        return rerender_table(run_dir)
    raise ConfigError(f"{run_dir} has neither {MANIFEST} (a finished attribution run) nor "
                      f"{RESULT}/sweep.json (unlearning); nothing to render")

"""`magic sweep`: one unlearning job over a grid of values, one table."""

from __future__ import annotations

import json
from pathlib import Path

import magic_unlearn as mu
from magic_core import ConfigError
from magic_core.atomic import write_json
from magic_core.preemption import handle_signals
from magic_core.typed_config import to_mapping

from .jobs import read_mapping
from .resumable import CHECKPOINTS
from .run_lock import run_dir_lock
from .run_unlearn import prepare, run_unlearn, shared_key
from .sweep_grid import grid, parse_param  # noqa: F401  (parse_param: callers import it from here)
from .unlearn_jobs import build_job


def finished_result(point_dir: Path, job) -> dict | None:
    """The result of a point already run with this config (a rerun of a preempted sweep)."""
    path = point_dir / "result.json"
    if not path.is_file() or (point_dir / CHECKPOINTS).exists():
        return None
    result = json.loads(path.read_text())
    same = result.get("config") == json.loads(json.dumps(to_mapping(job)))
    return result if same else None


def run_sweep(config: Path | None, params: tuple[str, ...], overrides: tuple[str, ...] = (),
              out_dir: Path | None = None, progress: bool = True, restart: bool = False) -> Path:
    """Run every point of the grid; returns the directory holding table.md/table.json.

    A preempted sweep, rerun, keeps the points it finished and resumes the
    one it was in from its checkpoint; ``restart`` recomputes every point
    (replacing another grid's results). Another run in the sweep's directory
    meanwhile is refused (`run_lock`).
    """
    if not params:
        raise ConfigError("magic sweep needs at least one --param KEY=V1,V2,...")
    base = read_mapping(config)
    points = [(p, build_job(base, overrides + p)) for p in grid(params)]  # all validated first
    out_dir = Path(out_dir or build_job(base, overrides).output.dir)
    rows, cache = [], {}
    # Signals are handled between points too: a request waits for the next step.
    with handle_signals(), run_dir_lock(out_dir, "magic sweep"):
        for i, (assignments, job) in enumerate(points):
            key = shared_key(job)
            if key not in cache:
                cache = {key: prepare(job, progress)}  # keep one loaded model at a time
            result = None if restart else finished_result(out_dir / f"{i:03d}", job)
            if result is None:
                result = run_unlearn(job, out_dir / f"{i:03d}", progress, cache[key],
                                     restart=restart)
            rows.append({**mu.flat_row(result), "point": list(assignments), "dir": f"{i:03d}"})
            mu.write_table(out_dir, rows, cache[key].before)  # partial tables survive interruption
        write_json(out_dir / "sweep.json", {"params": list(params), "overrides": list(overrides),
                                            "points": len(rows)})
    return out_dir

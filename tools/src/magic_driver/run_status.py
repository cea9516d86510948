"""`magic status RUN_DIR`: phase, progress and last checkpoint of a run, its result once
done, and what Slurm says about its job."""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from magic_core import ConfigError
from magic_core.outputs import MANIFEST

from .slurm_queries import job_state
from .submit import SLURM_DIR, SUBMISSION

PROGRESS = "progress.json"
RESULT = "result.json"  # an unlearning run's
# The progress.json contract (magic_core.progress): key -> accepted types.
_CONTRACT = {"status": str, "phase": (str, type(None)), "step": int, "total": int,
             "phases_done": list, "last_checkpoint": (dict, type(None)), "updated": str,
             "host": str, "pid": int, "slurm_job_id": (str, type(None))}


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable ({type(exc).__name__}); the run directory is "
                          "damaged, rerun the job") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object; the run directory is damaged")
    return data


def read_progress(run_dir: Path) -> dict | None:
    path = run_dir / PROGRESS
    if not path.is_file():
        return None
    data = _read_json(path)
    for key, types in _CONTRACT.items():
        if not isinstance(data.get(key, ...), types):
            raise ConfigError(f"{path}: {key!r} is missing or of the wrong type; not a progress "
                              "file of magic attribute/unlearn")
    return data


def result_summary(run_dir: Path) -> str | None:
    """One line about a finished run's numbers."""
    if (run_dir / MANIFEST).is_file():
        m = _read_json(run_dir / MANIFEST)
        q, t = m.get("query", {}), m.get("timings", {})
        return (f"{m.get('corpus', {}).get('documents')} documents, "
                f"{m.get('training', {}).get('steps')} steps, {m.get('scores_dtype')} scores, "
                f"query {q.get('before_training', float('nan')):.4g} -> "
                f"{q.get('after_training', float('nan')):.4g}, {t.get('total', 0):.1f} s")
    if (run_dir / RESULT).is_file():
        r = _read_json(run_dir / RESULT)
        before, after = r.get("before", {}), r.get("after", {})
        relearned = r.get("after_relearn") or {}
        line = (f"{r.get('recipe', {}).get('name')}: hazard acc "
                f"{before.get('forget_accuracy', float('nan')):.3f} -> "
                f"{after.get('forget_accuracy', float('nan')):.3f}, general acc "
                f"{before.get('retain_accuracy', float('nan')):.3f} -> "
                f"{after.get('retain_accuracy', float('nan')):.3f}")
        if relearned.get("forget_accuracy") is not None:
            line += f", hazard acc after relearning {relearned['forget_accuracy']:.3f}"
        return line
    return None


def _age(updated: str) -> str:
    try:
        then = datetime.fromisoformat(updated)
    except ValueError:
        return ""
    seconds = (datetime.now(timezone.utc) - then).total_seconds()
    return f" ({seconds:.0f} s ago)"


def _process_gone(progress: dict) -> bool:
    """A 'running' run whose process on this host no longer exists was killed."""
    if progress["host"] != socket.gethostname():
        return False
    try:
        os.kill(progress["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _points(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.iterdir() if p.is_dir() and p.name.isdigit())


def collect(run_dir: Path, ask_slurm: bool = True) -> dict:
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {str(run_dir)!r} does not exist")
    progress = read_progress(run_dir)
    submission_path = run_dir / SLURM_DIR / SUBMISSION
    submission = _read_json(submission_path) if submission_path.is_file() else None
    points = {p.name: read_progress(p) for p in _points(run_dir)}
    if progress is None and submission is None and not any(points.values()) \
            and result_summary(run_dir) is None:
        raise ConfigError(f"{run_dir} has no {PROGRESS}, {SLURM_DIR}/{SUBMISSION} or results: "
                          "not a run directory of magic attribute, unlearn, sweep or submit")
    job_id = (progress or {}).get("slurm_job_id") or (submission or {}).get("job_id")
    if submission and submission.get("array_tasks"):
        job_id = submission["job_id"]  # the array, not the task that wrote progress.json
    info = {"run_dir": str(run_dir), "progress": progress, "submission": submission,
            "result": result_summary(run_dir), "slurm_job_id": job_id, "slurm_state": None,
            "points": {name: p for name, p in points.items() if p is not None}}
    if progress and progress["status"] == "running" and _process_gone(progress):
        info["process_gone"] = True
    if ask_slurm and job_id:
        info["slurm_state"] = job_state(str(job_id))
    return info


def _progress_line(p: dict) -> str:
    phase = p["phase"] or "starting"
    where = f"{phase} step {p['step']}/{p['total']}" if p["total"] else phase
    return f"{p['status']}: {where}"


def format_status(info: dict) -> str:
    rows = [("run", info["run_dir"])]
    p = info["progress"]
    if p is not None:
        state = _progress_line(p)
        if info.get("process_gone"):
            state += f" (but process {p['pid']} on {p['host']} is gone: it was killed)"
        rows.append(("state", state))
        rows.append(("phases done", ", ".join(p["phases_done"]) or "none"))
        c = p["last_checkpoint"]
        rows.append(("last checkpoint", f"{c['phase']} step {c['step']} at {c['time']} ({c['path']})"
                     if c else "none"))
        rows.append(("updated", f"{p['updated']}{_age(p['updated'])} by {p['host']} pid {p['pid']}"))
    elif info["submission"] is not None:
        rows.append(("state", "submitted, not started yet"))
    for name, point in sorted(info["points"].items()):
        rows.append((f"point {name}", _progress_line(point)))
    if info["result"]:
        rows.append(("result", info["result"]))
    if info["slurm_job_id"]:
        state = info["slurm_state"] or "unknown to squeue/sacct/scontrol (or Slurm tools absent)"
        rows.append(("slurm job", f"{info['slurm_job_id']}: {state}"))
    width = max(len(k) for k, _ in rows) + 1
    return "\n".join(f"{k + ':':<{width}} {v}" for k, v in rows)

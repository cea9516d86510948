"""`magic status DIR`: what a directory written by `magic` is, where its runs are, their results.

A run (attribution, unlearning, a Slurm submission) shows its phase, steps,
last checkpoint, result and Slurm job; a collection (a sweep, the demo's
unlearn/ folder, a demo's root) shows one line per run inside it.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from magic_core import ConfigError
from magic_core.number_format import exact, fixed, significant
from magic_core.run_reader import read_manifest

from .run_files import (
    MANIFEST,
    NOT_RUNS,
    PROGRESS,
    RESULT,
    SLURM_DIR,
    SUBMISSION,
    SUMMARY,
    SWEEP,
    TABLE_MD,
    read_json_object,
)
from .slurm_queries import job_state

# The progress.json contract (magic_core.progress): key -> accepted types.
_CONTRACT: dict[str, type | tuple[type, ...]] = {
    "status": str, "phase": (str, type(None)), "step": int, "total": int, "phases_done": list,
    "last_checkpoint": (dict, type(None)), "updated": str, "host": str, "pid": int,
    "slurm_job_id": (str, type(None)),
}
_ATTRIBUTION_PHASES = {"train", "query", "backward"}
_UNLEARNING_PHASES = {"unlearn", "relearn", "evaluate"}
# demo root -> demo/unlearn/runs/<run>: three levels below the directory asked about.
_DEPTH = 3


def _read_json(path: Path) -> dict:
    return read_json_object(path, "the run directory is damaged, rerun the job")


def read_progress(run_dir: Path) -> dict | None:
    path = run_dir / PROGRESS
    if not path.is_file():
        return None
    data = _read_json(path)
    for key, types in _CONTRACT.items():
        if not isinstance(data.get(key, ...), types):
            raise ConfigError(f"{path}: {key!r} is missing or of the wrong type; not a progress "
                              "file of magic attribute/unlearn")
    if not isinstance(data.get("history", []), list):  # absent from files of older versions
        raise ConfigError(f"{path}: 'history' is not a list; not a progress file of magic "
                          "attribute/unlearn")
    return data


def _unlearning_result(r: dict) -> str:
    before, after = r.get("before", {}), r.get("after", {})
    relearned = r.get("after_relearn") or {}
    optim = r.get("optim", {})
    # The options the job set, not the recipe's defaults merged in: what tells two runs apart.
    chosen = ((r.get("config") or {}).get("recipe") or {}).get("options") or {}
    settings = "".join(f" {k}={exact(v)}" for k, v in chosen.items())
    line = (f"{r.get('recipe', {}).get('name')}{settings} lr={exact(optim.get('lr'))}, "
            f"{optim.get('steps')} steps: hazard acc "
            f"{fixed(before.get('forget_accuracy'))} -> {fixed(after.get('forget_accuracy'))}, "
            f"general acc {fixed(before.get('retain_accuracy'))} -> "
            f"{fixed(after.get('retain_accuracy'))}")
    if relearned.get("forget_accuracy") is not None:
        line += f", hazard acc after relearning {fixed(relearned['forget_accuracy'])}"
    return line


def result_summary(run_dir: Path) -> str | None:
    """One line about a finished run's (or a finished demo's) numbers."""
    if (run_dir / MANIFEST).is_file():
        m = read_manifest(run_dir)  # `magic report` checks the files it describes
        q, t = m.get("query", {}), m.get("timings", {})
        return (f"{m.get('corpus', {}).get('documents')} documents, "
                f"{m.get('training', {}).get('steps')} steps, {m.get('scores_dtype')} scores, "
                f"query {significant(q.get('before_training'))} -> "
                f"{significant(q.get('after_training'))}, {t.get('total', 0):.1f} s")
    if (run_dir / RESULT).is_file():
        return _unlearning_result(_read_json(run_dir / RESULT))
    if (run_dir / SUMMARY).is_file():
        att = _read_json(run_dir / SUMMARY).get("attribution", {})
        return (f"attribution: precision@{att.get('k')} {fixed(att.get('precision_at_k'))} "
                f"(planted documents among the lowest-scored), query "
                f"{significant(att.get('query_before'))} -> {significant(att.get('query_after'))}"
                f"; unlearning: unlearn/{TABLE_MD}")
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


def _is_run(folder: Path) -> bool:
    return any((folder / name).is_file() for name in (PROGRESS, RESULT, MANIFEST)) \
        or (folder / SLURM_DIR / SUBMISSION).is_file()


def _members(folder: Path, depth: int = _DEPTH) -> list[Path]:
    """Runs inside ``folder`` (not itself), in path order."""
    found = []
    for sub in sorted(folder.iterdir()):
        if not sub.is_dir() or sub.name in NOT_RUNS or sub.name.startswith("."):
            continue
        if _is_run(sub):
            found.append(sub)
        elif depth > 1:
            found += _members(sub, depth - 1)
    return found


def _points(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def _kind(folder: Path, progress: dict | None, members: list[Path]) -> str:
    if (folder / MANIFEST).is_file():
        return "attribution run"
    if (folder / RESULT).is_file():
        return "unlearning run"
    if (folder / SWEEP).is_file():
        params = _read_json(folder / SWEEP).get("params") or []
        return f"sweep over {' x '.join(map(str, params))}" if params else "sweep"
    if members and all(m.parent == folder and m.name.isdigit() for m in members):
        return "sweep"
    if (folder / SUMMARY).is_file() or ((folder / "attribution").is_dir()
                                        and (folder / "unlearn").is_dir()):
        return "magic demo"
    if (folder / "runs").is_dir() and (folder / "scores-forget").is_dir():
        return "magic demo unlearning (scores, one run per recipe and lr, one table)"
    if progress is not None:
        phases = set(progress["phases_done"]) | {progress["phase"]}
        if phases & _UNLEARNING_PHASES:
            return "unlearning run"
        if phases & _ATTRIBUTION_PHASES:
            return "attribution run"
        return "run"
    if (folder / SLURM_DIR / SUBMISSION).is_file():
        return "Slurm submission"
    return "folder of runs"


def _phase_line(p: dict) -> str:
    phase = p["phase"] or "starting"
    return f"{phase} step {p['step']}/{p['total']}" if p["total"] else phase


def _state(progress: dict | None, submission: dict | None, result: str | None,
           gone: bool = False) -> str:
    if progress is not None:
        if progress["status"] == "done":
            return "done"
        state = f"{progress['status']}: {_phase_line(progress)}"
        if gone:
            state += (f" (but process {progress['pid']} on {progress['host']} is gone: it was "
                      "killed)")
        return state
    if result is not None:
        return "done"
    if submission is not None:
        return "submitted, not started yet"
    return "not started"


def _phases_done(p: dict) -> str:
    """The phases that ended, with the steps each ran (names only in files without history)."""
    history = p.get("history") or []
    if not {h.get("phase") for h in history} >= set(p["phases_done"]):
        return ", ".join(p["phases_done"]) or "none"
    return ", ".join(f"{h['phase']} {h['step']}/{h['total']} steps" if h.get("total")
                     else str(h["phase"]) for h in history) or "none"


def _describe(run: Path) -> dict:
    """A member run of a collection, without asking Slurm."""
    progress = read_progress(run)
    submission_path = run / SLURM_DIR / SUBMISSION
    submission = _read_json(submission_path) if submission_path.is_file() else None
    result = result_summary(run)
    gone = bool(progress and progress["status"] == "running" and _process_gone(progress))
    return {"kind": _kind(run, progress, []), "state": _state(progress, submission, result, gone),
            "status": (progress or {}).get("status") or ("done" if result else "submitted"),
            "result": result, "progress": progress}


def _collection_state(members: dict[str, dict], expected: int | None) -> str:
    counts: dict[str, int] = {}
    for m in members.values():
        counts[m["status"]] = counts.get(m["status"], 0) + 1
    total = max(expected or 0, len(members))
    if len(members) < total:
        counts["not started"] = total - len(members)
    done = counts.pop("done", 0)
    if not counts:
        return f"done: all {total} runs"
    overall = next(s for s in ("running", "failed", "preempted", "submitted", "not started")
                   if s in counts)
    rest = "".join(f", {n} {status}" for status, n in counts.items())
    return f"{overall}: {done} of {total} runs done{rest}"


def collect(run_dir: Path, ask_slurm: bool = True) -> dict:
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {str(run_dir)!r} does not exist")
    progress = read_progress(run_dir)
    submission_path = run_dir / SLURM_DIR / SUBMISSION
    submission = _read_json(submission_path) if submission_path.is_file() else None
    result = result_summary(run_dir)
    members = _members(run_dir)
    if progress is None and submission is None and result is None and not members:
        raise ConfigError(
            f"{run_dir} is not a run directory: neither it nor its subfolders hold "
            f"{PROGRESS}, {RESULT}, {MANIFEST}, {SUMMARY} or {SLURM_DIR}/{SUBMISSION}; give a "
            "folder that magic attribute, unlearn, sweep, demo or submit wrote")
    described = {}
    for m in members:
        name = m.relative_to(run_dir).as_posix()
        described[f"point {name}" if m.parent == run_dir and m.name.isdigit() else name] = \
            _describe(m)
    job_id = (progress or {}).get("slurm_job_id") or (submission or {}).get("job_id")
    if submission and submission.get("array_tasks"):
        job_id = submission["job_id"]  # the array, not the task that wrote progress.json
    info = {"run_dir": str(run_dir), "kind": _kind(run_dir, progress, members),
            "progress": progress, "submission": submission, "result": result,
            "slurm_job_id": job_id, "slurm_state": None,
            "points": {p.name: read_progress(p) for p in _points(run_dir)
                       if (p / PROGRESS).is_file()},
            "members": described}
    gone = bool(progress and progress["status"] == "running" and _process_gone(progress))
    if gone:
        info["process_gone"] = True
    if described and progress is None:
        sweep = _read_json(run_dir / SWEEP) if (run_dir / SWEEP).is_file() else {}
        expected = sweep.get("points") or (submission or {}).get("array_tasks")
        info["state"] = _collection_state(described, expected)
    else:
        info["state"] = _state(progress, submission, result, gone)
    if (run_dir / TABLE_MD).is_file():
        info["table"] = str(run_dir / TABLE_MD)
    if ask_slurm and job_id:
        info["slurm_state"] = job_state(str(job_id))
    return info


def _member_line(m: dict) -> str:
    line = f"{m['kind']}, {m['state']}"
    return f"{line}; {m['result']}" if m["result"] and m["state"] == "done" else line


def format_status(info: dict) -> str:
    rows = [("run", info["run_dir"]), ("kind", info["kind"]), ("state", info["state"])]
    p = info["progress"]
    if p is not None:
        rows.append(("phases done", _phases_done(p)))
        c = p["last_checkpoint"]
        rows.append(("last checkpoint", f"{c['phase']} step {c['step']} at {c['time']} ({c['path']})"
                     if c else "none"))
        rows.append(("updated", f"{p['updated']}{_age(p['updated'])} by {p['host']} pid {p['pid']}"))
    if info["result"]:
        rows.append(("result", info["result"]))
    if info.get("table"):
        rows.append(("table", info["table"]))
    if info["slurm_job_id"]:
        state = info["slurm_state"] or "unknown to squeue/sacct/scontrol (or Slurm tools absent)"
        rows.append(("slurm job", f"{info['slurm_job_id']}: {state}"))
    width = max(len(k) for k, _ in rows) + 1
    lines = [f"{k + ':':<{width}} {v}" for k, v in rows]
    members = info["members"]
    if members:
        lines.append(f"runs ({len(members)}):")
        name_width = max(len(name) for name in members) + 1
        lines += [f"  {name + ':':<{name_width}} {_member_line(m)}" for name, m in members.items()]
    return "\n".join(lines)

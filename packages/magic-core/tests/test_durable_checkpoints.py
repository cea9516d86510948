"""Periodic checkpoints: a run killed at any step resumes from the last one, bit for bit,
and no checkpoint writes again what is on disk already (spilled states, earlier kept states).

Tiny GPT-NeoX, float64, 5 steps; ``device_memory: 0`` spills every kept state.
A "kill" is an exception out of a step (no checkpoint, no cleanup), as SIGKILL leaves
the run directory.
"""

import json
import os
from functools import partial
from pathlib import Path

import pytest
from magic_core.durations import parse_duration
from magic_core.errors import ConfigError
from magic_core.phase_checkpoint import HEADER, CheckpointError, CheckpointStore
from magic_core.progress import ProgressFile
from magic_core.run_control import RunControl

EVERY_STEP = 1e-9  # seconds: a checkpoint after every step


class Killed(Exception):
    pass


class Periodic(RunControl):
    """Checkpoints after every step; records each header; "dies" after ``kill_at``."""

    def __init__(self, run_dir: Path, kill_at=None):
        super().__init__(CheckpointStore(run_dir / "checkpoints", {"job": "test"}),
                         ProgressFile(run_dir), checkpoint_every=EVERY_STEP)
        self.kill_at, self.headers = kill_at, []

    def after_step(self, phase, step, total, snapshot):
        super().after_step(phase, step, total, snapshot)
        header = self.store.header
        self.headers.append(json.loads(header.read_text()))
        if (phase, step) == self.kill_at:
            raise Killed


@pytest.fixture(scope="module")
def run(resumable_run):
    """Every kept state spilled, so that checkpoints list spill files; compared with
    `uninterrupted`, whose kept states stay in memory."""
    return partial(resumable_run, device_memory="0")


def referenced(header: dict) -> dict[str, dict]:
    return {e["group"]: e for e in header["files"].values() if e.get("path")}


def test_periodic_checkpoints_change_no_number_and_leave_nothing_behind(run, uninterrupted, tmp_path, assert_identical):
    control = Periodic(tmp_path)
    result = run(control)
    assert_identical(result, uninterrupted("sqrt"))
    assert [s["phase"] for s in control.saves].count("backward") == result.n_steps
    control.finished()
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "kept-states").exists()


def test_a_spilled_state_is_referenced_not_rewritten(run, tmp_path, monkeypatch):
    written = []
    original = CheckpointStore._write
    monkeypatch.setattr(CheckpointStore, "_write",
                        lambda self, name, *a: written.append(name) or original(self, name, *a))
    control = Periodic(tmp_path, kill_at=("backward", 1))
    with pytest.raises(Killed):
        run(control)
    first = referenced(control.headers[0])
    assert first, "a spilled kept state is listed by reference"
    for group, entry in first.items():
        path = Path(entry["path"])
        assert path.parent == (tmp_path / "kept-states").resolve()
        stat = path.stat()
        # Every later checkpoint of training lists the very same file, untouched.
        for header in control.headers[1:]:
            if header["phase"] == "train":
                assert referenced(header)[group]["path"] == entry["path"]
        assert (stat.st_ino, stat.st_mtime_ns) == (path.stat().st_ino, path.stat().st_mtime_ns)
        assert not any(group in name for name in written)  # never written by a checkpoint
    # What lives in memory only is written once, then listed: no lasting group twice.
    lasting = [n for n in written if n.startswith(("kept-", "grad-", "query"))]
    assert len(lasting) == len(set(lasting))
    assert control.saves[1]["bytes"] < sum(e["bytes"] for e in control.headers[1]["files"].values())


@pytest.mark.parametrize("kill_at, schedule", [(("train", 3), "sqrt"), (("query", 1), "sqrt"),
                                               (("backward", 2), "sqrt"),
                                               (("backward", 3), "gradients")])
def test_a_killed_run_resumes_from_its_last_checkpoint(kill_at, schedule, run, uninterrupted,
                                                       tmp_path, assert_identical):
    with pytest.raises(Killed):
        run(Periodic(tmp_path, kill_at), schedule)
    header = json.loads((tmp_path / "checkpoints" / HEADER).read_text())
    assert (header["phase"], header["step"]) == kill_at
    resumed_control = Periodic(tmp_path)
    resumed = run(resumed_control, schedule)
    assert_identical(resumed, uninterrupted(schedule))
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["resumed_from"]["phase"] == kill_at[0]
    assert progress["resumed_from"]["step"] == kill_at[1]


def test_a_truncated_spill_file_is_refused_in_one_line(run, tmp_path):
    with pytest.raises(Killed):
        run(Periodic(tmp_path, ("train", 4)))
    header = json.loads((tmp_path / "checkpoints" / HEADER).read_text())
    path = Path(next(iter(referenced(header).values()))["path"])
    os.truncate(path, path.stat().st_size // 2)
    with pytest.raises(CheckpointError) as refused:
        run(Periodic(tmp_path))
    message = str(refused.value)
    assert "\n" not in message and str(path) in message and "truncated" in message


def test_spills_a_killed_run_made_after_its_checkpoint_are_swept(run, tmp_path):
    with pytest.raises(Killed):
        run(Periodic(tmp_path, ("train", 2)))
    stray = tmp_path / "kept-states" / "state-0000009-deadbeef0000.safetensors"
    stray.write_bytes(b"partial")
    run(Periodic(tmp_path))
    assert not stray.exists()


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("10m", 600), ("1h", 3600), ("90", 90),
                                           ("0.5s", 0.5), ("0", None), ("off", None), (False, None),
                                           (0, None), (2.5, 2.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5s", "10 minutes", "", "1d", True])
def test_a_bad_duration_is_refused_in_one_line(text):
    with pytest.raises(ConfigError) as refused:
        parse_duration(text, "--checkpoint-every")
    assert str(refused.value).startswith("--checkpoint-every: ") and "\n" not in str(refused.value)

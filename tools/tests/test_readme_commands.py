"""Every `magic` line of the README's bash blocks works as written.

The lines run in order, as typed (through bash, comments and `>` included),
in a fresh folder with the environment's `magic` first on PATH, no user
cluster profiles and the Hugging Face hub offline. A line that needs what a
test machine lacks is decided by rule, never by trying it:

- not a `magic` line (`make`, `torchrun`): skipped; torchrun starts several
  training processes of the job's hub model.
- `magic demo`: skipped, minutes of CPU; tools/tests/test_demo.py runs it.
- `magic status|report DIR` where DIR lies in the output of a skipped line:
  skipped, that run was never made here.
- `magic attribute|unlearn|sweep JOB ...` whose JOB names a hub model (not
  `builtin:...`, not a local directory): needs the hub and GPUs, so it is
  checked instead as `magic submit JOB ... --dry-run`, which reads the job
  file, its --set overrides and --param grid as the run would, and stops
  before loading anything.
- `magic submit` without --dry-run: needs a running Slurm; run with --dry-run
  added (every check, no sbatch).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
TRAINING = {"attribute", "unlearn", "sweep"}


def readme_lines(text: str) -> list[str]:
    """The commands of the bash blocks, continuation lines joined."""
    lines: list[str] = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        pending = ""
        for raw in block.splitlines():
            line = pending + raw.strip()
            if line.endswith("\\"):
                pending = line[:-1].rstrip() + " "
                continue
            pending = ""
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def words_of(line: str) -> list[str]:
    """The command's own words: no comment, nothing from a redirection on."""
    words = shlex.split(line, comments=True)
    for i, word in enumerate(words):
        if word in (">", ">>", "|", "&&", ";"):
            return words[:i]
    return words


def _job_mapping(job: str, cwd: Path) -> dict:
    if job.startswith("preset:"):
        from magic_driver.presets import get_preset

        return get_preset(job).mapping()
    return yaml.safe_load((cwd / job).read_text()) or {}


def needs_hub(job: str, cwd: Path) -> bool:
    if not job.startswith("preset:") and not (cwd / job).is_file():
        return False  # run it: the command's own error says what is missing
    path = str((_job_mapping(job, cwd).get("model") or {}).get("path", "builtin:"))
    return not path.startswith("builtin:") and not (cwd / path).is_dir()


def _out_dir(words: list[str], default: str) -> str:
    return words[words.index("--out") + 1] if "--out" in words else default


def plan(line: str, cwd: Path, not_made: list[str]) -> tuple[str, object]:
    """("run", shell line) | ("check", argv) | ("skip", reason); may add to ``not_made``."""
    words = words_of(line)
    if words and words[0] == "torchrun":
        return "skip", "torchrun starts several training processes of the job's hub model"
    if not words or words[0] != "magic":
        return "skip", "not a magic command"
    command = words[1] if len(words) > 1 else ""
    if command == "demo":
        not_made.append(_out_dir(words, "runs/demo"))
        return "skip", "minutes of CPU; tools/tests/test_demo.py runs magic demo"
    if command in ("status", "report") and len(words) > 2:
        target = Path(words[2])
        if any(target == Path(d) or Path(d) in target.parents for d in not_made):
            return "skip", f"{target} comes from a skipped line"
    if command in TRAINING and len(words) > 2 and needs_hub(words[2], cwd):
        return "check", ["magic", "submit", *words[2:], "--dry-run"]
    if command == "submit" and "--dry-run" not in words:
        return "check", [*words, "--dry-run"]
    return "run", line


def failing_lines(text: str, cwd: Path) -> tuple[list[str], dict[str, int]]:
    """Each line of ``text`` that fails, with its error; and how many lines ran, checked, skipped."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "MAGIC_CLUSTER_CONFIG": str(cwd / "profiles"), "MAGIC_CACHE": str(cwd / "cache"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("MAGIC_CLUSTER", None)
    lines = readme_lines(text)
    not_made: list[str] = []
    failures, done = [], {"run": 0, "check": 0, "skip": 0}
    for line in lines:
        how, what = plan(line, cwd, not_made)
        done[how] += 1
        if how == "skip":
            continue
        shell = ["bash", "-c", what] if how == "run" else what
        proc = subprocess.run(shell, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=300)
        if proc.returncode != 0 or "Traceback" in proc.stderr:
            tail = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
            failures.append(f"{line}\n    [{how}] exit {proc.returncode}: {tail}")
    return failures, done


def test_every_readme_command_works_as_written(tmp_path):
    failures, done = failing_lines(README.read_text(), tmp_path)
    assert not failures, "README commands that fail:\n" + "\n".join(failures)
    # The rules must leave most lines running: a rule that skipped everything passes nothing.
    assert done["run"] + done["check"] > done["skip"], done


def test_the_rules_catch_a_broken_line(tmp_path):
    (tmp_path / "job.yaml").write_text("model: {path: EleutherAI/pythia-14m}\n")
    not_made: list[str] = []
    assert plan("magic demo --out runs/x", tmp_path, not_made)[0] == "skip"
    assert plan("magic report runs/x/attribution", tmp_path, not_made)[0] == "skip"
    assert plan("magic report runs/y", tmp_path, not_made) == ("run", "magic report runs/y")
    assert plan("magic attribute job.yaml --set train.lr=1  # c", tmp_path, not_made) == (
        "check", ["magic", "submit", "job.yaml", "--set", "train.lr=1", "--dry-run"])
    assert plan("magic submit preset:x --cluster gh200", tmp_path, not_made) == (
        "check", ["magic", "submit", "preset:x", "--cluster", "gh200", "--dry-run"])
    assert plan("magic presets show a > b.yaml", tmp_path, not_made)[0] == "run"
    assert readme_lines("```bash\nmagic a \\\n  --b  # c\n# only a comment\n```\n") == [
        "magic a --b  # c"]

"""Names of the files that tell what a directory written by `magic` is.

Kept free of heavy imports so that `magic status` reads run directories
without loading torch. The writers' own modules define the same names
(magic_core.outputs, magic_core.progress, submit, sweep, demo, magic_unlearn.table);
a test checks they agree.
"""

import json
from pathlib import Path

from magic_core import ConfigError

PROGRESS = "progress.json"  # any run while and after it runs
MANIFEST = "manifest.json"  # a finished attribution run
RESULT = "result.json"  # a finished unlearning run
SWEEP = "sweep.json"  # a sweep: its grid (magic sweep, magic submit --array)
SUMMARY = "summary.json"  # the root of a magic demo
TABLE_MD, TABLE_JSON = "table.md", "table.json"  # unlearning runs, sweeps, the demo's unlearn/
SLURM_DIR, SUBMISSION = "slurm", "submission.json"  # magic submit
# Folders inside a run that hold no runs of their own.
NOT_RUNS = frozenset({"checkpoints", SLURM_DIR, "model"})


def read_json_object(path: Path, fix: str) -> dict:
    """A JSON object file that magic wrote; damage is the user's to mend, as ``fix`` says."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable ({type(exc).__name__}); {fix}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object; {fix}")
    return data

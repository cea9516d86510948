"""Names of the files that tell what a directory written by `magic` is.

Kept free of imports so that `magic status` reads run directories without
loading torch. The writers' own modules define the same names
(magic_core.outputs, magic_core.progress, submit, sweep, demo, magic_unlearn.table);
a test checks they agree.
"""

PROGRESS = "progress.json"  # any run while and after it runs
MANIFEST = "manifest.json"  # a finished attribution run
RESULT = "result.json"  # a finished unlearning run
SWEEP = "sweep.json"  # a sweep: its grid (magic sweep, magic submit --array)
SUMMARY = "summary.json"  # the root of a magic demo
TABLE_MD, TABLE_JSON = "table.md", "table.json"  # unlearning runs, sweeps, the demo's unlearn/
SLURM_DIR, SUBMISSION = "slurm", "submission.json"  # magic submit
# Folders inside a run that hold no runs of their own.
NOT_RUNS = frozenset({"checkpoints", SLURM_DIR, "model"})

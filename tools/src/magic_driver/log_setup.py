"""Where the packages' log records go when `magic` runs: stderr, at the level asked for.

The level applies to this project's loggers only. Third-party libraries
(transformers, datasets, torch) keep Python's defaults (warnings and errors
to stderr), so ``-v`` shows what the run decided (the resolved plan:
schedule, memory tiers, spill directory, world size) without their INFO
chatter.
"""

from __future__ import annotations

import logging
import os
import sys

PACKAGES = ("magic_core", "magic_datasets", "magic_unlearn", "magic_driver", "torch_dtensor_patch")
LEVELS = ("debug", "info", "warning", "error")
DEFAULT_LEVEL = "warning"  # the output of a run stays what it was without logging
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a record comes (click's test runner and
    pytest swap it); its class marks the handler `configure` installed."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # handle() holds the handler's lock around emit()
        super().emit(record)


def level_from_flags(level: str | None, verbose: int) -> str:
    """``--log-level`` wins; else each ``-v`` lowers the level by one step from the default."""
    if level is not None:
        return level.lower()
    start = LEVELS.index(DEFAULT_LEVEL)
    return LEVELS[max(0, start - verbose)]


def configure(level: str = DEFAULT_LEVEL) -> None:
    """Send the project's log records at ``level`` and above to stderr (once, however
    often it is called)."""
    ranks = int(os.environ.get("WORLD_SIZE", "1") or 1)
    # Under torchrun or srun every rank logs: say which one.
    fmt = f"%(asctime)s rank {os.environ.get('RANK', '?')} " + FORMAT[len("%(asctime)s "):] \
        if ranks > 1 else FORMAT
    formatter = logging.Formatter(fmt, datefmt="%H:%M:%S")
    for package in PACKAGES:
        logger = logging.getLogger(package)
        for old in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
            logger.removeHandler(old)
        # On each package's logger, not the root: third-party records keep Python's
        # default treatment, and records still propagate to handlers a host program
        # (or pytest) put on the root.
        handler = _StderrHandler(sys.stderr)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
        logger.setLevel(level.upper())

"""Whether a job's ``device`` names a device, checked when the job is read.

The common names are recognised without torch, so that reading a job (``magic
submit --dry-run``) stays light; any other name is whatever ``torch.device``
accepts (mps, xpu, ...).
"""

from __future__ import annotations

import re

_COMMON = re.compile(r"(auto|cpu|cuda)(:\d+)?")


def device_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a device, or None."""
    if _COMMON.fullmatch(name) and not name.startswith("auto:"):
        return None
    import torch

    try:
        torch.device(name)
    except (RuntimeError, ValueError):
        return f"{name!r} is not a device; use auto, cpu, cuda, cuda:N (the Nth GPU) or mps"
    return None

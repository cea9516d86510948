"""Durations as a job file or command line writes them: ``30s``, ``10m``, ``1h``, ``0``/``off``."""

from __future__ import annotations

import math
import re

from .errors import ConfigError

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
_FORM = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*$")
EXAMPLES = "e.g. 30s, 10m, 1h, or 0/off for none"


def parse_duration(value, what: str = "duration") -> float | None:
    """Seconds, or None for ``0``/``off`` (YAML reads ``off`` as false); `ConfigError` otherwise."""
    if value is False or (isinstance(value, str) and value.strip().lower() in ("off", "none")):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _FORM.match(str(value)) if isinstance(value, str) else None
        if match is None:
            raise ConfigError(f"{what}: {value!r} is not a duration; write a number with s, m "
                              f"or h ({EXAMPLES})")
        seconds = float(match[1]) * _UNITS[match[2]]
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{what}: {value!r} is not a duration ({EXAMPLES})")
    return seconds or None


def duration_problem(value) -> str | None:
    """What is wrong with ``value`` as a duration (for a job file's check), or None."""
    try:
        parse_duration(value)
    except ConfigError as exc:
        return str(exc).split(": ", 1)[1]
    return None

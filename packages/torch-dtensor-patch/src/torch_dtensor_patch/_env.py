"""Environment switches, parsed in one place.

Every switch defaults to on. An empty value counts as off: setting the
variable at all (``TORCH_DTENSOR_PATCH=``) is read as an attempt to turn the
patch off, never as "use the default". A value that is neither a true nor a
false word is not guessed at: it keeps the default and warns once per process,
naming the value and the accepted words.
"""

from __future__ import annotations

import os
import warnings

TRUE_WORDS = ("1", "true", "yes", "on", "y", "enable", "enabled")
FALSE_WORDS = ("0", "false", "no", "off", "n", "none", "disable", "disabled", "")

PATCH = "TORCH_DTENSOR_PATCH"
PATCH_FROM_LOCAL = "TORCH_DTENSOR_PATCH_FROM_LOCAL"

# Switches are read at every interpreter start-up (the .pth hook) and again
# by verify() and apply(); one warning per variable and value is enough.
_warned: set[tuple[str, str]] = set()


def parse(value: str) -> bool | None:
    """True or False for a known word (case and surrounding spaces ignored), else None."""
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def accepted_words() -> str:
    false = ", ".join(w for w in FALSE_WORDS if w) + " or empty"
    return f"{', '.join(TRUE_WORDS)} (on); {false} (off)"


def switch(name: str, default: bool = True) -> bool:
    """The value of the switch ``name``; unset or not understood gives ``default``."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    parsed = parse(raw)
    if parsed is not None:
        return parsed
    if (name, raw) not in _warned:
        _warned.add((name, raw))
        warnings.warn(
            f"torch_dtensor_patch: {name}={raw!r} is not understood, so it stays "
            f"{'on' if default else 'off'}; accepted values: {accepted_words()}",
            RuntimeWarning,
            stacklevel=3,
        )
    return default


def enabled() -> bool:
    """TORCH_DTENSOR_PATCH=0 turns off automatic patching (and verify's patching)."""
    return switch(PATCH)


def from_local_enabled() -> bool:
    """TORCH_DTENSOR_PATCH_FROM_LOCAL=0 leaves the from_local backward alone."""
    return switch(PATCH_FROM_LOCAL)

"""Environment switches, read in one place."""

import os

_OFF = {"0", "false", "no", "off"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "1").strip().lower() not in _OFF


def enabled() -> bool:
    """TORCH_DTENSOR_PATCH=0 turns off automatic patching (and verify's patching)."""
    return _flag("TORCH_DTENSOR_PATCH")


def from_local_enabled() -> bool:
    """TORCH_DTENSOR_PATCH_FROM_LOCAL=0 leaves the from_local backward alone."""
    return _flag("TORCH_DTENSOR_PATCH_FROM_LOCAL")

"""Install and remove the replacement backwards, remembering the originals."""

from __future__ import annotations

import dataclasses
import threading
import warnings
from typing import Any

from . import _backwards
from ._components import COMPONENTS, Target, current_backward, locate, require_dtensor
from ._detect import MISSING, PATCHED, classify, status

_FACTORIES = {
    "redistribute": _backwards.redistribute_backward,
    "to_local": _backwards.to_local_backward,
    "from_local": _backwards.from_local_backward,
}

# owner class -> the exact object found in its __dict__ before patching, so
# unpatch() puts back the very same object (identity, not a copy).
_saved: dict[str, tuple[type[Any], object]] = {}
_lock = threading.Lock()


def _install(name: str, target: Target) -> None:
    owner = target.owner
    original = current_backward(target)
    replacement = _FACTORIES[name](original, _backwards.forward_input_count(owner))
    _saved[name] = (owner, owner.__dict__["backward"])
    owner.backward = staticmethod(replacement)


def apply(*, redistribute: bool = True, to_local: bool = True, from_local: bool = True):
    """Patch each enabled component whose upstream code is missing or known-wrong.

    Components that upstream already implements correctly are left untouched.
    A component this torch lacks, or whose replacement cannot be built on it,
    is skipped and the others are still patched: the returned status() names
    it (state "unavailable", or "missing" with the reason in ``detail``) and
    one RuntimeWarning lists every skipped component. Calling it again changes
    nothing. Raises DTensorUnavailable when torch has no torch.distributed.tensor.
    """
    wanted = {"redistribute": redistribute, "to_local": to_local, "from_local": from_local}
    # The first import of torch.distributed.tensor fires the start-up hook,
    # which calls apply() itself: it must happen before the lock is taken.
    require_dtensor()
    skipped: dict[str, str] = {}
    with _lock:
        found, absent = locate()
        for name in COMPONENTS:
            if not wanted[name]:
                continue
            if name in absent:
                skipped[name] = absent[name]
                continue
            target = found[name]
            if classify(name, target).state != MISSING:
                continue
            # One component's replacement failing to build on an unexpected
            # torch must not cost the user the components that do build.
            try:
                _install(name, target)
            except Exception as exc:
                skipped[name] = f"its replacement cannot be built on this torch: {exc!r}"
    report = status()
    for name, why in skipped.items():
        if report[name].state == MISSING:
            report[name] = dataclasses.replace(report[name], detail=f"not patched: {why}")
    if skipped:
        listed = "; ".join(f"{name} ({why})" for name, why in skipped.items())
        warnings.warn(
            f"torch_dtensor_patch could not patch {listed}. The other components were "
            "patched where needed; status() has the details.",
            RuntimeWarning,
            stacklevel=2,
        )
    return report


def unpatch(components=COMPONENTS):
    """Put back the original backward objects of the given components."""
    with _lock:
        found, _absent = locate()
        for name in components:
            entry = _saved.pop(name, None)
            if entry is not None:
                owner, original = entry
                owner.backward = original
                continue
            # Patched by another copy of this module (e.g. loaded twice under
            # different names): the replacement still knows its original.
            if name not in found:
                continue
            fn = current_backward(found[name])
            if getattr(fn, _backwards.MARKER, None) == name:
                found[name].owner.backward = staticmethod(fn.__wrapped_original__)
    return status()


def is_patched(name: str) -> bool:
    return status()[name].state == PATCHED

"""Install and remove the replacement backwards, remembering the originals."""

from __future__ import annotations

import threading

from . import _backwards
from ._components import COMPONENTS, current_backward, targets
from ._detect import MISSING, PATCHED, classify, status

_FACTORIES = {
    "redistribute": _backwards.redistribute_backward,
    "to_local": _backwards.to_local_backward,
    "from_local": _backwards.from_local_backward,
}

# owner class -> the exact object found in its __dict__ before patching, so
# unpatch() puts back the very same object (identity, not a copy).
_saved: dict[str, tuple[type, object]] = {}
_lock = threading.Lock()


def apply(*, redistribute: bool = True, to_local: bool = True, from_local: bool = True):
    """Patch each enabled component whose upstream code is missing or known-wrong.

    Components that upstream already implements correctly are left untouched.
    Calling it again changes nothing. Returns the resulting status().
    """
    wanted = {"redistribute": redistribute, "to_local": to_local, "from_local": from_local}
    # The first import of torch.distributed.tensor fires the start-up hook,
    # which calls apply() itself: it must happen before the lock is taken.
    targets()
    with _lock:
        found = targets()
        for name in COMPONENTS:
            if not wanted[name]:
                continue
            target = found[name]
            state = classify(name, target)
            if state.state != MISSING:
                continue
            owner = target.owner
            original = current_backward(target)
            replacement = _FACTORIES[name](original, _backwards.forward_input_count(owner))
            _saved[name] = (owner, owner.__dict__["backward"])
            owner.backward = staticmethod(replacement)
    return status()


def unpatch(components=COMPONENTS):
    """Put back the original backward objects of the given components."""
    with _lock:
        found = targets()
        for name in components:
            entry = _saved.pop(name, None)
            if entry is not None:
                owner, original = entry
                owner.backward = original
                continue
            # Patched by another copy of this module (e.g. loaded twice under
            # different names): the replacement still knows its original.
            fn = current_backward(found[name])
            if getattr(fn, _backwards.MARKER, None) == name:
                found[name].owner.backward = staticmethod(fn.__wrapped_original__)
    return status()


def is_patched(name: str) -> bool:
    return status()[name].state == PATCHED

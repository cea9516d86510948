"""Where each patchable component lives inside torch.distributed.tensor.

A torch build may lack DTensor altogether (built without distributed support)
or lack one of the classes below (a fork, a future release that moved it).
The first is an error for the whole package; the second only takes that one
component out, so the others can still be patched.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

COMPONENTS = ("redistribute", "to_local", "from_local")

DTENSOR = "torch.distributed.tensor"

# component -> (module, autograd.Function subclass whose backward is replaced)
LOCATIONS = {
    "redistribute": (f"{DTENSOR}._redistribute", "Redistribute"),
    "to_local": (f"{DTENSOR}._api", "_ToTorchTensor"),
    "from_local": (f"{DTENSOR}._api", "_FromTorchTensor"),
}

# Human-readable names used in reports.
DESCRIPTIONS = {
    "redistribute": "redistribute backward (Redistribute.backward)",
    "to_local": "to_local backward (_ToTorchTensor.backward)",
    "from_local": "from_local backward (_FromTorchTensor.backward)",
}


class DTensorUnavailable(RuntimeError):
    """The installed torch has no torch.distributed.tensor: nothing can be patched."""


@dataclass(frozen=True)
class Target:
    component: str
    owner: type[Any]  # the autograd.Function subclass whose backward is replaced
    module: object


def _names_missing_part(exc: ModuleNotFoundError) -> bool:
    name = exc.name or ""
    return bool(name) and (DTENSOR == name or DTENSOR.startswith(name + "."))


def require_dtensor():
    """Import torch.distributed.tensor, or raise DTensorUnavailable saying why not."""
    fix = "install a torch build with distributed support (the PyPI wheels for Linux have it)"
    try:
        import torch
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        raise DTensorUnavailable("torch is not installed; install torch>=2.9,<2.16") from None
    import torch.distributed

    if not torch.distributed.is_available():
        raise DTensorUnavailable(
            f"torch {torch.__version__} was built without distributed support "
            f"(torch.distributed.is_available() is False); {fix}"
        )
    try:
        return import_module(DTENSOR)
    except ModuleNotFoundError as exc:
        # Only a missing DTensor package is this error; a module missing deeper
        # down is a broken install and keeps its own traceback.
        if not _names_missing_part(exc):
            raise
        raise DTensorUnavailable(
            f"torch {torch.__version__} has no {DTENSOR} ({exc}); {fix}"
        ) from None


def _locate_one(component: str) -> Target | str:
    module_name, owner_name = LOCATIONS[component]
    try:
        module = import_module(module_name)
    except ImportError as exc:
        return f"{module_name} cannot be imported ({exc})"
    owner = getattr(module, owner_name, None)
    if not isinstance(owner, type):
        return f"{module_name} has no class {owner_name}"
    if "backward" not in owner.__dict__:
        return f"{module_name}.{owner_name} defines no backward of its own"
    return Target(component, owner, module)


def locate() -> tuple[dict[str, Target], dict[str, str]]:
    """The targets this torch has, and for each one it lacks, what is missing.

    Raises DTensorUnavailable when torch has no DTensor at all.
    """
    require_dtensor()
    found: dict[str, Target] = {}
    absent: dict[str, str] = {}
    for name in COMPONENTS:
        where = _locate_one(name)
        if isinstance(where, Target):
            found[name] = where
        else:
            absent[name] = where
    return found, absent


def current_backward(target: Target):
    """The plain function currently installed as ``backward`` on the owner."""
    raw = target.owner.__dict__["backward"]
    return raw.__func__ if isinstance(raw, staticmethod) else raw

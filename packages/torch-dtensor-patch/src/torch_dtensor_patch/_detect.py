"""Decide, from what the installed torch actually contains, what each component needs.

Version strings are never consulted: distributions backport fixes and nightlies
carry arbitrary versions, so the decision rests on the code that is there.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass

from ._backwards import MARKER
from ._components import COMPONENTS, Target, current_backward, locate

UPSTREAM = "upstream"
PATCHED = "patched"
MISSING = "missing"
# The installed torch lacks the class (or its backward) this component patches.
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class ComponentStatus:
    component: str
    state: str  # upstream | patched | missing | unavailable
    detail: str
    known_wrong: bool = False  # upstream has an implementation, but a wrong one

    def as_dict(self) -> dict:
        return asdict(self)


def _names(code) -> set[str]:
    found = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            found |= _names(const)
    return found


def _refers_to(fn, name: str) -> bool:
    return name in _names(fn.__code__)


def _classify_redistribute(target: Target, fn) -> ComponentStatus:
    module = target.module
    nested = getattr(module, "NestedRedistribute", None)
    if nested is None or not _refers_to(fn, "NestedRedistribute"):
        return ComponentStatus("redistribute", MISSING, "backward redistributes outside autograd")
    helper = getattr(module, "_redistribute_backward", None)
    params = inspect.signature(helper).parameters if helper else {}
    if "op_dtype" not in params:
        # The first upstream version passes (backward_dtype, original_dtype)
        # into parameters named (forward_dtype, backward_dtype): the collective
        # and the returned gradient get each other's dtype.
        return ComponentStatus(
            "redistribute",
            MISSING,
            "upstream NestedRedistribute swaps the backward dtype arguments",
            known_wrong=True,
        )
    return ComponentStatus("redistribute", UPSTREAM, "NestedRedistribute with op/out dtypes")


def _classify_to_local(fn) -> ComponentStatus:
    if _refers_to(fn, "from_local"):
        return ComponentStatus("to_local", UPSTREAM, "backward builds its result with from_local")
    return ComponentStatus(
        "to_local", MISSING, "backward wraps the gradient with the DTensor constructor"
    )


def _classify_from_local(fn) -> ComponentStatus:
    if _refers_to(fn, "redistribute_local_tensor"):
        return ComponentStatus(
            "from_local", MISSING, "backward calls redistribute_local_tensor outside autograd"
        )
    return ComponentStatus("from_local", UPSTREAM, "backward keeps the gradient in the graph")


def classify(component: str, target: Target, *, look_through_patch: bool = False):
    fn = current_backward(target)
    if getattr(fn, MARKER, None) == component:
        if not look_through_patch:
            return ComponentStatus(component, PATCHED, "torch_dtensor_patch replacement")
        fn = fn.__wrapped_original__
    if component == "redistribute":
        return _classify_redistribute(target, fn)
    if component == "to_local":
        return _classify_to_local(fn)
    return _classify_from_local(fn)


def status(*, stock: bool = False) -> dict[str, ComponentStatus]:
    """State of each component in this process: upstream, patched, missing or unavailable.

    ``stock=True`` describes torch as installed instead: a patched component
    is judged by the original backward the patch keeps, so the answer is the
    same whether or not this process (or its start-up hook) patched anything.
    Raises DTensorUnavailable when torch has no torch.distributed.tensor.
    """
    found, absent = locate()
    report = {}
    for name in COMPONENTS:
        if name in absent:
            report[name] = ComponentStatus(name, UNAVAILABLE, absent[name])
        else:
            report[name] = classify(name, found[name], look_through_patch=stock)
    return report

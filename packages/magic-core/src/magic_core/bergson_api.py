"""Everything magic-core takes from bergson, in one place.

magic-core uses three public names of bergson and owns everything else
(the training step, the batch stream, the loop around them):

* `TrainerState` (``bergson.magic``): one training state (parameters,
  optimizer state, buffers, RNG states, batch index), its ``activate``
  context and ``differentiable_tensors``; the kept states are built on it.
* `simple_fsdp` (``bergson.magic.fsdp``): shards a model's parameters as
  ``Shard(0)`` DTensors that the forward all-gathers (see `sharding`).
* `weighted_causal_lm_ce` (``bergson.utils.math``): the causal LM loss that
  multiplies each token's loss by its data weight (see `model_prep`).

`SURFACE` records what magic-core relies on of each, and `surface_problems`
checks it against the installed bergson (a test runs it), so that a bergson
release that moves one of them fails loudly, naming its version and
`TESTED_RANGE`, rather than changing scores silently.

Importing bergson runs ``logging.basicConfig(force=True)``, which would
close the user's root handlers and redirect INFO logs to stdout. The names
load lazily (bergson takes seconds to import) with basicConfig disabled,
and the root logger's handlers and level are put back as they were.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from dataclasses import fields, is_dataclass
from functools import lru_cache
from importlib import metadata
from typing import NamedTuple

# The bergson releases magic-core is tested with; the same specifier as the
# dependency in magic-core's pyproject.toml (a test checks they agree).
TESTED_RANGE = ">=2.5.1,<2.6"


class Name(NamedTuple):
    """One bergson name and what magic-core relies on of it."""

    module: str
    parameters: tuple[str, ...] = ()  # a function's parameters, in order (a prefix)
    fields: tuple[str, ...] = ()  # a dataclass's fields, in order
    members: tuple[str, ...] = ()  # methods and properties magic-core calls


SURFACE = {
    "TrainerState": Name(
        "bergson.magic",
        fields=("params", "opt_state", "buffers", "batch_index", "cuda_rng_state", "cpu_rng_state"),
        members=("activate", "detach_", "differentiable_tensors", "requires_grad"),
    ),
    "simple_fsdp": Name("bergson.magic.fsdp", parameters=("model", "reader", "device")),
    "weighted_causal_lm_ce": Name(
        "bergson.utils.math",
        parameters=("logits", "labels", "example_weight", "ignore_index", "shift_loss_mask",
                    "vocab_size", "reduction"),
    ),
}


def installed_version() -> str:
    try:
        return metadata.version("bergson")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def _moved(what: str) -> ImportError:
    return ImportError(
        f"bergson {installed_version()} {what}; magic-core is tested with bergson{TESTED_RANGE}: "
        f"install a version in that range (pip install 'bergson{TESTED_RANGE}')"
    )


@lru_cache(maxsize=1)
def _import_quietly(module: str):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    original_basic_config = logging.basicConfig
    logging.basicConfig = lambda *args, **kwargs: None
    try:
        return importlib.import_module(module)
    finally:
        logging.basicConfig = original_basic_config
        root.handlers[:] = handlers
        root.setLevel(level)


def _find(name: str):
    """(the object, None), or (None, what is missing)."""
    spec = SURFACE[name]
    try:
        module = _import_quietly(spec.module)
    except ImportError as exc:
        return None, f"cannot import {spec.module} for {name} ({exc})"
    if not hasattr(module, name):
        return None, f"has no {spec.module}.{name}"
    return getattr(module, name), None


def __getattr__(name: str):
    # PEP 562: `bergson_api.TrainerState` imports bergson on first use only.
    if name not in SURFACE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value, missing = _find(name)
    if missing:
        raise _moved(missing)
    globals()[name] = value
    return value


def _problems_of(name: str, spec: Name, value) -> list[str]:
    where = f"{spec.module}.{name}"
    problems = []
    if spec.parameters:
        have = tuple(inspect.signature(value).parameters)
        if have[: len(spec.parameters)] != spec.parameters:
            problems.append(f"{where} takes {have}, magic-core passes {spec.parameters}")
    if spec.fields:
        have = tuple(f.name for f in fields(value)) if is_dataclass(value) else ()
        if have[: len(spec.fields)] != spec.fields:
            problems.append(f"{where} has fields {have}, magic-core builds it from {spec.fields}")
    missing = [m for m in spec.members if not hasattr(value, m)]
    if missing:
        problems.append(f"{where} lacks {', '.join(missing)}")
    return problems


def check_surface() -> None:
    """Raise ImportError, naming the installed version and `TESTED_RANGE`, if bergson moved."""
    problems = surface_problems()
    if problems:
        raise _moved("changed what magic-core uses: " + "; ".join(problems))


def surface_problems() -> list[str]:
    """What of `SURFACE` the installed bergson does not provide ([] when all is there)."""
    problems: list[str] = []
    for name, spec in SURFACE.items():
        value, missing = _find(name)
        problems += [missing] if missing else _problems_of(name, spec, value)
    return problems

"""Optimizers by name: the built-ins and those of installed plugins.

An optimizer is declared once, as an `OptimizerSpec`: its name, how to build
its differentiable update, optionally its update by formula, and which
`TrainConfig` hyperparameters it reads. Plugins offer specs through the
``magic.optimizers`` entry-point group (an entry point names an
`OptimizerSpec` or a list of them); magic-core's own are registered the same
way, from `magic_core.builtin_optimizers`. `train.optimizer` is checked
against this registry, and the engine builds what it names, so a new
optimizer is one spec in one place.

This module and the spec modules it loads import no torch: job files are
checked (`magic submit --dry-run`) without it. A spec's builders import what
they need when called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .errors import ConfigError
from .spec_registry import SpecRegistry

ENTRY_POINT_GROUP = "magic.optimizers"

# ``lr(step)``: the learning rate of update ``step`` (0-based), warm-up and decay
# applied; ``step`` may be an integer tensor (torchopt passes its count).
Schedule = Callable[[Any], float]


@dataclass(frozen=True)
class OptimizerSpec:
    """One named optimizer.

    ``transformation(cfg, lr) -> torchopt.base.GradientTransformation`` is the
    update as the engine runs and differentiates it: its ``init`` lays out the
    optimizer state, and its ``update`` (traced by autograd in the backward)
    is used wherever ``exact_update`` gives nothing that applies.

    ``exact_update(cfg, lr)``, optional, returns the same update by formula:
    an object with ``applies_to(state)``, ``apply(state, grads)``,
    ``traced(state, grads)`` and ``vjp(state, grads, param_cot, opt_cot)``, as
    `magic_core.adam_update.AdamUpdate` has. The engine then trains with
    ``apply`` and takes the update's part of each backward step by ``vjp``.

    ``options`` names the optimizer-specific `TrainConfig` fields it reads
    (among ``TrainConfig.OPTIMIZER_OPTIONS``); a run that sets another one
    away from its default is refused, naming this optimizer's.
    ``default_weight_decay`` applies when ``train.weight_decay`` is left out.
    """

    name: str
    transformation: Callable[[Any, Schedule], Any]
    exact_update: Callable[[Any, Schedule], Any] | None = None
    options: tuple[str, ...] = ()
    default_weight_decay: float = 0.0
    description: str = ""
    # Filled in by the registry: the distribution that registered the spec.
    package: str = ""

    def __post_init__(self):
        from .config import TrainConfig  # config imports this module

        unknown = [o for o in self.options if o not in TrainConfig.OPTIMIZER_OPTIONS]
        if unknown:
            raise ConfigError(
                f"optimizer {self.name!r}: option {unknown[0]!r} is not one of train's optimizer "
                f"options ({', '.join(TrainConfig.OPTIMIZER_OPTIONS)})")


class OptimizerRegistry(SpecRegistry[OptimizerSpec]):
    """The optimizers of every installed plugin (plus any registered by hand)."""

    spec_type = OptimizerSpec
    kind = "optimizer"
    group = ENTRY_POINT_GROUP
    key = "train.optimizer"


@lru_cache(maxsize=1)
def default_registry() -> OptimizerRegistry:
    """The process-wide registry built from installed entry points."""
    return OptimizerRegistry()


def get_optimizer(name: str) -> OptimizerSpec:
    return default_registry().get(name)


def list_optimizers() -> list[OptimizerSpec]:
    return default_registry().list()

"""The grid of a sweep: ``--param KEY=V1,V2`` values into ``--set`` assignments.

Apart from `sweep` (which runs the points) so that `magic submit` and
`magic report` expand a grid without loading torch.
"""

from __future__ import annotations

import itertools

from magic_core import ConfigError

# Short names for the keys swept most often.
ALIASES = {"lr": "optim.lr", "steps": "optim.steps", "recipe": "recipe.name",
           "preset": "optim.preset", "selection": "recipe.options.selection",
           "normalization": "recipe.options.normalization", "clip": "recipe.options.clip",
           "retain_kl": "recipe.options.retain_kl", "top_fraction": "recipe.options.top_fraction",
           # NPO's and RMU's own hyperparameters
           "beta": "recipe.options.beta", "steering_coeff": "recipe.options.steering_coeff",
           "alpha": "recipe.options.alpha", "layer": "recipe.options.layer"}


def parse_param(text: str) -> tuple[str, list[str]]:
    """``lr=5e-6,1e-5`` -> ("optim.lr", ["5e-6", "1e-5"])."""
    key, sep, values = text.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not key.strip() or not items:
        raise ConfigError(f"--param {text!r}: expected KEY=V1,V2,..., e.g. lr=5e-6,1e-5")
    return ALIASES.get(key.strip(), key.strip()), items


def grid(params: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every combination, as ``--set`` style assignments (first param varies slowest)."""
    axes = [[f"{key}={v}" for v in values] for key, values in map(parse_param, params)]
    return list(itertools.product(*axes))

"""Optimizer presets matching the seed's three unlearning jobs."""

from __future__ import annotations

from dataclasses import replace

from .errors import UnlearnError
from .optim_config import OptimConfig

PRESETS: dict[str, dict] = {
    "seed-bs4-adam": {"optimizer": "adam", "batch_size": 4},
    "seed-bs16-adam": {"optimizer": "adam", "batch_size": 16},
    "seed-bs16-adamw": {"optimizer": "adamw", "batch_size": 16},
}


def apply_preset(optim: OptimConfig, preset: str | None) -> OptimConfig:
    if preset is None:
        return optim
    if preset not in PRESETS:
        raise UnlearnError(f"unknown optim preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return replace(optim, **PRESETS[preset])

"""Which floating-point precisions attribution accepts, and why not the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "fp64")


def check_precision(name: str) -> str:
    """``name`` if attribution accepts it; checking a job this way needs no torch."""
    if name in PRECISIONS:
        return name
    if name in ("bf16", "bfloat16", "fp16", "float16", "half"):
        raise ConfigError(
            f"precision {name!r} is refused: metagradients accumulate rounding over every "
            "replayed step, and 16-bit scores are close to noise (Pearson ~0.55 against fp64 "
            "on a tiny model); use precision fp32 (fp64 for exactness checks)"
        )
    raise ConfigError(f"unknown precision {name!r}; use fp32 or fp64")


def resolve_precision(name: str) -> torch.dtype:
    import torch

    return {"fp32": torch.float32, "fp64": torch.float64}[check_precision(name)]

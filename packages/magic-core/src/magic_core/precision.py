"""Which floating-point precisions attribution accepts, and why not the others."""

from __future__ import annotations

import torch

from .errors import ConfigError

PRECISIONS = {"fp32": torch.float32, "fp64": torch.float64}


def resolve_precision(name: str) -> torch.dtype:
    if name in PRECISIONS:
        return PRECISIONS[name]
    if name in ("bf16", "bfloat16", "fp16", "float16", "half"):
        raise ConfigError(
            f"precision {name!r} is refused: metagradients accumulate rounding over every "
            "replayed step, and 16-bit scores are close to noise (Pearson ~0.55 against fp64 "
            "on a tiny model); use precision fp32 (fp64 for exactness checks)"
        )
    raise ConfigError(f"unknown precision {name!r}; use fp32 or fp64")

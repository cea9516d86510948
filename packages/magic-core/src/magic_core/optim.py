"""The differentiable optimizer and learning-rate schedule of a `TrainConfig`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .config import TrainConfig
from .optimizer_registry import get_optimizer


def lr_schedule(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Learning rate of update ``step`` (0-based): linear warm-up, then the decay."""

    def rate(step) -> float:
        step = int(step)
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        span = max(total_steps - cfg.warmup_steps, 1)
        progress = (step - cfg.warmup_steps) / span
        if cfg.schedule == "linear":
            return cfg.lr * (1.0 - progress)
        if cfg.schedule == "cosine":
            return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
        return cfg.lr

    return rate


def build_optimizer(cfg: TrainConfig, total_steps: int):
    """``cfg``'s optimizer as a torchopt ``GradientTransformation`` (see `optimizer_registry`)."""
    return get_optimizer(cfg.optimizer).transformation(cfg, lr_schedule(cfg, total_steps))


def exact_update(cfg: TrainConfig, total_steps: int) -> Any | None:
    """``cfg``'s optimizer update by formula (e.g. an `AdamUpdate`), or None where it has none."""
    spec = get_optimizer(cfg.optimizer)
    if spec.exact_update is None:
        return None
    return spec.exact_update(cfg, lr_schedule(cfg, total_steps))

"""The differentiable optimizer and learning-rate schedule of a `TrainConfig`."""

from __future__ import annotations

import math
from collections.abc import Callable

import torchopt

from .config import TrainConfig


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


def build_optimizer(cfg: TrainConfig, total_steps: int) -> torchopt.base.GradientTransformation:
    lr = lr_schedule(cfg, total_steps)
    if cfg.optimizer == "sgd":
        return torchopt.sgd(lr, momentum=cfg.momentum, weight_decay=cfg.resolved_weight_decay)
    if cfg.optimizer == "adam":
        return torchopt.adam(lr, betas=cfg.betas, eps=cfg.eps, eps_root=cfg.eps_root,
                             weight_decay=cfg.resolved_weight_decay)
    return torchopt.adamw(lr, betas=cfg.betas, eps=cfg.eps, eps_root=cfg.eps_root,
                          weight_decay=cfg.resolved_weight_decay)

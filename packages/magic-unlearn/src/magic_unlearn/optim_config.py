"""The optimizer settings of unlearning and relearning: plain values, checked without torch.

Kept apart from the training loop so that validating a job (`magic submit
--dry-run`) needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .errors import UnlearnError

if TYPE_CHECKING:
    import torch

Optimizer = Literal["adam", "adamw", "sgd"]


@dataclass(frozen=True)
class OptimConfig:
    optimizer: Optimizer = "adam"
    lr: float = 1e-4
    batch_size: int = 4
    steps: int = 50
    # None: 0.01 for adamw (torch's default), 0 for adam and sgd.
    weight_decay: float | None = None
    max_grad_norm: float | None = 1.0
    seed: int = 0

    def __post_init__(self):
        if self.lr <= 0 or self.batch_size < 1 or self.steps < 0:
            raise UnlearnError(f"optim: need lr > 0, batch_size >= 1, steps >= 0; got lr={self.lr}, "
                               f"batch_size={self.batch_size}, steps={self.steps}")

    def build(self, params) -> torch.optim.Optimizer:
        import torch

        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr, weight_decay=self.weight_decay or 0.0)
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay or 0.0)
        if self.optimizer == "adamw":
            decay = 0.01 if self.weight_decay is None else self.weight_decay
            return torch.optim.AdamW(params, lr=self.lr, weight_decay=decay)
        raise UnlearnError(f"optim.optimizer must be adam, adamw or sgd, got {self.optimizer!r}")


@dataclass(frozen=True)
class RelearnConfig:
    enabled: bool = True
    n_docs: int = 8  # forget documents the attacker has
    steps: int = 10
    lr: float = 1e-4  # 1e-3 (10 steps) degraded a barely unlearned world model
    batch_size: int = 4
    optimizer: Optimizer = "adam"
    seed: int = 0

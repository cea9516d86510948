"""The optimizer settings of unlearning and relearning: plain values, checked without torch.

Kept apart from the training loop so that validating a job (`magic submit
--dry-run`) needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from magic_core.typed_config import setting

from .errors import UnlearnError

if TYPE_CHECKING:
    import torch

Optimizer = Literal["adam", "adamw", "sgd"]


@dataclass(frozen=True)
class OptimConfig:
    optimizer: Optimizer = "adam"
    lr: float = setting(1e-4, gt=0)
    batch_size: int = setting(4, ge=1)
    # A job file asks for at least one step: zero would report the base model as unlearned.
    steps: int = setting(50, ge=1)
    # None: 0.01 for adamw (torch's default), 0 for adam and sgd.
    weight_decay: float | None = setting(None, ge=0)
    max_grad_norm: float | None = setting(1.0, gt=0, hint="write null for no clipping")
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
    # Forget documents the attacker has; also bounded by the forget corpus, checked once it is loaded.
    n_docs: int = setting(8, ge=1)
    steps: int = setting(10, ge=1, hint="set relearn.enabled: false to skip relearning")
    lr: float = setting(1e-4, gt=0)  # 1e-3 (10 steps) degraded a barely unlearned world model
    batch_size: int = setting(4, ge=1)
    optimizer: Optimizer = "adam"
    seed: int = 0

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
    """The unlearning run's optimizer (plain ``torch.optim``) and its steps."""

    optimizer: Optimizer = "adam"
    """``torch.optim.Adam``, ``AdamW`` or ``SGD``."""
    lr: float = setting(1e-4, gt=0)
    """The learning rate, constant over the run."""
    batch_size: int = setting(4, ge=1)
    """Rows each step draws from the forget corpus (and from the retain corpus for each retain term)."""
    # A job file asks for at least one step: zero would report the base model as unlearned.
    steps: int = setting(50, ge=1)
    """Optimizer steps."""
    weight_decay: float | None = setting(None, ge=0)
    """null: 0.01 for adamw (torch's default), 0 for adam and sgd."""
    max_grad_norm: float | None = setting(1.0, gt=0, hint="write null for no clipping")
    """Clip the gradient's global norm to this; null: no clipping."""
    seed: int = 0
    """Seeds which rows each step draws."""

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
    """The relearning attack: fine-tune the unlearned model on a few forget documents,
    then evaluate again (tamper resistance)."""

    enabled: bool = True
    """false: no relearning (and no after-relearning accuracies)."""
    n_docs: int = setting(8, ge=1)
    """Forget documents the attacker has (at most the forget corpus's, checked once it is
    loaded)."""
    steps: int = setting(10, ge=1, hint="set relearn.enabled: false to skip relearning")
    """Optimizer steps of the attack."""
    # 1e-3 (10 steps) degraded a barely unlearned world model.
    lr: float = setting(1e-4, gt=0)
    """The attack's learning rate."""
    batch_size: int = setting(4, ge=1)
    """Documents per step."""
    optimizer: Optimizer = "adam"
    """``torch.optim.Adam``, ``AdamW`` or ``SGD``."""
    seed: int = 0
    """Picks the attacker's documents and their order."""

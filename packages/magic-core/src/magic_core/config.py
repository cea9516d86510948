"""What an attribution run is configured by (the ``train`` and ``attribution`` sections)."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

from .errors import ConfigError
from .memory import parse_bytes
from .precision import check_precision
from .typed_config import setting

Optimizer = Literal["sgd", "adam", "adamw"]
LRSchedule = Literal["constant", "linear", "cosine"]
KeepSchedule = Literal["auto", "all", "sqrt", "log", "gradients"]
Granularity = Literal["per-example", "per-token"]
Sharding = Literal["none", "fsdp"]


@dataclass(frozen=True)
class TrainConfig:
    """The fine-tuning run whose data is attributed."""

    optimizer: Optimizer = "adam"
    lr: float = setting(1e-3, gt=0)
    schedule: LRSchedule = "constant"
    warmup_steps: int = setting(0, ge=0)
    batch_size: int = setting(4, ge=1)
    epochs: int = setting(1, ge=1)
    shuffle: bool = True
    seed: int = 0
    precision: str = "fp32"
    # Also bounded by the model's max_position_embeddings, checked once the model is known.
    max_seq_len: int = setting(128, ge=1)
    # None: 0.01 for adamw (decoupled, as torch.optim.AdamW), 0 for sgd and adam.
    weight_decay: float | None = setting(None, ge=0)
    betas: tuple[float, float] = setting((0.9, 0.999), ge=0, lt=1)
    eps: float = setting(1e-8, gt=0)
    # sqrt(v + eps_root): keeps the derivative of Adam's denominator finite where
    # a parameter's gradient is exactly zero (unused embedding rows). Small
    # enough that the run is torch.optim.Adam's to within float64 rounding:
    # larger values visibly change the scores of the first batches.
    eps_root: float = setting(1e-30, gt=0)
    momentum: float = setting(0.0, ge=0, lt=1)
    max_grad_norm: float | None = setting(None, gt=0, hint="leave it out for no clipping")

    def __post_init__(self):
        check_precision(self.precision)
        for name in ("batch_size", "epochs", "max_seq_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        if self.momentum and self.optimizer != "sgd":
            raise ConfigError("train.momentum applies to sgd only; adam/adamw use train.betas")
        if self.warmup_steps < 0:
            raise ConfigError(f"train.warmup_steps must be >= 0, got {self.warmup_steps}")

    @property
    def resolved_weight_decay(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return 0.01 if self.optimizer == "adamw" else 0.0


@dataclass(frozen=True)
class AttributionConfig:
    """How the backward pass through training is organised."""

    # Old spellings a job file may still carry: refused with the new name.
    RENAMED_KEYS: typing.ClassVar[dict[str, str]] = {"checkpoints": "kept_states"}

    # Which training states the backward keeps (see `keep_schedule`); ``auto``
    # keeps every state when the store below has room for them all.
    kept_states: KeepSchedule = "auto"
    granularity: Granularity = "per-token"
    # fsdp: under torch.distributed, shard parameters and optimizer states over
    # the ranks (bergson's simple_fsdp; see `sharding`). none: every rank holds
    # the whole model (data parallel when there are several ranks).
    sharding: Sharding = "none"
    # Where kept states live (see `state_store`): up to ``device_memory``
    # bytes where training runs, then (GPU runs) ``host_memory`` bytes of host
    # memory, then files in ``spill_dir`` (default: the system temp dir).
    # "auto": none of a GPU's memory, half of the host's available memory.
    device_memory: str = "auto"
    host_memory: str = "auto"
    spill_dir: str | None = None

    def __post_init__(self):
        for name in ("device_memory", "host_memory"):
            if getattr(self, name) != "auto":
                try:
                    parse_bytes(getattr(self, name), f"attribution.{name}")
                except ValueError as exc:
                    raise ConfigError(str(exc)) from None

    def budget(self, name: str) -> int | None:
        """Bytes for ``device_memory``/``host_memory``; None for auto."""
        value = getattr(self, name)
        return None if value == "auto" else parse_bytes(value, f"attribution.{name}")


"""What an attribution run is configured by (the ``train`` and ``attribution`` sections)."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Literal

from .errors import ConfigError
from .memory import parse_bytes
from .optimizer_registry import get_optimizer, list_optimizers
from .precision import check_precision
from .typed_config import setting

LRSchedule = Literal["constant", "linear", "cosine"]
KeepSchedule = Literal["auto", "all", "sqrt", "log", "gradients"]
Granularity = Literal["per-example", "per-token"]
Sharding = Literal["none", "fsdp"]


@dataclass(frozen=True)
class TrainConfig:
    """The fine-tuning run whose data is attributed."""

    # TrainConfig fields that only some optimizers read; each optimizer's spec
    # names its own (see `optimizer_registry`), the others must stay at their defaults.
    OPTIMIZER_OPTIONS: typing.ClassVar[tuple[str, ...]] = ("momentum", "betas", "eps")
    REMOVED_KEYS: typing.ClassVar[dict[str, str]] = {
        "eps_root": "adam and adamw now update as torch.optim does, which has no eps_root"}

    optimizer: str = "adam"
    """A registered optimizer: ``sgd``, ``adam``, ``adamw`` (each trains as its `torch.optim`
    namesake; adam and adamw bit for bit) or a plugin's (entry-point group ``magic.optimizers``,
    see docs/adding-an-optimizer.md)."""
    lr: float = setting(1e-3, gt=0)
    """The base learning rate (see "The learning rate" for the schedule)."""
    schedule: LRSchedule = "constant"
    """How the rate decays after warm-up: ``constant``, ``linear`` to 0 or ``cosine`` to 0."""
    warmup_steps: int = setting(0, ge=0)
    """Updates of linear warm-up from ``lr / warmup_steps`` to ``lr``."""
    batch_size: int = setting(4, ge=1)
    """Documents (token rows) per training step."""
    epochs: int = setting(1, ge=1)
    """Passes over the corpus."""
    shuffle: bool = True
    """Reshuffle the corpus every epoch (seeded by ``seed``); false: corpus order."""
    seed: int = 0
    """Seeds the data order (the per-epoch shuffle)."""
    precision: str = "fp32"
    """``fp32`` or ``fp64``; bf16 and fp16 are refused (their scores are noise)."""
    max_seq_len: int = setting(128, ge=1)
    """Tokens per row; longer documents follow ``data.long_documents``. At most the model's
    positions, checked once it is loaded."""
    weight_decay: float | None = setting(None, ge=0)
    """null: the optimizer's default (0.01 for adamw, decoupled as `torch.optim.AdamW`; 0 for sgd
    and adam, added to the gradient)."""
    # No eps_root beside eps, as torch.optim has none: see `adam_update` for the
    # derivative where a gradient entry has always been zero.
    betas: tuple[float, float] = setting((0.9, 0.999), ge=0, lt=1)
    """adam/adamw: the moments' decay rates, as in `torch.optim.Adam`."""
    eps: float = setting(1e-8, gt=0)
    """adam/adamw: added to the denominator, as in `torch.optim.Adam`."""
    momentum: float = setting(0.0, ge=0, lt=1)
    """sgd: momentum as in `torch.optim.SGD` (no dampening, not Nesterov)."""
    max_grad_norm: float | None = setting(None, gt=0, hint="leave it out for no clipping")
    """Clip the gradient's global norm to this; null: no clipping."""

    def __post_init__(self):
        check_precision(self.precision)
        for name in ("batch_size", "epochs", "max_seq_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        self._check_optimizer_options()
        if self.warmup_steps < 0:
            raise ConfigError(f"train.warmup_steps must be >= 0, got {self.warmup_steps}")

    def _check_optimizer_options(self) -> None:
        """Refuse another optimizer's hyperparameter set away from its default."""
        spec = get_optimizer(self.optimizer)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in self.OPTIMIZER_OPTIONS:
            if name in spec.options or getattr(self, name) == defaults[name]:
                continue
            users = [s.name for s in list_optimizers() if name in s.options]
            own = ", ".join(f"train.{o}" for o in spec.options) or "none of them"
            raise ConfigError(f"train.{name} applies to {', '.join(users) or 'no optimizer'} "
                              f"only; {self.optimizer} uses {own}")

    @property
    def resolved_weight_decay(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return get_optimizer(self.optimizer).default_weight_decay


@dataclass(frozen=True)
class AttributionConfig:
    """How the backward pass through training is organised."""

    # Old spellings a job file may still carry: refused with the new name.
    RENAMED_KEYS: typing.ClassVar[dict[str, str]] = {"checkpoints": "kept_states"}

    kept_states: KeepSchedule = "auto"
    """Which training states the backward keeps: ``all``, ``gradients`` (every 4th state plus the
    other steps' gradients), ``sqrt``, ``log``, or ``auto`` (``all`` when every state fits the
    memory budgets, else ``gradients``; see "Where training states live")."""
    granularity: Granularity = "per-token"
    """``per-token`` (also gives per-example sums) or ``per-example``."""
    sharding: Sharding = "none"
    """``none``: every rank holds the whole model (data parallel with several ranks); ``fsdp``:
    parameters and optimizer states split over the ranks (under torchrun/srun; see "Several
    processes")."""
    # Kept states fill the tiers in order (see `state_store`): device memory,
    # then host memory (GPU runs), then files in spill_dir.
    device_memory: str = "auto"
    """Bytes of kept states where training runs, e.g. ``4GiB`` or ``0``; ``auto``: none of a GPU's
    memory, 128 MiB on a CPU."""
    host_memory: str = "auto"
    """GPU runs: bytes of kept states in host memory; ``auto``: half the available host memory."""
    spill_dir: str | None = None
    """Where states beyond both budgets are written; null: the system's temporary directory
    ($TMPDIR)."""

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


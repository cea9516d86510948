"""Sizes and FLOPs of a job's model, from its config alone (`magic plan`).

The model is built on the meta device (shapes, no memory, no weights), so a
6.9B model is sized in seconds on a laptop. A training state's bytes come
from what the engine keeps: the trainable parameters (tied ones once, see
`magic_core.model_prep`) in the run's precision, plus the floating-point
tensors of the optimizer state that `train.optimizer`'s registered
transformation lays out (Adam's two moments, SGD's momentum buffer or none):
`magic_core.state_store.state_bytes` counts exactly these. Sharded (fsdp), a
rank holds its ``torch.chunk`` slice of every tensor's dim 0, as
`magic_core.sharding.InMemoryShards` hands them out; rank 0's is the largest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from magic_core import ConfigError, TrainConfig
from torch import nn

from .models import BUILTIN_WORLD

# A spilled state's file holds, beside parameters and moments, the optimizer's
# integer counters, the RNG states (the CPU generator's is 5056 bytes) and a
# header padded to 4 KiB blocks (`magic_core.state_files`): a few KiB.
SPILL_FILE_OVERHEAD = 16 * 1024


@dataclass(frozen=True)
class ModelShape:
    """What the estimates read of a causal LM."""

    model_type: str
    parameters: int  # trainable, each tied tensor once
    matmul_parameters: int  # those multiplied with every token: all but input lookups
    layers: int
    width: int
    heads: int
    vocab: int
    positions: int | None
    tied: bool


@dataclass(frozen=True)
class StateSize:
    """Bytes of one kept training state and of one gradient, whole and on one rank."""

    parameter_bytes: int
    moment_bytes: int
    parameter_bytes_per_rank: int
    moment_bytes_per_rank: int
    spill_file_bytes_per_rank: int

    @property
    def bytes(self) -> int:
        return self.parameter_bytes + self.moment_bytes

    @property
    def bytes_per_rank(self) -> int:
        return self.parameter_bytes_per_rank + self.moment_bytes_per_rank

    # A gradient has the parameters' shapes and shards.
    @property
    def gradient_bytes(self) -> int:
        return self.parameter_bytes

    @property
    def gradient_bytes_per_rank(self) -> int:
        return self.parameter_bytes_per_rank


def load_config(path: str):
    """The model's transformers config: from its directory or hub id, never its weights."""
    if path == BUILTIN_WORLD:
        return _world_base_config()
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot read the config of model {path!r} ({first}); give a local "
                          "directory holding its config.json (--set model.path=DIR) or a hub id "
                          "reachable from this machine") from None


def _world_base_config():
    from transformers import AutoConfig

    from .world_shipped import SHIPPED_DIR

    # The shipped model's own config: the shape every `builtin:world-base` job loads.
    return AutoConfig.from_pretrained(SHIPPED_DIR)


def meta_model(config, dtype: torch.dtype) -> nn.Module:
    """The model of ``config`` on the meta device, in ``dtype``: shapes without memory."""
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"cannot build a causal LM from the config of model type "
                          f"{getattr(config, 'model_type', '?')!r} ({exc}); attribution needs a "
                          "Hugging Face causal LM") from None
    return model.to(dtype=dtype)


def _first(config, *names: str, default=None):
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def model_shape(config, model: nn.Module) -> ModelShape:
    trainable = [p for p in model.parameters() if p.requires_grad]  # tied: listed once
    output = model.get_output_embeddings()  # type: ignore[operator]  # a PreTrainedModel's
    output_weight = getattr(output, "weight", None)
    # Input lookups (token and learned position embeddings) cost no matrix product;
    # a tied embedding is also the output projection, which does.
    lookups = {id(m.weight) for m in model.modules()
               if isinstance(m, nn.Embedding) and m.weight is not output_weight}
    width = _first(config, "hidden_size", "n_embd", "d_model")
    return ModelShape(
        model_type=getattr(config, "model_type", type(model).__name__),
        parameters=sum(p.numel() for p in trainable),
        matmul_parameters=sum(p.numel() for p in trainable if id(p) not in lookups),
        layers=_first(config, "num_hidden_layers", "n_layer", "num_layers"),
        width=width,
        heads=_first(config, "num_attention_heads", "n_head", default=1),
        vocab=config.vocab_size,
        positions=_first(config, "max_position_embeddings", "n_positions"),
        tied=output_weight is not None and any(
            output_weight is getattr(m, "weight", None) for m in model.modules()
            if isinstance(m, nn.Embedding)),
    )


def local_numel(t: torch.Tensor, ranks: int) -> int:
    """Rank 0's elements of ``t`` split by `torch.chunk` over ``ranks`` along dim 0."""
    if ranks == 1 or t.dim() == 0 or t.shape[0] == 0:
        return t.numel()
    rows = t.shape[0]
    return min(-(-rows // ranks), rows) * (t.numel() // rows)


def check_shardable(model: nn.Module) -> None:
    """The refusal `magic_core.sharding.check_can_shard` makes at run time, made now."""
    scalars = [n for n, p in model.named_parameters() if p.dim() == 0]
    if scalars:
        raise ConfigError(f"attribution.sharding 'fsdp' shards dim 0; parameter {scalars[0]!r} "
                          "is a scalar")


def state_size(model: nn.Module, train: TrainConfig, n_steps: int, shard_over: int) -> StateSize:
    """One state's bytes; ``shard_over`` ranks split it (1: unsharded)."""
    from magic_core.optim import build_optimizer
    from torchopt.pytree import tree_flatten

    params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
    leaves, _ = tree_flatten(build_optimizer(train, n_steps).init(params))
    moments = [t for t in leaves if isinstance(t, torch.Tensor) and t.is_floating_point()]
    others = [t for t in leaves if isinstance(t, torch.Tensor) and not t.is_floating_point()]

    def whole(ts) -> int:
        return sum(t.numel() * t.element_size() for t in ts)

    def mine(ts) -> int:
        return sum(local_numel(t, shard_over) * t.element_size() for t in ts)

    return StateSize(
        parameter_bytes=whole(params.values()), moment_bytes=whole(moments),
        parameter_bytes_per_rank=mine(params.values()), moment_bytes_per_rank=mine(moments),
        spill_file_bytes_per_rank=mine(params.values()) + mine(moments) + mine(others)
        + SPILL_FILE_OVERHEAD,
    )


def flops_per_token(shape: ModelShape, seq: int) -> float:
    """FLOPs of one training step per token: 6 per matmul parameter (2 forward, 4
    backward) plus attention's score and value products, 2 x 2 x seq x width per
    layer forward, x 3 with the backward (eager attention computes the whole
    seq x seq matrix, masked or not)."""
    return 6.0 * shape.matmul_parameters + 12.0 * shape.layers * seq * shape.width


def steps_of(rows: int, batch_size: int, epochs: int) -> int:
    return math.ceil(rows * epochs / batch_size)

"""A training state as a flat ``{name: tensor}`` dict and back, for spill files and checkpoints.

The dict holds the parameters (``param.NAME``), the optimizer state's
tensors in flattening order (``opt.I``), the RNG states and the batch index;
buffers are the model's, the same in every state, and come back from the
template. A sharded state (see `sharding`) is stored as this rank's shards
and rebuilt into DTensors laid out as the template's.
"""

from __future__ import annotations

import torch
from torchopt.pytree import tree_flatten, tree_unflatten

from . import bergson_api
from .sharding import local_shard, reshard_like


def to_tensors(state) -> dict[str, torch.Tensor]:
    tensors = {f"param.{k}": local_shard(v) for k, v in state.params.items()}
    leaves, _ = tree_flatten(state.opt_state)
    tensors.update({f"opt.{i}": local_shard(t) for i, t in enumerate(leaves)
                    if isinstance(t, torch.Tensor)})
    tensors["rng.cpu"] = state.cpu_rng_state
    tensors["rng.cuda"] = state.cuda_rng_state
    tensors["batch_index"] = torch.tensor(state.batch_index)
    return tensors


def from_tensors(tensors: dict[str, torch.Tensor], template):
    """The state `to_tensors` flattened, shaped like ``template`` (a state of the same run)."""
    leaves, spec = tree_flatten(template.opt_state)
    leaves = [reshard_like(tensors[f"opt.{i}"], t) if isinstance(t, torch.Tensor) else t
              for i, t in enumerate(leaves)]
    return bergson_api.TrainerState(
        {k: reshard_like(tensors[f"param.{k}"], p) for k, p in template.params.items()},
        tree_unflatten(spec, leaves),
        template.buffers, int(tensors["batch_index"]),
        # torch sets RNG states from CPU bytes
        cuda_rng_state=tensors["rng.cuda"].cpu(), cpu_rng_state=tensors["rng.cpu"].cpu(),
    )

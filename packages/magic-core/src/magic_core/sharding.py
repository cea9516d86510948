"""Exact sharded (FSDP) attribution on bergson's `simple_fsdp`.

With ``attribution.sharding: fsdp`` every parameter becomes a ``Shard(0)``
DTensor over a 1-D mesh of the whole process group (CUDA with NCCL, CPU with
gloo); the forward all-gathers it (``Replicate``) and its gradient comes back
``Partial("avg")``, i.e. reduce-scattered as the *average* of the ranks'
local gradients. The training states (parameters, optimizer moments), the
cotangents of the backward and the query gradient are all sharded DTensors
holding the *true* values, not per-rank shares as in `data_parallel`.

Exactness, per step. Rank ``r`` has ``D_r`` of the batch's ``D`` supervised
tokens and a local mean loss ``L_r``, with gradient ``g_r``; the batch's
gradient is ``G = sum_r (D_r / D) g_r``. Averaging gives ``(1/W) sum_r g_r``,
right only for equal ``D_r``, so the local loss is scaled by the constant
``s_r = W D_r / D`` (``D`` all-reduced first, see `loss_scale`):
``(1/W) sum_r s_r g_r = G``.

Its vector-Jacobian product, for the true (sharded) cotangent ``Gbar`` of ``G``:
DTensor's backward of the avg reduce-scatter gives every rank the whole
``Gbar`` (an avg-partial of identical copies), so rank ``r`` differentiates
``s_r g_r . Gbar``:

* parameters: the result goes back through the all-gather's backward, again
  an average, ``(1/W) sum_r s_r H_r Gbar = sum_r (D_r / D) H_r Gbar``: exact;
* its own data weights ``w_r``, which no collective touches:
  ``s_r d(g_r . Gbar)/dw_r = W x (D_r / D) d(g_r . Gbar)/dw_r``, ``W`` times the
  true value. The engine divides the summed data-weight gradients by ``W``.

Everything after the reduce-scatter (optimizer update, global-norm clipping)
is DTensor arithmetic, which reduces across shards where it must.

The query: FSDP's collectives run inside every forward, so all ranks must run
the same forwards. Every rank therefore evaluates the whole objective (the
query costs ``W`` times its compute, its memory stays sharded); the average
of ``W`` identical gradients is the true sharded gradient, with nothing to
reduce.

Stored states (kept states offloaded to host memory or disk, phase
checkpoints) hold each rank's own shards (`local_shard`, read back by
`reshard_like`); a run's model fingerprint sums whole tensors (`whole_tensor`).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from . import bergson_api
from .data_parallel import token_share
from .errors import ConfigError


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


class InMemoryShards:
    """The shard reader `simple_fsdp` asks (``local(path, param)``), served from the model itself.

    It returns this rank's dim-0 slice of each parameter as ``Shard(0)``
    splits: ``torch.chunk``'s ceil-sized pieces, trailing ranks possibly empty.
    """

    def __init__(self, world_size: int, rank: int):
        self.world_size, self.rank = world_size, rank

    def local(self, path: str, param: torch.Tensor) -> torch.Tensor:
        pieces = param.detach().chunk(self.world_size)
        # torch.chunk returns fewer pieces when the trailing ranks' would be empty.
        piece = pieces[self.rank] if self.rank < len(pieces) else param.detach()[param.shape[0]:]
        # A copy, so the whole tensor can be freed once every slice is taken.
        return piece.clone()

    def close(self) -> None:
        pass


def check_sharding_launch(device: torch.device) -> None:
    """Refuse, in one line, a process layout that cannot shard (before any model is loaded)."""
    device = torch.device(device)
    if not dist.is_initialized():
        raise ConfigError(
            "attribution.sharding 'fsdp' needs a torch.distributed run: launch with torchrun "
            "or srun (or set attribution.sharding: none)"
        )
    if dist.get_backend() == "nccl" and device.type != "cuda":
        raise ConfigError(
            f"attribution.sharding 'fsdp' on device {device.type!r} cannot use the NCCL process "
            "group (CUDA only); run on GPUs or start the ranks with the gloo backend"
        )


def check_can_shard(model: nn.Module, device: torch.device) -> None:
    """Refuse, in one line, a run `shard_model` cannot shard."""
    check_sharding_launch(device)
    scalars = [n for n, p in model.named_parameters() if p.dim() == 0]
    if scalars:
        raise ConfigError(f"attribution.sharding 'fsdp' shards dim 0; parameter {scalars[0]!r} is a scalar")


def shard_model(model: nn.Module, device: torch.device) -> None:
    """Shard ``model``'s parameters over the process group, in place.

    Call after `share_tied_parameters` (a tied parameter is then one
    parameter, sharded once). The model may sit on the CPU: only the shards
    move to ``device``, then its buffers.
    """
    device = torch.device(device)
    check_can_shard(model, device)
    import torch_dtensor_patch
    from torch.distributed.tensor import init_device_mesh

    # Twice-differentiable redistribution for the traced steps; patches only
    # what this torch lacks (see torch-dtensor-patch's status()).
    torch_dtensor_patch.apply()
    world_size, rank = dist.get_world_size(), dist.get_rank()
    mesh = init_device_mesh(device.type, (world_size,))
    with mesh:
        bergson_api.simple_fsdp(model, InMemoryShards(world_size, rank), device)
    for module in model.modules():
        for name, buffer in module._buffers.items():
            if buffer is not None:
                module._buffers[name] = buffer.to(device)


def loss_scale(batch: dict) -> float:
    """``s_r = W D_r / D``, this rank's factor on its local loss (a collective)."""
    return dist.get_world_size() * token_share(batch)


def sharded_batch_loss(scaled_local_loss: float, batch: dict) -> float:
    """The batch's loss: the mean of the ranks' scaled local losses."""
    total = torch.tensor([scaled_local_loss / dist.get_world_size()], dtype=torch.float64,
                         device=batch["input_ids"].device)
    dist.all_reduce(total)
    return float(total)


# -- storing sharded states (offloaded kept states, phase checkpoints) ---------------
def local_shard(t: torch.Tensor) -> torch.Tensor:
    """What this rank stores of ``t``: a DTensor's own shard; any other tensor as it is."""
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


def whole_tensor(t: torch.Tensor) -> torch.Tensor:
    """A DTensor gathered whole on every rank (a collective: every rank calls it); else ``t``."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def reshard_like(local: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """A stored shard as the DTensor ``template`` is (mesh, placements, shape); else ``local``."""
    from torch.distributed.tensor import DTensor

    if not isinstance(template, DTensor):
        return local
    return DTensor.from_local(local.to(template.to_local().device), template.device_mesh,
                              template.placements, shape=template.shape,
                              stride=template.stride(), run_check=False)

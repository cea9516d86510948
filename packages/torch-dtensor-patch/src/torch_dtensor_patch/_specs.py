"""Build DTensorSpec objects the same way on every supported torch.

DTensorSpec grew fields between releases (shard order bookkeeping in 2.11,
``use_strided_shard_as_shard_order`` in 2.12); a spec built from scratch on a
newer torch would silently drop that bookkeeping, so extra fields are copied
from a template spec when the installed torch has them.
"""

from __future__ import annotations

from torch.distributed.tensor._dtensor_spec import DTensorSpec, TensorMeta
from torch.distributed.tensor.placement_types import Placement, Replicate

# Fields that describe how shards are ordered, not what the tensor is; they
# must follow the spec they were computed for.
_CARRIED_FIELDS = ("use_strided_shard_as_shard_order",)


def spec_like(template: DTensorSpec, placements, meta: TensorMeta) -> DTensorSpec:
    extra = {
        name: getattr(template, name)
        for name in _CARRIED_FIELDS
        if getattr(template, name, None) is not None
    }
    return DTensorSpec(template.mesh, tuple(placements), tensor_meta=meta, **extra)


def meta_of(tensor, dtype) -> TensorMeta:
    return TensorMeta(shape=tensor.shape, stride=tensor.stride(), dtype=dtype)


def backward_placements(current, target) -> tuple[Placement, ...]:
    """Placements a gradient is moved to when flowing back to ``target``.

    A gradient that is already complete on each rank (sharded or replicated)
    is never turned back into a pending reduction: that would only add a
    reduction later. This is the rule torch itself applies in backward.
    """
    out: list[Placement] = []
    for cur, tgt in zip(current, target):
        if tgt.is_partial() and not cur.is_partial():
            out.append(Replicate())
        else:
            out.append(tgt)
    return tuple(out)

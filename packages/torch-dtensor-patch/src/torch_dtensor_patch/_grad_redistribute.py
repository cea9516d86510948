"""A gradient redistribution that autograd can differentiate again.

Redistribution is the identity on the logical (global) tensor, so its
derivative is a redistribution too, just in the opposite direction. Making
the backward an autograd Function whose own backward is the same Function
gives derivatives of every order with one collective per level.
"""

from __future__ import annotations

import torch
from torch.distributed.tensor import DTensor
from torch.distributed.tensor._redistribute import redistribute_local_tensor

from ._specs import backward_placements, meta_of, spec_like


class GradRedistribute(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad, target_spec, async_op, op_dtype, out_dtype):
        in_dtype = grad._local_tensor.dtype
        source_spec = grad._spec
        local = grad._local_tensor
        if op_dtype != in_dtype:
            local = local.to(op_dtype)
        # Shape and stride come from the gradient (the logical tensor) while the
        # dtype is the one the collective runs at, as torch does in backward.
        meta = meta_of(grad, op_dtype)
        current = spec_like(source_spec, source_spec.placements, meta)
        placements = backward_placements(source_spec.placements, target_spec.placements)
        target = spec_like(target_spec, placements, meta)

        if placements != tuple(source_spec.placements):
            local = redistribute_local_tensor(local, current, target, async_op=async_op)
        if local.dtype != out_dtype:
            # The cast happens after the collective so that a wider out_dtype
            # keeps the precision of the reduction instead of rounding it.
            local = local.to(out_dtype)

        ctx.source_spec = source_spec
        ctx.async_op = async_op
        ctx.op_dtype = op_dtype
        ctx.in_dtype = in_dtype
        out_spec = spec_like(target_spec, placements, meta_of(grad, local.dtype))
        return DTensor(local, out_spec, requires_grad=grad.requires_grad)

    @staticmethod
    def backward(ctx, grad2):
        # The adjoint moves the incoming second-order gradient back to the
        # layout and dtype the first-order gradient had.
        back = GradRedistribute.apply(
            grad2, ctx.source_spec, ctx.async_op, ctx.op_dtype, ctx.in_dtype
        )
        return back, None, None, None, None


def grad_redistribute(grad, target_spec, *, async_op=False, op_dtype=None, out_dtype=None):
    dtype = grad._local_tensor.dtype
    return GradRedistribute.apply(
        grad, target_spec, async_op, op_dtype or dtype, out_dtype or dtype
    )

"""Replacement ``backward`` functions for the three DTensor autograd Functions.

Each replacement hands a first-order backward (grad mode off) straight to the
original, so ordinary training keeps torch's own code path and bit-identical
gradients. Only when autograd is recording the backward itself
(``create_graph=True``) does the differentiable path run.
"""

from __future__ import annotations

import inspect

import torch

MARKER = "__torch_dtensor_patch__"


def forward_input_count(fn_cls) -> int:
    # autograd wants exactly one gradient per forward input; the number of
    # inputs changed between releases, so it is read off the signature.
    return len(inspect.signature(fn_cls.forward).parameters) - 1


def _mark(fn, component, original):
    setattr(fn, MARKER, component)
    fn.__wrapped_original__ = original
    return fn


def _grad_dtypes(ctx, grad_dtype):
    # torch <= 2.12 records (backward_dtype, original_dtype); the collective
    # runs at backward_dtype when given, and the result goes back to the
    # dtype of the forward input.
    out_dtype = getattr(ctx, "original_dtype", None) or grad_dtype
    op_dtype = getattr(ctx, "backward_dtype", None) or out_dtype
    return op_dtype, out_dtype


def redistribute_backward(original, n_inputs):
    from ._grad_redistribute import GradRedistribute

    def backward(ctx, grad_output):
        if not torch.is_grad_enabled():
            return original(ctx, grad_output)
        op_dtype, out_dtype = _grad_dtypes(ctx, grad_output._local_tensor.dtype)
        grad = GradRedistribute.apply(
            grad_output, ctx.current_spec, ctx.async_op, op_dtype, out_dtype
        )
        return (grad,) + (None,) * (n_inputs - 1)

    return _mark(backward, "redistribute", original)


def to_local_backward(original, n_inputs):
    from torch.distributed.tensor import DTensor

    def backward(ctx, grad_output):
        result = original(ctx, grad_output)
        if grad_output is None or not torch.is_grad_enabled():
            return result
        # The original already decided placements, shape and stride for this
        # torch; only its graph-cutting DTensor constructor is replaced by
        # from_local, which records how to get back to the local gradient.
        built = result[0]
        spec = built._spec
        grad = DTensor.from_local(
            grad_output,
            spec.mesh,
            spec.placements,
            run_check=False,
            shape=spec.shape,
            stride=spec.stride,
        )
        return (grad,) + tuple(result[1:])

    return _mark(backward, "to_local", original)


def _from_local_target(ctx):
    """Placements torch's from_local backward sends the gradient to."""
    import torch.distributed.tensor._api as api

    explicit = getattr(ctx, "grad_placements", None)
    if explicit is not None:
        return tuple(explicit)
    placements = getattr(ctx, "forward_input_placements", None)
    if placements is None:
        placements = ctx.previous_placement
    normalize = getattr(api, "_normalize_placements_for_grad", None)
    return tuple(normalize(placements)) if normalize else tuple(placements)


def _from_local_mesh(ctx):
    mesh = getattr(ctx, "forward_input_device_mesh", None)
    return mesh if mesh is not None else ctx.previous_device_mesh


def from_local_backward(original, n_inputs):
    from torch.distributed.tensor._dtensor_spec import DTensorSpec

    from ._grad_redistribute import GradRedistribute

    def backward(ctx, grad_output):
        if grad_output is None or not torch.is_grad_enabled():
            return original(ctx, grad_output)
        target = _from_local_target(ctx)
        if tuple(grad_output.placements) == target:
            # Already differentiable upstream: the original just calls to_local.
            return original(ctx, grad_output)
        target_spec = DTensorSpec(
            _from_local_mesh(ctx), target, tensor_meta=grad_output._spec.tensor_meta
        )
        dtype = grad_output._local_tensor.dtype
        moved = GradRedistribute.apply(grad_output, target_spec, False, dtype, dtype)
        return (moved.to_local(),) + (None,) * (n_inputs - 1)

    return _mark(backward, "from_local", original)

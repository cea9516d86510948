"""Distributed scenarios run on spawned ranks by torch_dtensor_patch._spawn.

Each returns plain JSON data (observations and errors against a
single-process float64 reference); the tests decide what they must be.
Nothing here is tied to CPU: the device comes from the harness.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Partial, Replicate, Shard, distribute_tensor
from torch.utils.checkpoint import checkpoint

from torch_dtensor_patch import _patching
from torch_dtensor_patch._probe import full, is_cut, max_err, second_grad

LR = 0.1
SHAPES = {"w1": (7, 3), "b1": (7,), "w2": (3, 7)}  # 7 and 3 rows: uneven on 2 ranks


def _params(device, dtype=torch.float64):
    gen = torch.Generator().manual_seed(7)
    return {
        k: (0.5 * torch.randn(s, generator=gen, dtype=dtype)).to(device) for k, s in SHAPES.items()
    }


def _batch(rank, device, salt, dtype=torch.float64):
    gen = torch.Generator().manual_seed(100 * salt + rank)
    x = torch.randn(5, 3, generator=gen, dtype=dtype).to(device)
    y = torch.randn(5, 3, generator=gen, dtype=dtype).to(device)
    return x, y


def _mlp(w1, b1, w2, x, y):
    h = torch.tanh(F.linear(x, w1, b1))
    return ((F.linear(h, w2) - y) ** 2).mean()


def _local_loss(params, mesh, x, y, *, ckpt=False, forward_dtype=None):
    """One rank's loss, with Shard(0) params gathered inside the forward."""

    def body(w1, b1, w2):
        kw = {} if forward_dtype is None else {"forward_dtype": forward_dtype}
        local = [
            p.redistribute(mesh, [Replicate()], **kw).to_local(grad_placements=[Partial("avg")])
            for p in (w1, b1, w2)
        ]
        return _mlp(*local, x.to(local[0].dtype), y.to(local[0].dtype)).double()

    args = (params["w1"], params["b1"], params["w2"])
    return checkpoint(body, *args, use_reentrant=False) if ckpt else body(*args)


def _reference(world_size, device):
    """The same metagradient and HVP on full tensors, in this one process."""
    params = {k: v.requires_grad_() for k, v in _params(device).items()}
    names = list(params)

    def mean_loss(ps, salt):
        return sum(_mlp(*ps, *_batch(r, device, salt)) for r in range(world_size)) / world_size

    ps = [params[k] for k in names]
    grads = torch.autograd.grad(mean_loss(ps, 1), ps, create_graph=True)
    vs = list(_params(device).values())
    hvp = torch.autograd.grad(sum((g * v).sum() for g, v in zip(grads, vs)), ps, retain_graph=True)
    stepped = [p - LR * g for p, g in zip(ps, grads)]
    meta = torch.autograd.grad(mean_loss(stepped, 2), ps)
    return [g.detach() for g in grads], list(hvp), list(meta)


def sharded_model(*, rank, world_size, device, ckpt=False):
    """DTensor-parametrized MLP: HVP and one-SGD-step metagradient."""
    mesh = init_device_mesh(device, (world_size,))
    ref_grads, ref_hvp, ref_meta = _reference(world_size, device)
    params = {
        k: distribute_tensor(v, mesh, [Shard(0)]).requires_grad_()
        for k, v in _params(device).items()
    }
    vs = [distribute_tensor(v, mesh, [Shard(0)]) for v in _params(device).values()]
    ps = list(params.values())

    loss = _local_loss(params, mesh, *_batch(rank, device, 1), ckpt=ckpt)
    grads = torch.autograd.grad(loss, ps, create_graph=True)
    cut = any(is_cut(g) for g in grads)
    dot = sum((g * v).to_local().sum() for g, v in zip(grads, vs))
    hvp, hvp_error = second_grad(dot, ps)
    stepped = {k: p - LR * g for (k, p), g in zip(params.items(), grads)}
    meta, meta_error = second_grad(
        _local_loss(stepped, mesh, *_batch(rank, device, 2), ckpt=ckpt), ps
    )
    return {
        "first_order_cut": cut,
        "strict_error": hvp_error or meta_error,
        "grad_error": max_err(grads, ref_grads),
        "max_error": max(max_err(hvp, ref_hvp), max_err(meta, ref_meta)),
    }


def _first_order(mesh, rank, device, create_graph, forward_dtype=None, dtype=torch.float32):
    params = {
        k: distribute_tensor(v, mesh, [Shard(0)]).requires_grad_()
        for k, v in _params(device, dtype).items()
    }
    loss = _local_loss(params, mesh, *_batch(rank, device, 1, dtype), forward_dtype=forward_dtype)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
    return [full(g) for g in grads], grads


def first_order(*, rank, world_size, device):
    """First-order gradients with and without the patch, fp32 and bf16-forward.

    Stock gradients are taken after removing the patch in this very process,
    so they come from torch's own code.
    """
    mesh = init_device_mesh(device, (world_size,))
    before = _patching.status()
    was_patched = {k for k, s in before.items() if s.state == "patched"}
    out = {}
    for label, fwd in (("fp32", None), ("bf16_forward", torch.bfloat16)):
        _patching.unpatch()
        stock, _ = _first_order(mesh, rank, device, False, fwd)
        if was_patched:
            _patching.apply(**{k: k in was_patched for k in before})
        plain, _ = _first_order(mesh, rank, device, False, fwd)
        graphed, raw = _first_order(mesh, rank, device, True, fwd)
        out[label] = {
            "bitwise_plain": all(torch.equal(a, b) for a, b in zip(stock, plain)),
            "bitwise_create_graph": all(torch.equal(a, b) for a, b in zip(stock, graphed)),
            "dtypes": sorted({str(g.dtype) for g in raw}),
            # A gradient rounded to bf16 on the way back survives a bf16
            # round trip unchanged; an fp32 reduction almost never does.
            "not_bf16_rounded": all(
                not torch.equal(g, g.to(torch.bfloat16).float()) for g in graphed
            ),
        }
    return out


def mixed_precision(*, rank, world_size, device):
    """bf16 forward, fp32 params: second order stays connected and close."""
    mesh = init_device_mesh(device, (world_size,))
    _, ref_hvp, _ = _reference(world_size, device)
    params = {
        k: distribute_tensor(v.float(), mesh, [Shard(0)]).requires_grad_()
        for k, v in _params(device).items()
    }
    vs = [distribute_tensor(v.float(), mesh, [Shard(0)]) for v in _params(device).values()]
    ps = list(params.values())
    loss = _local_loss(params, mesh, *_batch(rank, device, 1), forward_dtype=torch.bfloat16)
    grads = torch.autograd.grad(loss, ps, create_graph=True)
    dot = sum((g * v).to_local().sum() for g, v in zip(grads, vs))
    hvp, error = second_grad(dot, ps)
    scale = max(float(r.abs().max()) for r in ref_hvp)
    return {
        "first_order_cut": any(is_cut(g) for g in grads),
        "strict_error": error,
        "grad_dtypes": sorted({str(g.dtype) for g in grads}),
        "hvp_dtypes": sorted({str(h.dtype) for h in hvp}),
        "relative_error": max_err(hvp, ref_hvp) / scale,
    }


def fsdp2(*, rank, world_size, device):
    """What FSDP2 fully_shard does under create_graph=True (pinned, not fixed)."""
    from torch.distributed.fsdp import fully_shard

    init_device_mesh(device, (world_size,))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    model = model.to(device=device, dtype=torch.float64)
    fully_shard(model)
    params = list(model.parameters())
    x, y = _batch(rank, device, 1)
    result = {"error": None, "none_grads": None, "cut": None, "second_order_connected": False}
    try:
        loss = ((model(x) - y) ** 2).mean()
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        result["none_grads"] = sum(g is None for g in grads)
        present = [g for g in grads if g is not None]
        result["cut"] = any(is_cut(g) for g in present)
        if present and not result["cut"]:
            dot = sum((g * g).sum() for g in present)
            second = torch.autograd.grad(dot, params, allow_unused=True)
            result["second_order_connected"] = all(s is not None for s in second)
    except Exception as exc:  # the pinned behaviour may be an error
        result["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return result


def batch(*, rank, world_size, device, items):
    """Run several scenarios on one set of ranks; start-up dominates otherwise.

    Scenarios are symmetric across ranks, so an exception in one is raised on
    every rank and the batch can go on with the next.
    """
    import traceback

    from torch_dtensor_patch._spawn import resolve

    results = {}
    for key, target, kwargs in items:
        try:
            results[key] = {
                "value": resolve(target)(rank=rank, world_size=world_size, device=device, **kwargs)
            }
        except Exception as exc:
            results[key] = {
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
    return results

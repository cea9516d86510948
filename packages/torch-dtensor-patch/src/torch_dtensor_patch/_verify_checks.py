"""The checks verify() runs on each rank: exact float64 second-order gradients
through sharded DTensor code, compared with the same maths on plain tensors.

Rows are deliberately uneven across ranks (7 rows on 2 ranks), which is where
shard bookkeeping bugs show up.
"""

from __future__ import annotations

import torch
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_tensor

from ._probe import is_cut, max_err, second_grad

ROWS, COLS, LR = 7, 3, 0.1


def _data(device):
    gen = torch.Generator().manual_seed(1234)
    x, v, w = (torch.randn(ROWS, COLS, generator=gen, dtype=torch.float64) for _ in range(3))
    return x.to(device), v.to(device), w.to(device)


def _loss(y, w):
    return (torch.tanh(y * w) ** 2).sum() + 0.1 * (y**3).sum()


def _val(y):
    return (torch.sin(y) * y).sum()


def _replicated(dt, mesh):
    return dt.redistribute(mesh, [Replicate()]).to_local()


def redistribute(*, rank, world_size, device):
    """Shard(0) -> Replicate redistribute: Hessian-vector product and metagradient."""
    mesh = init_device_mesh(device, (world_size,))
    x_full, v_full, w = _data(device)

    x = x_full.clone().requires_grad_()
    g = torch.autograd.grad(_loss(x, w), x, create_graph=True)[0]
    ref_hvp = torch.autograd.grad((g * v_full).sum(), x, retain_graph=True)[0]
    ref_meta = torch.autograd.grad(_val(x - LR * g), x)[0]

    xd = distribute_tensor(x_full, mesh, [Shard(0)]).requires_grad_()
    vd = distribute_tensor(v_full, mesh, [Shard(0)])
    gd = torch.autograd.grad(_loss(_replicated(xd, mesh), w), xd, create_graph=True)[0]
    cut = is_cut(gd)
    product = gd * vd
    assert isinstance(product, DTensor)
    hvp, hvp_error = second_grad(product.to_local().sum(), [xd])
    meta, meta_error = second_grad(_val(_replicated(xd - LR * gd, mesh)), [xd])
    return {
        "first_order_cut": cut,
        "strict_error": hvp_error or meta_error,
        "max_error": max(max_err(hvp, [ref_hvp]), max_err(meta, [ref_meta])),
    }


def from_local(*, rank, world_size, device):
    """A Replicate from_local whose gradient arrives sharded."""
    mesh = init_device_mesh(device, (world_size,))
    x_full, v_full, w = _data(device)

    x = x_full.clone().requires_grad_()
    g = torch.autograd.grad(_loss(x * w, w), x, create_graph=True)[0]
    ref_hvp = torch.autograd.grad((g * v_full).sum(), x)[0]

    xl = x_full.clone().requires_grad_()
    wd = distribute_tensor(w, mesh, [Shard(0)])
    yd = DTensor.from_local(xl, mesh, [Replicate()], run_check=False) * wd
    gl = torch.autograd.grad(_loss(_replicated(yd, mesh), w), xl, create_graph=True)[0]
    cut = is_cut(gl)
    hvp, error = second_grad((gl * v_full).sum(), [xl])
    return {"first_order_cut": cut, "strict_error": error, "max_error": max_err(hvp, [ref_hvp])}

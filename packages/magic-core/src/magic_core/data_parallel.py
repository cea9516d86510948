"""Exact data-parallel training steps and their vector-Jacobian products.

Under torch.distributed (without FSDP) every rank holds the whole model and
takes a stride of each batch's rows (see `batch_stream`). The engine's
loss is a mean over the batch's supervised tokens, so rank ``r``'s local
gradient ``g_r`` is a mean over its own ``D_r`` tokens, and the gradient of
the whole batch (``D`` tokens) is ``G = sum_r (D_r / D) g_r``. Averaging the
``g_r`` (a plain averaging all-reduce) is only right when every rank has the same token
count, so `reduce_gradients` reduces with the token shares instead.

The backward keeps every cotangent as a per-rank *share*: the true cotangent
is the sum of the ranks' shares (the query gradient is split evenly). Each
share's VJP through the replicated optimizer update is a share of the true
one, because that update is the same linear map on every rank. The only
coupling is ``G``: its VJP all-reduces the shares of its cotangent into the
whole cotangent, and rank ``r`` then differentiates its own ``(D_r / D) g_r``,
which is its share of the parameter and data-weight cotangents. Nothing
picks up a factor of the world size, and the data-weight gradients of all
ranks' rows add up in one all-reduce at the end of the backward.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


class _SumOverRanks(torch.autograd.Function):
    """Forward: sum of every rank's tensor. Backward: sum of every rank's cotangent share.

    First-order only: the engine differentiates a traced step once and never
    through this backward.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, share: torch.Tensor) -> torch.Tensor:
        whole = share.clone()
        dist.all_reduce(whole)
        return whole


def sum_over_ranks(x: torch.Tensor) -> torch.Tensor:
    return _SumOverRanks.apply(x)


def supervised_tokens(batch: dict) -> int:
    """The count the "mean" loss divides by (before its clamp to 1)."""
    mask = batch.get("shift_loss_mask")
    if mask is not None:
        return int(mask.sum())
    return int((batch["labels"][:, 1:] != -100).sum())


def token_share(batch: dict) -> float:
    """``D_r / D``: this rank's share of the batch's supervised tokens (a collective)."""
    counts = torch.tensor([float(supervised_tokens(batch))], dtype=torch.float64,
                          device=batch["input_ids"].device)
    total = counts.clone()
    dist.all_reduce(total)
    return float(counts / total.clamp_min(1.0))


def reduce_gradients(grads: dict[str, torch.Tensor], share: float,
                     trace: bool) -> dict[str, torch.Tensor]:
    """``G = sum_r (D_r / D) g_r`` on every rank; traced, with the VJP described above."""
    if trace:
        return {k: sum_over_ranks(g * share) for k, g in grads.items()}
    for g in grads.values():
        g.mul_(share)
        dist.all_reduce(g)
    return grads


def batch_loss(local_loss: float, share: float, batch: dict) -> float:
    """The batch's loss: the same token-weighted sum of the ranks' local means."""
    loss = torch.tensor([local_loss * share], dtype=torch.float64, device=batch["input_ids"].device)
    dist.all_reduce(loss)
    return float(loss)

"""Exact data-parallel training steps and their vector-Jacobian products.

Under torch.distributed (without FSDP) every rank holds the whole model and
bergson's `DataStream` gives it a stride of each batch's rows. The engine's
loss is a mean over the batch's supervised tokens, so rank ``r``'s local
gradient ``g_r`` is a mean over its own ``D_r`` tokens, and the gradient of
the whole batch (``D`` tokens) is ``G = sum_r (D_r / D) g_r``. Averaging the
``g_r``, as bergson does, is only right when every rank has the same token
count, so the step here reduces with the token shares instead.

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

from functools import lru_cache

import torch
import torch.distributed as dist

from ._bergson import engine


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


def _supervised_tokens(batch: dict) -> int:
    """The count the "mean" loss divides by (before its clamp to 1)."""
    mask = batch.get("shift_loss_mask")
    if mask is not None:
        return int(mask.sum())
    return int((batch["labels"][:, 1:] != -100).sum())


def _clip(grads: dict[str, torch.Tensor], max_norm: float, trace: bool) -> dict[str, torch.Tensor]:
    """Global-norm clipping, the formula of bergson's (which refuses non-FSDP grads it did not reduce)."""
    sq_norm = sum(g.pow(2).sum() for g in grads.values())
    coef = (max_norm / (sq_norm.sqrt() + 1e-6)).clamp(max=1.0)
    if trace:
        return {k: g * coef for k, g in grads.items()}
    for g in grads.values():
        g.mul_(coef)
    return grads


@lru_cache(maxsize=1)
def trainer_class():
    """bergson's `Trainer` with the token-weighted reduction above (bergson loads lazily)."""
    base = engine().Trainer

    class DataParallelTrainer(base):
        """Identical to bergson's `Trainer` in one process; exact data parallelism otherwise."""

        _share: float = 1.0
        _captured: dict | None = None  # set by `gradient`
        # Called with each untraced step's gradient as the update consumes it
        # (reduced, clipped); `apply_gradient` repeats that update exactly.
        record_gradient = None
        # An `AdamUpdate`: untraced updates by its formula rather than torchopt's
        # chain of transforms (same arithmetic, fewer passes and allocations).
        adam = None

        def gradient(self, state, inputs, *, max_grad_norm=None) -> dict[str, torch.Tensor]:
            """The step's gradient (reduced over ranks, clipped), traced, without the update.

            Differentiable with respect to the state's parameters and the
            data weights; the optimizer's part of the step's VJP is then
            taken by formula (see `adam_update`).
            """
            self._captured = {}
            try:
                self.step(state, inputs, trace=True, max_grad_norm=max_grad_norm)
                return self._captured
            finally:
                self._captured = None

        def step(self, state, inputs, **kwargs):
            if not dist.is_initialized():
                return super().step(state, inputs, **kwargs)
            counts = torch.tensor([float(_supervised_tokens(inputs))], dtype=torch.float64,
                                  device=inputs["input_ids"].device)
            total = counts.clone()
            dist.all_reduce(total)
            self._share = float(counts / total.clamp_min(1.0))
            new = super().step(state, inputs, **kwargs)
            # The batch's loss is the same token-weighted sum of the local means.
            loss = torch.tensor([self._last_loss * self._share], dtype=torch.float64,
                                device=counts.device)
            dist.all_reduce(loss)
            self._last_loss = float(loss)
            return new

        def apply_gradient(self, state, grads):
            """The state after ``state``'s update with a recorded gradient (bitwise the step's)."""
            return self._update(state, grads)

        def _apply_update(self, state, grads, *, inplace=False, trace=False, fsdp=False,
                          max_grad_norm=None):
            if fsdp:  # not this trainer's runs (see `sharding`): bergson's own path
                return super()._apply_update(state, grads, inplace=inplace, trace=trace,
                                             fsdp=fsdp, max_grad_norm=max_grad_norm)
            capture = self._captured is not None
            grads = self._reduced_and_clipped(grads, trace or capture, max_grad_norm)
            if capture:
                self._captured.update(grads)
                return state
            if self.record_gradient is not None and not trace:
                # The update below reads the gradient without changing it.
                self.record_gradient(grads)
            return self._update(state, grads, inplace=inplace, trace=trace)

        def _update(self, state, grads, *, inplace=False, trace=False):
            """One optimizer update with reduced and clipped gradients."""
            if self.adam is not None and not (trace or inplace):
                return self.adam.apply(state, grads)
            # fsdp=True only tells bergson the gradients are already reduced.
            return super()._apply_update(state, grads, inplace=inplace, trace=trace,
                                         fsdp=True, max_grad_norm=None)

        def _reduced_and_clipped(self, grads, trace: bool, max_grad_norm):
            if dist.is_initialized():
                if trace:
                    grads = {k: sum_over_ranks(g * self._share) for k, g in grads.items()}
                else:
                    for g in grads.values():
                        g.mul_(self._share)
                        dist.all_reduce(g)
            if max_grad_norm:
                grads = _clip(grads, max_grad_norm, trace)
            return grads

    return DataParallelTrainer

"""One optimizer step on a training state: loss, gradient over every rank, clipping, update.

A state (bergson's `TrainerState`) holds the trainable parameters and the
optimizer state; the model itself keeps meta-device placeholders (see
`take_state`) and each step runs it with the state's tensors swapped in
(`torch.func.functional_call`). States are never modified: a step returns a
new one, so a kept state stays valid and the backward can differentiate a
step with respect to the state before it (``trace=True``: the gradient is
built with ``create_graph``, the update is out of place).

The gradient is the batch's, whatever the number of ranks: data-parallel
ranks weight their local gradients by their share of the batch's supervised
tokens before summing them (`data_parallel`); sharded ranks scale their local
loss so that FSDP's averaging reduce-scatter gives the same (`sharding`).
Then global-norm clipping, then the update: Adam's by formula
(`adam_update`) where one is given, else the torchopt optimizer's.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.distributed as dist
import torchopt
from torch import nn

from . import bergson_api
from .data_parallel import batch_loss, reduce_gradients, token_share
from .sharding import loss_scale, sharded_batch_loss

CLIP_EPS = 1e-6  # added to the norm, as torch.nn.utils.clip_grad_norm_ and HF's Trainer do


def take_state(model: nn.Module, optimizer: torchopt.base.GradientTransformation):
    """The model's trainable parameters, buffers and a fresh optimizer state, as a state.

    The model keeps meta-device placeholders for the parameters it gave up,
    so that the state's tensors are the only copy (frozen parameters stay);
    a step or `TrainerState.activate` puts a state's tensors in.
    """
    params = {k: p.detach() for k, p in model.named_parameters(remove_duplicate=False)
              if p.requires_grad}
    buffers = {k: b.detach() for k, b in model.named_buffers(remove_duplicate=False)}
    state = bergson_api.TrainerState(params, optimizer.init(params), buffers)
    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            if param.requires_grad:
                module.register_parameter(name, nn.Parameter(param.detach().to("meta")))
    return state


def _restore_rng(state) -> None:
    # A replayed step draws what the original drew (dropout, if a model has it on).
    torch.random.set_rng_state(state.cpu_rng_state)
    if torch.cuda.is_initialized():
        torch.cuda.random.set_rng_state(state.cuda_rng_state)


def clip_by_global_norm(grads: dict[str, torch.Tensor], max_norm: float,
                        trace: bool) -> dict[str, torch.Tensor]:
    """Scale the gradients so that their global norm is at most ``max_norm``.

    Sharded gradients sum their squares over the shards (a collective), so
    every rank scales by the same coefficient.
    """
    from torch.distributed.tensor import DTensor, Replicate

    sq_norm = cast(torch.Tensor, sum(g.pow(2).sum() for g in grads.values()))
    if isinstance(sq_norm, DTensor):
        sq_norm = sq_norm.redistribute(placements=[Replicate()])
    coef = (max_norm / (sq_norm.sqrt() + CLIP_EPS)).clamp(max=1.0)
    if trace:  # out of place: the backward differentiates through the clip
        return {k: g * coef for k, g in grads.items()}
    for g in grads.values():
        g.mul_(coef)
    return grads


class TrainingStep:
    """The optimizer step of one run (stateless: states go in and come out).

    ``adam`` (an `AdamUpdate`) makes the updates by formula: ``apply`` for
    untraced unsharded steps, ``traced`` (where the formula has one) for
    sharded and traced steps; without it, torchopt's update. ``last_loss`` is
    the batch's training loss at the last step's state.
    """

    def __init__(self, model: nn.Module, optimizer: torchopt.base.GradientTransformation, *,
                 max_grad_norm: float | None = None, adam=None, sharded: bool = False):
        self.model = model
        self.optimizer = optimizer
        self.max_grad_norm = max_grad_norm
        self.adam = adam
        self.sharded = sharded
        self.last_loss = float("nan")

    def __call__(self, state, batch: dict, *, trace: bool = False, record=None):
        """The state after one step on ``batch``.

        ``record`` (untraced steps) is called with the step's gradient,
        reduced and clipped, before the update reads it; `update` with it
        repeats the step's update bit for bit.
        """
        grads = self.gradient(state, batch, trace=trace)
        if record is not None:
            record(grads)
        return self.update(state, grads, trace=trace)

    # -- the gradient ----------------------------------------------------------------
    def gradient(self, state, batch: dict, *, trace: bool = False) -> dict[str, torch.Tensor]:
        """The batch's gradient at ``state``, reduced over ranks and clipped.

        Traced, it is differentiable with respect to the state's parameters
        and the data weights (the optimizer's part of a step's VJP can then
        be taken by formula, see `adam_update`).
        """
        _restore_rng(state)
        names = list(state.params)
        # Untraced, fresh leaves that alias the state's tensors; traced, the
        # state's own tensors, so that the gradient's graph reaches them.
        params = state.params if trace else {
            k: p.detach().requires_grad_(True) for k, p in state.params.items()}
        loss = torch.func.functional_call(self.model, {**params, **state.buffers}, (),
                                          batch).loss
        share = 1.0
        if self.sharded:
            loss = loss * loss_scale(batch)
        elif dist.is_initialized():
            share = token_share(batch)
        pulled = torch.autograd.grad(loss, [params[k] for k in names], create_graph=trace,
                                     allow_unused=True)
        grads = {k: torch.zeros_like(params[k]) if g is None else g for k, g in zip(names, pulled)}
        value = float(loss.detach())
        if self.sharded:
            self.last_loss = sharded_batch_loss(value, batch)
        elif dist.is_initialized():
            self.last_loss = batch_loss(value, share, batch)
            grads = reduce_gradients(grads, share, trace)
        else:
            self.last_loss = value
        if self.max_grad_norm:
            grads = clip_by_global_norm(grads, self.max_grad_norm, trace)
        return grads

    # -- the update --------------------------------------------------------------------
    def update(self, state, grads: dict[str, torch.Tensor], *, trace: bool = False):
        """The state after the optimizer's update of ``state`` with ``grads`` (reduced, clipped)."""
        if self.adam is not None:
            if not (self.sharded or trace):
                return self.adam.apply(state, grads)
            # Sharded updates (DTensor arithmetic) and traced ones take the
            # formula's out-of-place form: the same bits as `apply`, where
            # torchopt's update would round differently from the unsharded run.
            if hasattr(self.adam, "traced"):
                with torch.set_grad_enabled(trace):
                    return self.adam.traced(state, grads)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, params=state.params,
                                                   inplace=False)
        params = torchopt.apply_updates(state.params, updates, inplace=False)
        return bergson_api.TrainerState(params, opt_state, state.buffers, state.batch_index + 1)

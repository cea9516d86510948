"""Weighted fine-tuning: the one training loop every recipe and relearning share."""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial, reduce

import torch

from .errors import UnlearnError
from .losses import frozen_copy, weighted_nll
from .optim_config import OptimConfig
from .part_losses import part_loss
from .spec import WeightedRows


def _padded(part: WeightedRows) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids [N, W], real-token mask [N, W], weights [N, W - 1] aligned with next-token losses."""
    rows = part.corpus.input_ids
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    real = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        real[i, : len(r)] = True
    weights = torch.zeros((len(rows), width - 1))
    cols = min(width - 1, part.weights.shape[1])
    weights[:, :cols] = part.weights[:, :cols]
    return ids, real, weights


# The plain NLL part's loss, under the name tests and benchmarks know it by.
weighted_loss = weighted_nll


@dataclass
class LoopState:
    """Everything `train_weighted` needs to continue after ``step`` finished steps."""

    step: int
    params: dict[str, torch.Tensor]  # the trainable parameters
    optimizer: dict  # torch.optim state_dict
    generator: torch.Tensor  # the row sampler's state: the data order still to come
    losses: list[float]


def _loop_state(step, params, opt, gen, losses) -> LoopState:
    return LoopState(step, params, opt.state_dict(), gen.get_state(), list(losses))


def trained_parameters(model, parts: list[WeightedRows]) -> dict[str, torch.nn.Parameter]:
    """The parameters the run updates: the parts' ``updates`` selection, else every trainable one."""
    selections = list(dict.fromkeys(p.updates for p in parts if p.updates is not None))
    if len(selections) > 1:
        raise UnlearnError(f"the recipe's parts update different parameters ({selections}); "
                           "a run trains one set")
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not selections:
        return trainable
    chosen = set(selections[0].names(model))
    return {name: p for name, p in trainable.items() if name in chosen}


@contextmanager
def _only_these_need_grad(model, params: dict[str, torch.nn.Parameter]) -> Iterator[None]:
    """Gradients for ``params`` alone (the others' are never computed), restored afterwards."""
    kept = {id(p) for p in params.values()}
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in kept]
    for p in others:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in others:
            p.requires_grad_(True)


def train_weighted(model, parts: list[WeightedRows], optim: OptimConfig, *,
                   on_step: Callable[[int, Callable[[], LoopState]], None] | None = None,
                   resume: LoopState | None = None) -> dict:
    """``optim.steps`` steps; each draws ``batch_size`` rows from every part and sums their losses.

    Only `trained_parameters` get optimizer state and updates. ``on_step(steps_done,
    loop_state)`` is called after every step (it may raise to stop); passing
    its `LoopState` back as ``resume`` continues the loop exactly where it was.
    """
    if not parts:
        raise UnlearnError("the recipe produced no training data")
    losses_of = [part_loss(p.loss) for p in parts]
    for part, loss_of in zip(parts, losses_of):
        if loss_of.check is not None:
            loss_of.check(model, **part.loss_options)
    device = next(p.device for p in model.parameters())
    tensors = [tuple(t.to(device) for t in _padded(p)) for p in parts]
    gen = torch.Generator().manual_seed(optim.seed)
    params = trained_parameters(model, parts)
    opt = optim.build(list(params.values()))
    model.eval()  # no dropout: runs are reproducible and match the attributed training
    # Reference losses compare against the model as passed in (before
    # unlearning, and before a resume overwrites its parameters).
    reference = frozen_copy(model) if any(f.needs_reference for f in losses_of) else None
    losses, t0, start = [], time.perf_counter(), 0
    if resume is not None:
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(resume.params[name])
        opt.load_state_dict(resume.optimizer)
        gen.set_state(resume.generator)
        losses, start = list(resume.losses), resume.step
    with _only_these_need_grad(model, params):
        for step in range(start, optim.steps):
            terms = []
            for part, loss_of, (ids, real, weights) in zip(parts, losses_of, tensors):
                pick = torch.randint(len(ids), (min(optim.batch_size, len(ids)),),
                                     generator=gen).to(device)
                terms.append(loss_of.compute(model, reference, ids[pick], real[pick], weights[pick],
                                             **part.loss_options))
            loss = reduce(operator.add, terms)
            opt.zero_grad()
            loss.backward()
            if optim.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(list(params.values()), optim.max_grad_norm)
            opt.step()
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(step + 1, partial(_loop_state, step + 1, params, opt, gen, losses))
    return {"steps": optim.steps, "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None, "seconds": time.perf_counter() - t0}

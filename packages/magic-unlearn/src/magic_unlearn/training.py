"""Weighted fine-tuning: the one training loop every recipe and relearning share."""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial, reduce

import torch
import torch.nn.functional as F

from .errors import UnlearnError
from .losses import frozen_copy, weighted_kl
from .optim_config import OptimConfig
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


def weighted_loss(model, ids: torch.Tensor, real: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(weight * next-token nll) / number of real predicted tokens.

    Dividing by the token count (not by the weights) keeps uniform weight -1
    equal to plain mean-loss gradient ascent.
    """
    logits = model(input_ids=ids, attention_mask=real.long()).logits[:, :-1].float()
    nll = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
    counted = real[:, 1:]
    return (nll * weights * counted).sum() / counted.sum().clamp_min(1)


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


def train_weighted(model, parts: list[WeightedRows], optim: OptimConfig, *,
                   on_step: Callable[[int, Callable[[], LoopState]], None] | None = None,
                   resume: LoopState | None = None) -> dict:
    """``optim.steps`` steps; each draws ``batch_size`` rows from every part and sums their losses.

    ``on_step(steps_done, loop_state)`` is called after every step (it may
    raise to stop); passing its `LoopState` back as ``resume`` continues the
    loop exactly where it was.
    """
    if not parts:
        raise UnlearnError("the recipe produced no training data")
    device = next(p.device for p in model.parameters())
    tensors = [tuple(t.to(device) for t in _padded(p)) for p in parts]
    gen = torch.Generator().manual_seed(optim.seed)
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    opt = optim.build(list(params.values()))
    model.eval()  # no dropout: runs are reproducible and match the attributed training
    # KL parts compare against the model as passed in (before unlearning, and
    # before a resume overwrites its parameters).
    reference = frozen_copy(model) if any(p.loss == "kl" for p in parts) else None
    losses, t0, start = [], time.perf_counter(), 0
    if resume is not None:
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(resume.params[name])
        opt.load_state_dict(resume.optimizer)
        gen.set_state(resume.generator)
        losses, start = list(resume.losses), resume.step
    for step in range(start, optim.steps):
        terms = []
        for part, (ids, real, weights) in zip(parts, tensors):
            pick = torch.randint(len(ids), (min(optim.batch_size, len(ids)),), generator=gen).to(device)
            if part.loss == "kl":
                terms.append(weighted_kl(model, reference, ids[pick], real[pick], weights[pick]))
            else:
                terms.append(weighted_loss(model, ids[pick], real[pick], weights[pick]))
        loss = reduce(operator.add, terms)
        opt.zero_grad()
        loss.backward()
        if optim.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), optim.max_grad_norm)
        opt.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step + 1, partial(_loop_state, step + 1, params, opt, gen, losses))
    return {"steps": optim.steps, "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None, "seconds": time.perf_counter() - t0}

"""A plain `torch.optim` retraining loop, independent of the engine, for finite differences.

`finite_difference_scores` retrains from scratch with one data weight nudged
up and down and differentiates the query numerically. It is the ground truth
the exactness tests (and anyone doubting a score) compare MAGIC against; use
float64 and a tiny model, since it costs two full trainings per score.

Nothing here comes from the engine: the model runs as loaded (attention by
PyTorch's math SDPA kernel, exact in float64), the weighted loss, the
learning-rate schedule and the clipping are written out below, and the
update is `torch.optim`'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from .config import TrainConfig

_DTYPES = {"fp32": torch.float32, "fp64": torch.float64}

MakeOptimizer = Callable[[list[nn.Parameter], TrainConfig], torch.optim.Optimizer]


def torch_optimizer(params: list[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The `torch.optim` optimizer ``cfg`` names (sgd, adam, adamw), at the base learning rate."""
    decay = cfg.resolved_weight_decay
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=decay)
    if cfg.optimizer in ("adam", "adamw"):
        kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        return kind(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=decay)
    raise ValueError(f"the reference knows sgd, adam and adamw, not {cfg.optimizer!r}; "
                     "pass optimizer=(params, cfg) -> torch.optim.Optimizer")


def learning_rate(cfg: TrainConfig, step: int, n_steps: int) -> float:
    """Update ``step``'s (0-based) rate: linear warm-up to ``cfg.lr``, then the schedule's decay."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(n_steps - cfg.warmup_steps, 1)
    if cfg.schedule == "linear":
        return cfg.lr * (1.0 - progress)
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.lr


def _batch(input_ids: list[list[int]], docs: list[int], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded token ids of ``docs`` and the mask of their real tokens."""
    width = max(len(input_ids[d]) for d in docs)
    ids = torch.zeros(len(docs), width, dtype=torch.long, device=device)
    real = torch.zeros(len(docs), width, dtype=torch.bool, device=device)
    for i, d in enumerate(docs):
        ids[i, : len(input_ids[d])] = torch.tensor(input_ids[d])
        real[i, : len(input_ids[d])] = True
    return ids, real


def retrain_query(
    make_model: Callable[[], nn.Module],
    input_ids: list[list[int]],
    order: list[int],
    weights: torch.Tensor,
    cfg: TrainConfig,
    query: Callable[[nn.Module], torch.Tensor],
    device: str | torch.device = "cpu",
    optimizer: MakeOptimizer = torch_optimizer,
) -> float:
    """Train a fresh model on documents ``order`` (batches of ``cfg.batch_size``) with
    data ``weights`` ([N] or [N, T]) and return the query at the final parameters."""
    model = make_model().to(device=device, dtype=_DTYPES[cfg.precision])
    model.eval()  # no dropout
    if hasattr(model, "set_attn_implementation"):  # a transformers model
        cast(Any, model).set_attn_implementation("sdpa")  # run under the math kernel below
    params = list(model.parameters())  # a tied parameter once
    opt = optimizer(params, cfg)
    # A parameter the loss does not reach still takes its step (decay,
    # moments), as every parameter does in the engine.
    for p in params:
        p.grad = torch.zeros_like(p)
    n_steps = -(-len(order) // cfg.batch_size)
    with sdpa_kernel(SDPBackend.MATH):
        for step in range(n_steps):
            docs = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            ids, real = _batch(input_ids, docs, device)
            logits = model(input_ids=ids).logits[:, :-1]
            tok_loss = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
            # Weights multiply the per-token losses; the mean is over the
            # batch's target tokens, whatever their weights.
            target = real[:, 1:]
            w = weights[docs][:, : ids.shape[1] - 1] if weights.ndim == 2 else weights[docs][:, None]
            loss = (tok_loss * w * target).sum() / target.sum()
            opt.zero_grad(set_to_none=False)
            loss.backward()
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, step, n_steps)
            opt.step()
        with torch.no_grad():
            return float(query(model))


def finite_difference_scores(
    make_model: Callable[[], nn.Module],
    input_ids: list[list[int]],
    order: list[int],
    cfg: TrainConfig,
    query: Callable[[nn.Module], torch.Tensor],
    entries: Iterable[tuple[int, ...]],
    weight_shape: tuple[int, ...],
    eps: float = 1e-4,
    optimizer: MakeOptimizer = torch_optimizer,
) -> torch.Tensor:
    """Central differences d(query)/d(weight[e]) for each index tuple ``e`` in ``entries``.

    ``optimizer(params, cfg)`` builds the `torch.optim` optimizer to retrain
    with (default: the one of ``cfg.optimizer``, for sgd, adam and adamw).
    """
    dtype = _DTYPES[cfg.precision]
    out = []
    for entry in entries:
        values = []
        for sign in (1, -1):
            w = torch.ones(weight_shape, dtype=dtype)
            w[entry] += sign * eps
            values.append(retrain_query(make_model, input_ids, order, w, cfg, query,
                                        optimizer=optimizer))
        out.append((values[0] - values[1]) / (2 * eps))
    return torch.tensor(out, dtype=torch.float64)

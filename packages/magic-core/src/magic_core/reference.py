"""A plain PyTorch retraining loop, independent of the engine, for finite differences.

`finite_difference_scores` retrains from scratch with one data weight nudged
up and down and differentiates the query numerically. It is the ground truth
the exactness tests (and anyone doubting a score) compare MAGIC against; use
float64 and a tiny model, since it costs two full trainings per score.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .attention import use_exact_attention
from .config import TrainConfig
from .optim import build_optimizer
from .precision import resolve_precision


def retrain_query(
    make_model: Callable[[], nn.Module],
    input_ids: list[list[int]],
    order: list[int],
    weights: torch.Tensor,
    cfg: TrainConfig,
    query: Callable[[nn.Module], torch.Tensor],
    device: str | torch.device = "cpu",
) -> float:
    """Train a fresh model on documents ``order`` (batches of ``cfg.batch_size``) with
    data ``weights`` ([N] or [N, T]) and return the query at the final parameters."""
    model = make_model().to(device=device, dtype=resolve_precision(cfg.precision))
    model.eval()
    use_exact_attention(model)
    # Ordinary autograd training of an ordinary module; only the update rule is
    # shared with the engine (torchopt's, whose Adam bias correction is
    # computed in float32, so it is not torch.optim.Adam to the last digit).
    params = dict(model.named_parameters())
    n_steps = -(-len(order) // cfg.batch_size)
    optimizer = build_optimizer(cfg, n_steps)
    opt_state = optimizer.init({k: p.detach() for k, p in params.items()})
    for step in range(n_steps):
        docs = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        width = max(len(input_ids[d]) for d in docs)
        ids = torch.zeros(len(docs), width, dtype=torch.long, device=device)
        real = torch.zeros(len(docs), width, dtype=torch.bool, device=device)
        for i, d in enumerate(docs):
            ids[i, : len(input_ids[d])] = torch.tensor(input_ids[d])
            real[i, : len(input_ids[d])] = True
        logits = model(input_ids=ids).logits[:, :-1]
        tok_loss = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
        target = real[:, 1:]
        w = weights[docs][:, : width - 1] if weights.ndim == 2 else weights[docs][:, None]
        loss = (tok_loss * w * target).sum() / target.sum()
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        grads = {k: torch.zeros_like(p) if g is None else g for (k, p), g in zip(params.items(), grads)}
        if cfg.max_grad_norm:
            norm = torch.sqrt(sum((g**2).sum() for g in grads.values()))
            coef = (cfg.max_grad_norm / (norm + 1e-6)).clamp(max=1.0)
            grads = {k: g * coef for k, g in grads.items()}
        with torch.no_grad():
            current = {k: p.detach() for k, p in params.items()}
            updates, opt_state = optimizer.update(grads, opt_state, params=current)
            for k, p in params.items():
                p.add_(updates[k])
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
) -> torch.Tensor:
    """Central differences d(query)/d(weight[e]) for each index tuple ``e`` in ``entries``."""
    dtype = resolve_precision(cfg.precision)
    out = []
    for entry in entries:
        values = []
        for sign in (1, -1):
            w = torch.ones(weight_shape, dtype=dtype)
            w[entry] += sign * eps
            values.append(retrain_query(make_model, input_ids, order, w, cfg, query))
        out.append((values[0] - values[1]) / (2 * eps))
    return torch.tensor(out, dtype=torch.float64)

"""Preparing a Hugging Face causal LM for functional, weighted training.

Two things the engine needs of a model:

* Tied parameters (GPT-2's input and output embeddings) must stay one tensor.
  The engine swaps a state's parameters in by name, which would untie them
  (one copy trained per use, scores wrong by tens of percent). `share_tied_parameters`
  keeps the first name as the only parameter and makes every other use read
  it at forward time, so gradients from both uses meet in one tensor.
* The training loss must depend on the per-example/per-token data weights,
  or every score is zero (or the engine crashes). `install_weighted_loss`
  routes the weights into the loss and `check_loss_uses_weights` proves it.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from . import bergson_api
from .errors import ConfigError


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    module_path, _, attr = name.rpartition(".")
    return (model.get_submodule(module_path) if module_path else model), attr


def share_tied_parameters(model: nn.Module) -> dict[str, str]:
    """Replace every alias of a tied parameter by a read of its first name.

    Returns ``{alias: canonical}`` for the aliases it rewired (empty for an
    untied model such as GPT-NeoX).
    """
    first_name: dict[int, str] = {}
    aliases: dict[str, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in first_name:
            aliases[name] = first_name[id(param)]
        else:
            first_name[id(param)] = name
    for alias, canonical in aliases.items():
        module, attr = _owner(model, alias)
        src_module, src_attr = _owner(model, canonical)
        del module._parameters[attr]

        def read_canonical(mod, args, attr=attr, src_module=src_module, src_attr=src_attr):
            # Whatever tensor the engine has swapped in for the canonical name,
            # graph included, is what this use must see. getattr, not
            # _parameters: a sharded canonical is a parametrization, whose
            # value is its all-gathered tensor.
            object.__setattr__(mod, attr, getattr(src_module, src_attr))

        module.register_forward_pre_hook(read_canonical)
        object.__setattr__(module, attr, src_module._parameters[src_attr])
    return aliases


def install_weighted_loss(model: nn.Module) -> None:
    """Make the model's loss weight each example/token by the batch's data weights.

    bergson's `weighted_causal_lm_ce`, "mean" reduction: each target token's
    cross-entropy times its weight (``example_weight``, per row or per
    token), summed, divided by the number of target tokens (not the sum of
    the weights), so that at weights 1 it is the usual mean loss.
    """
    try:
        model.loss_function = partial(  # type: ignore[assignment]  # HF's attribute
            bergson_api.weighted_causal_lm_ce, reduction="mean")
    except (AttributeError, TypeError) as exc:
        raise ConfigError(
            f"cannot set the training loss of {type(model).__name__} ({exc}); attribution "
            "needs a Hugging Face causal LM whose forward passes extra batch keys to "
            "model.loss_function"
        ) from None


def check_loss_uses_weights(model: nn.Module, batch: dict) -> None:
    """Refuse a model whose training loss ignores the data weights, before any training.

    ``batch`` is one engine batch (input_ids, labels, example_weight, ...). The
    weights are perturbed; if the loss does not move, scores would be all zero.
    """
    weight = batch["example_weight"].detach().clone().requires_grad_(True)
    try:
        loss = model(**{**batch, "example_weight": weight}).loss
    except TypeError as exc:
        raise ConfigError(
            f"{type(model).__name__}.forward rejects the data weights ({exc}); attribution "
            "needs a model that forwards extra keyword arguments to model.loss_function"
        ) from None
    (grad,) = torch.autograd.grad(loss, weight, allow_unused=True)
    if grad is None or not torch.any(grad != 0):
        raise ConfigError(
            f"the training loss of {type(model).__name__} ignores the data weights, so every "
            "score would be zero; use a model whose forward computes its loss with "
            "model.loss_function (Hugging Face causal LMs do)"
        )

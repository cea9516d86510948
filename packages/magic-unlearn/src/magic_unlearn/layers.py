"""A decoder layer's output activations, and the parameters of chosen layers.

What representation-level recipes (RMU) need from a Hugging Face causal LM
without knowing its architecture: the decoder layers are the model's
`nn.ModuleList` with ``config.num_hidden_layers`` entries (GPT-NeoX
``gpt_neox.layers``, Llama ``model.layers``, GPT-2 ``transformer.h``), and a
layer's MLP is its ``mlp`` submodule.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .errors import UnlearnError


def decoder_layers(model) -> nn.ModuleList:
    count = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise UnlearnError(f"cannot find the decoder layers of {type(model).__name__} (no module list "
                       f"of config.num_hidden_layers={count} layers); use a recipe that does not "
                       "select layers")


def check_layer(model, layer: int, what: str = "layer") -> None:
    count = len(decoder_layers(model))
    if not 0 <= layer < count:
        raise UnlearnError(f"{what} {layer} does not exist: the model has {count} decoder layers "
                           f"(0 to {count - 1}); choose one of them")


class _Reached(Exception):
    """Carries the chosen layer's output out of the forward pass, skipping the layers above it."""

    def __init__(self, output: torch.Tensor):
        super().__init__()
        self.output = output


def layer_output(model, ids: torch.Tensor, mask: torch.Tensor, layer: int) -> torch.Tensor:
    """[N, T, hidden]: the residual stream after decoder layer ``layer`` (0-based).

    The forward stops at that layer: the layers above it, the final norm and
    the vocabulary projection are never computed (an RMU step needs none of them).
    """
    check_layer(model, layer)

    def stop(_module, _inputs, output):
        raise _Reached(output[0] if isinstance(output, tuple) else output)

    handle = decoder_layers(model)[layer].register_forward_hook(stop)
    try:
        model(input_ids=ids, attention_mask=mask)
    except _Reached as reached:
        return reached.output
    finally:
        handle.remove()
    raise UnlearnError(f"decoder layer {layer} of {type(model).__name__} never ran in its forward")


@dataclass(frozen=True)
class LayerModules:
    """The parameters of one submodule (``mlp``) in each of some decoder layers."""

    layers: tuple[int, ...]
    module: str = "mlp"

    def names(self, model) -> list[str]:
        """Names (as ``model.named_parameters()`` gives them) of the selected parameters."""
        stack = decoder_layers(model)
        prefix = next(name for name, m in model.named_modules() if m is stack)
        names = []
        for layer in self.layers:
            check_layer(model, layer, "update layer")
            sub = getattr(stack[layer], self.module, None)
            if not isinstance(sub, nn.Module):
                raise UnlearnError(f"decoder layer {layer} of {type(model).__name__} has no "
                                   f"{self.module!r} submodule to update")
            names += [f"{prefix}.{layer}.{self.module}.{n}" for n, _ in sub.named_parameters()]
        return names

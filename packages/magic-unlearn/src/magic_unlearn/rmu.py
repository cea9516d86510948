"""RMU, Representation Misdirection for Unlearning (Li et al. 2024, the WMDP paper).

On forget text, the residual stream after decoder layer ``layer`` is pushed
toward ``steering_coeff * u`` (u a fixed random unit vector), which scrambles
what the layers above read there; on retain text the same activations are
held at the frozen base model's (weight ``alpha``). Only the MLPs of
``update_layers`` are trained (default: ``layer - 2`` to ``layer``).

Each term is a mean squared error over the hidden dimension, averaged over
the real token positions of the batch; position t is the activation that
predicts token t + 1, so the per-token weight layout of scores applies as is
(the last token's activation predicts nothing and is left out).

Hyperparameters and defaults, with the paper's values for Zephyr-7B (32
layers, hidden 4096) for comparison:

| option | default here | Zephyr-7B (paper) |
|---|---|---|
| ``layer`` | 1 | 7 |
| ``update_layers`` | ``layer - 2`` .. ``layer`` (>= 0) | 5, 6, 7 (MLP output projection only) |
| ``steering_coeff`` | 100 | 6.5 |
| ``alpha`` | 10 | 1200 |
| lr, steps, batch | the job's ``optim`` | 5e-5, 150 batches of 4 |

The coefficient must be large against the layer's typical activation norm
(the built-in world's model: ~13 after layer 1, so the default is ~8 times
it): a target the activations already nearly reach moves nothing. ``alpha``
trades forgetting for keeping (on that model, in 40 steps: 1 lost the
general questions as well, 100 forgot less). Both scale with the model: for
another one, start from its activation norm at ``layer``. ``u``'s entries
are uniform in [0, 1) before normalising, as in the paper's code, drawn from
``seed`` alone (the same vector on every machine).
"""

from __future__ import annotations

import torch
from magic_core.typed_config import Range

from .errors import UnlearnError
from .layers import LayerModules, check_layer, layer_output
from .losses import per_real_token
from .recipe_parts import ATTRIBUTION_BOUNDS, attribution_forget_weights
from .spec import RecipeSpec, UnlearnData, WeightedRows
from .weights import Normalization, Selection, real_token_mask

DEFAULTS = {"layer": 1, "update_layers": None, "steering_coeff": 100.0, "alpha": 10.0, "seed": 0}


def steering_direction(seed: int, size: int) -> torch.Tensor:
    """The fixed random unit vector u (fp64, CPU): entries uniform in [0, 1), then normalised."""
    u = torch.rand(size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return u / u.norm()


def _per_position_mse(acts: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[N, T - 1]: mean squared error over the hidden dimension at positions 0 .. T - 2."""
    return ((acts - target) ** 2).mean(-1)[:, :-1]


def steer_loss(model, reference, ids: torch.Tensor, real: torch.Tensor, weights: torch.Tensor,
               layer: int, steering_coeff: float, seed: int) -> torch.Tensor:
    """sum(weight * |act - c u|^2 / hidden over real positions) / their number."""
    acts = layer_output(model, ids, real.long(), layer)
    target = (steering_coeff * steering_direction(seed, acts.shape[-1])).to(acts)
    return per_real_token(_per_position_mse(acts, target), real, weights)


def keep_loss(model, reference, ids: torch.Tensor, real: torch.Tensor, weights: torch.Tensor,
              layer: int) -> torch.Tensor:
    """sum(weight * |act - frozen act|^2 / hidden over real positions) / their number."""
    acts = layer_output(model, ids, real.long(), layer)
    with torch.no_grad():
        frozen = layer_output(reference, ids, real.long(), layer)
    return per_real_token(_per_position_mse(acts, frozen), real, weights)


def check_options(model, layer: int, **_other) -> None:
    check_layer(model, layer)


def updated_layers(layer: int, update_layers: list[int] | None) -> tuple[int, ...]:
    if update_layers is None:
        return tuple(range(max(layer - 2, 0), layer + 1))
    if not update_layers:
        raise UnlearnError("update_layers is empty; name at least one layer, or null for the default")
    if min(update_layers) < 0:
        raise UnlearnError(f"update_layers must be layer indices >= 0, got {update_layers}")
    return tuple(sorted(set(update_layers)))


def _parts(data: UnlearnData, strength: torch.Tensor, layer: int, update_layers: list[int] | None,
           steering_coeff: float, alpha: float, seed: int) -> list[WeightedRows]:
    updates = LayerModules(updated_layers(layer, update_layers))
    forget = WeightedRows(data.forget, strength, "forget", loss="rmu-steer", updates=updates,
                          loss_options={"layer": layer, "steering_coeff": steering_coeff,
                                        "seed": seed})
    if not alpha:
        return [forget]
    keep = real_token_mask(data.retain, data.retain.longest).float() * alpha
    return [forget, WeightedRows(data.retain, keep, "retain", loss="rmu-keep", updates=updates,
                                 loss_options={"layer": layer})]


def rmu(data: UnlearnData, layer: int = 1, update_layers: list[int] | None = None,
        steering_coeff: float = 100.0, alpha: float = 10.0, seed: int = 0) -> list[WeightedRows]:
    uniform = real_token_mask(data.forget, data.forget.longest).float()
    return _parts(data, uniform, layer, update_layers, steering_coeff, alpha, seed)


def rmu_attribution(data: UnlearnData, layer: int = 1, update_layers: list[int] | None = None,
                    steering_coeff: float = 100.0, alpha: float = 10.0, seed: int = 0,
                    normalization: Normalization = "mean-abs",
                    selection: Selection = "negative-only", clip: float | None = 3.0,
                    top_fraction: float | None = None) -> list[WeightedRows]:
    """Each position steered in proportion to how much its token taught the hazard.

    A token's steering strength is minus its `attribution-weighted` weight,
    floored at zero: tokens that taught the queried knowledge (negative
    scores) are steered, the others left out, since a negative weight on a
    squared distance would push the activations away without bound. The
    default selection ``negative-only`` normalises over exactly the steered tokens.
    """
    weights = attribution_forget_weights(data, "rmu-attribution", normalization, selection, clip,
                                         top_fraction)
    return _parts(data, (-weights).clamp_min(0), layer, update_layers, steering_coeff, alpha, seed)


_BOUNDS = {"layer": Range(ge=0), "update_layers": Range(ge=0), "steering_coeff": Range(gt=0),
           "alpha": Range(ge=0)}

SPECS = [
    RecipeSpec("rmu", rmu,
               "representation misdirection (Li et al. 2024): steer a layer's activations on forget "
               "text to a random direction, keep them on retain text; trains only that layer's "
               "and the two below's MLPs", dict(DEFAULTS), bounds=_BOUNDS),
    RecipeSpec("rmu-attribution", rmu_attribution,
               "RMU whose forget positions are steered in proportion to their tokens' negative "
               "forget-query scores",
               {**DEFAULTS, "normalization": "mean-abs", "selection": "negative-only", "clip": 3.0,
                "top_fraction": None},
               needs_scores=True, bounds={**_BOUNDS, **ATTRIBUTION_BOUNDS}),
]

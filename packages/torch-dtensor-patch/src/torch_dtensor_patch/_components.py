"""Where each patchable component lives inside torch.distributed.tensor."""

from __future__ import annotations

from dataclasses import dataclass

COMPONENTS = ("redistribute", "to_local", "from_local")

# Human-readable names used in reports.
DESCRIPTIONS = {
    "redistribute": "redistribute backward (Redistribute.backward)",
    "to_local": "to_local backward (_ToTorchTensor.backward)",
    "from_local": "from_local backward (_FromTorchTensor.backward)",
}


@dataclass(frozen=True)
class Target:
    component: str
    owner: type  # the autograd.Function subclass whose backward is replaced
    module: object


def targets() -> dict[str, Target]:
    import torch.distributed.tensor._api as api
    import torch.distributed.tensor._redistribute as redistribute

    return {
        "redistribute": Target("redistribute", redistribute.Redistribute, redistribute),
        "to_local": Target("to_local", api._ToTorchTensor, api),
        "from_local": Target("from_local", api._FromTorchTensor, api),
    }


def current_backward(target: Target):
    """The plain function currently installed as ``backward`` on the owner."""
    raw = target.owner.__dict__["backward"]
    return raw.__func__ if isinstance(raw, staticmethod) else raw

"""Unlearning and relearning that stop after any step and resume exactly.

A phase checkpoint (magic-core's `RunControl`) of the ``unlearn`` phase holds
the model's trainable parameters, the torch.optim state and the row
sampler's generator state after step k, with the losses so far; that of the
``relearn`` phase adds the unlearned model and the unlearning log (the
attacked copy's loop state replacing the unlearning one). Evaluations are
recomputed on resume: they are deterministic and never checkpointed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

import torch
from magic_core.fingerprint import model_identity, tensor_digest, token_rows_digest
from magic_core.phase_checkpoint import Checkpoint, Snapshot
from magic_core.run_control import RunControl

from .spec import WeightedRows
from .training import LoopState

PHASES = ("unlearn", "evaluate", "relearn")


def _optimizer_tensors(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """torch.optim state as flat tensors (``"{param}.{key}"``) plus the JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    other: dict[str, dict] = {}
    for index, entries in state_dict["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value
            else:
                other.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "other": other}


def _optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, entries in meta["other"].items():
        state.setdefault(int(index), {}).update(entries)
    return {"state": state, "param_groups": meta["param_groups"]}


def _loop_snapshot(phase: str, loop: LoopState) -> Snapshot:
    optimizer, optimizer_meta = _optimizer_tensors(loop.optimizer)
    return Snapshot(
        {"params": loop.params, "optimizer": optimizer,
         "sampler": {"generator": loop.generator,
                     "losses": torch.tensor(loop.losses, dtype=torch.float64)}},
        meta={"loop": {"phase": phase, "step": loop.step, "optimizer": optimizer_meta}},
    )


def _loop_from(checkpoint: Checkpoint) -> LoopState:
    groups, meta = checkpoint.shared, checkpoint.meta["loop"]
    return LoopState(
        meta["step"], groups["params"],
        _optimizer_state(groups.get("optimizer", {}), meta["optimizer"]),
        groups["sampler"]["generator"].cpu(),  # a CPU generator's state
        groups["sampler"]["losses"].tolist(),
    )


def recipe_fingerprint(base_model, parts: list[WeightedRows], forget_rows, recipe: str,
                       options: dict, optim, relearn) -> dict:
    """What an unlearning run's numbers depend on: weights, data, recipe and optimizers."""
    first = next(base_model.parameters())
    return {
        "model": model_identity(dict(base_model.named_parameters())),
        "parts": [[p.name, p.loss, token_rows_digest(p.corpus.input_ids),
                   tensor_digest({"w": p.weights})]
                  for p in parts],
        "relearn_rows": token_rows_digest(forget_rows),
        "recipe": {"name": recipe, "options": options},
        "optim": asdict(optim), "relearn": asdict(relearn),
        "dtype": str(first.dtype).replace("torch.", ""), "device": first.device.type,
    }


class RecipePhases:
    """The unlearning and relearning loops of one recipe run, under a `RunControl` or none."""

    def __init__(self, control: RunControl | None, fingerprint: dict, device):
        self.control = control
        self.checkpoint: Checkpoint | None = None
        if control is not None:
            control.store.fingerprint.update(fingerprint)
            self.checkpoint = control.resume(device, PHASES)

    def _resumed(self, phase: str) -> Checkpoint | None:
        """The checkpoint to resume ``phase`` from; None when the run is elsewhere or new."""
        if self.checkpoint is not None and self.checkpoint.phase == phase:
            return self.checkpoint
        return None

    def begin(self, phase: str, total: int, step: int = 0) -> None:
        if self.control is not None:
            self.control.begin(phase, total, step)

    def _hook(self, phase: str, total: int, extra: Callable[[], Snapshot] | None = None):
        control = self.control
        if control is None:
            return None

        def on_step(done: int, loop_state: Callable[[], LoopState]) -> None:
            def snapshot() -> Snapshot:
                snap = _loop_snapshot(phase, loop_state())
                if extra is not None:
                    more = extra()
                    snap.shared.update(more.shared)
                    snap.meta.update(more.meta)
                return snap
            control.after_step(phase, done, total, snapshot)
        return on_step

    def unlearn(self, model, steps: int, train: Callable[..., dict]) -> dict:
        """Run (or resume, or skip when relearning was reached) ``train(on_step=, resume=)``."""
        if (reached := self._resumed("relearn")) is not None:
            with torch.no_grad():
                saved = reached.shared["unlearned"]
                for name, p in model.named_parameters():
                    p.copy_(saved[name])
            return reached.meta["unlearn_log"]
        checkpoint = self._resumed("unlearn")
        resume = _loop_from(checkpoint) if checkpoint is not None else None
        self.begin("unlearn", steps, resume.step if resume else 0)
        return train(on_step=self._hook("unlearn", steps), resume=resume)

    def relearn(self, model, log: dict, steps: int, attack: Callable[..., tuple]) -> tuple:
        """Run (or resume) ``attack(on_step=, resume=)`` on a copy of the unlearned ``model``."""
        checkpoint = self._resumed("relearn")
        resume = _loop_from(checkpoint) if checkpoint is not None else None
        self.begin("relearn", steps, resume.step if resume else 0)

        def unlearned() -> Snapshot:
            return Snapshot({"unlearned": dict(model.named_parameters())}, meta={"unlearn_log": log})
        return attack(on_step=self._hook("relearn", steps, unlearned), resume=resume)

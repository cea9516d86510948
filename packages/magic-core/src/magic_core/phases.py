"""The attribution's phases (train, query, backward), resumable from a phase checkpoint.

What each phase's checkpoint holds, so that the resumed run repeats the
uninterrupted one's arithmetic bit for bit:

* ``train`` (after step i): the state before step i + 1, every state (and,
  for the ``gradients`` schedule, every gradient) kept so far for the
  backward, the losses.
* ``query``: the final state, the kept states and gradients, the losses, the
  query gradient.
* ``backward`` (after the VJP of step t): the states still on the backward's
  stack (forward-kept and replay-kept; their replays are then the same), the
  kept gradients not yet applied, the parameter and optimizer cotangents and
  the accumulated data-weight gradients (per rank: each rank holds its
  share, see `data_parallel`).

A state is its parameters, the optimizer state's tensors, its RNG states and
batch index; buffers are the model's, rebuilt identically by the rerun. A
sharded run (see `sharding`) stores each rank's shards in its own file.
"""

from __future__ import annotations

from functools import partial

import torch
from torchopt.pytree import tree_flatten, tree_unflatten

from ._bergson import engine
from .fingerprint import model_identity, token_rows_digest
from .phase_checkpoint import Checkpoint, Snapshot
from .run_control import RunControl
from .sharding import local_shard, reshard_like
from .typed_config import to_mapping

PHASES = ("train", "query", "backward")


# -- states as tensors -------------------------------------------------------------
def state_tensors(state) -> dict[str, torch.Tensor]:
    tensors = {f"param.{k}": local_shard(v) for k, v in state.params.items()}
    leaves, _ = tree_flatten(state.opt_state)
    tensors.update({f"opt.{i}": local_shard(t) for i, t in enumerate(leaves)
                    if isinstance(t, torch.Tensor)})
    tensors["rng.cpu"] = state.cpu_rng_state
    tensors["rng.cuda"] = state.cuda_rng_state
    tensors["batch_index"] = torch.tensor(state.batch_index)
    return tensors


def state_from_tensors(tensors: dict[str, torch.Tensor], template):
    """The state saved by `state_tensors`, shaped like ``template`` (the run's initial state)."""
    leaves, spec = tree_flatten(template.opt_state)
    leaves = [reshard_like(tensors[f"opt.{i}"], t) if isinstance(t, torch.Tensor) else t
              for i, t in enumerate(leaves)]
    return engine().TrainerState(
        {k: reshard_like(tensors[f"param.{k}"], p) for k, p in template.params.items()},
        tree_unflatten(spec, leaves),
        template.buffers, int(tensors["batch_index"]),
        tensors["rng.cuda"].cpu(), tensors["rng.cpu"].cpu(),  # torch sets RNG states from CPU bytes
    )


def _state_groups(prefix: str, states) -> dict[str, dict[str, torch.Tensor]]:
    return {f"{prefix}-{i:06d}": state_tensors(s) for i, s in states}


def _materialized(run, entries):
    """Kept states may sit in host memory or on disk (see `state_store`)."""
    return [(i, run.kept.materialize(s)) for i, s in entries]


def _gradient_groups(run) -> tuple[list[int], dict[str, dict[str, torch.Tensor]]]:
    steps = sorted(run.gradients)
    return steps, {f"grad-{i:06d}": run.gradients.materialize(run.gradients[i]) for i in steps}


def _restore_gradients(run, checkpoint: Checkpoint) -> None:
    for i in checkpoint.meta.get("gradients", []):
        run.gradients.keep(i, _group(checkpoint, f"grad-{i:06d}"))


def _placed(run, snapshot: Snapshot) -> Snapshot:
    """Sharded, ranks hold different shards: every group but the log goes to each rank's file."""
    if getattr(run, "fsdp", False):
        for group in [g for g in snapshot.shared if g != "log"]:
            for key, t in snapshot.shared.pop(group).items():
                snapshot.per_rank[f"{group}/{key}"] = local_shard(t)
    return snapshot


def _group(checkpoint: Checkpoint, name: str) -> dict[str, torch.Tensor]:
    if name in checkpoint.shared:
        return checkpoint.shared[name]
    prefix = f"{name}/"
    return {k[len(prefix):]: t for k, t in checkpoint.per_rank.items() if k.startswith(prefix)}


def _states_from(checkpoint: Checkpoint, prefix: str, indices, template) -> list:
    return [(i, state_from_tensors(_group(checkpoint, f"{prefix}-{i:06d}"), template)) for i in indices]


# -- snapshots ---------------------------------------------------------------------
def _common(run, **meta) -> tuple[dict, dict]:
    steps, groups = _gradient_groups(run)
    groups["log"] = {"losses": torch.tensor(run.losses, dtype=torch.float64)}
    return groups, {"replayed_steps": run.replayed_steps, "replayed_updates": run.replayed_updates,
                    "timings": dict(run.timings.seconds), "gradients": steps, **meta}


def _train_snapshot(run, loop: dict) -> Snapshot:
    groups, meta = _common(run, kept=sorted(run.kept))
    groups.update(_state_groups("kept", _materialized(run, run.kept.items())))
    groups["state"] = state_tensors(loop["state"])
    return _placed(run, Snapshot(groups, meta=meta))


def _query_snapshot(run, grads: dict[str, torch.Tensor]) -> Snapshot:
    groups, meta = _common(run, kept=sorted(run.kept), query_value=run.query_value)
    groups.update(_state_groups("kept", _materialized(run, run.kept.items())))
    groups["final"] = state_tensors(run.final_state)
    groups["query"] = grads
    return _placed(run, Snapshot(groups, meta=meta))


def _backward_snapshot(run, loop: dict) -> Snapshot:
    stack = loop["stack"]
    groups, meta = _common(run, target=loop["target"], stack=[i for i, _ in stack],
                           query_value=run.query_value)
    groups.update(_state_groups("stack", _materialized(run, stack)))
    per_rank = {f"cot.param.{i}": local_shard(t) for i, t in enumerate(loop["param_cot"])}
    per_rank.update({f"cot.opt.{i}": local_shard(t) for i, t in enumerate(loop["opt_cot"])})
    per_rank["weight_grads"] = loop["weight_grads"]
    return _placed(run, Snapshot(groups, per_rank, meta))


SNAPSHOTS = {"train": _train_snapshot, "backward": _backward_snapshot}


def _on_engine_step(control: RunControl, run, phase: str, done: int, loop_state) -> None:
    control.after_step(phase, done, run.n_steps, lambda: SNAPSHOTS[phase](run, loop_state()))


# -- the phases ----------------------------------------------------------------------
def fingerprint(run, corpus, objective, train, attribution, dtype, device) -> dict:
    """What the attribution's numbers depend on, beyond what the caller adds (job, data)."""
    return {
        "train": to_mapping(train),
        # Where kept states live (memory budgets, spill folder) changes no number; the
        # schedule they resolve to decides which states a checkpoint holds.
        "attribution": {"kept_states": run.keep_schedule, "granularity": attribution.granularity,
                        "sharding": attribution.sharding},
        "corpus": token_rows_digest(corpus.input_ids), "query": objective.summary(),
        "model": model_identity(run.initial_state.params),
        "dtype": str(dtype).replace("torch.", ""), "device": torch.device(device).type,
    }


def _restore_common(run, checkpoint: Checkpoint) -> None:
    run.losses = checkpoint.shared["log"]["losses"].tolist()
    run.replayed_steps = checkpoint.meta["replayed_steps"]
    run.replayed_updates = checkpoint.meta.get("replayed_updates", 0)
    _restore_gradients(run, checkpoint)
    run.timings.seconds.update(checkpoint.meta["timings"])
    if "query_value" in checkpoint.meta:
        run.query_value = checkpoint.meta["query_value"]


def run_phases(run, objective, control: RunControl | None, device) -> torch.Tensor:
    """Train, take the query gradient and replay backward; returns the data-weight gradients.

    With a ``control`` every step may stop the run (`Preempted`, after a
    checkpoint) and a run finding a checkpoint continues from it.
    """
    if control is None:
        run.train()
        return run.backward(run.query_gradients(objective))
    checkpoint = control.resume(device, PHASES)
    phase = checkpoint.phase if checkpoint else "train"
    if checkpoint is not None:
        _restore_common(run, checkpoint)
    template = run.template
    run.on_step = partial(_on_engine_step, control, run)

    if phase == "train":
        start, state = 0, None
        if checkpoint is not None:
            start = checkpoint.step
            state = state_from_tensors(_group(checkpoint, "state"), template)
            run.kept.update(_states_from(checkpoint, "kept", checkpoint.meta["kept"], template))
        control.begin("train", run.n_steps, start)
        run.train(start, state)
    if phase in ("train", "query"):
        if phase == "query":
            run.kept.update(_states_from(checkpoint, "kept", checkpoint.meta["kept"], template))
            run.final_state = state_from_tensors(_group(checkpoint, "final"), template)
            grads = {k: reshard_like(t, template.params[k])
                     for k, t in _group(checkpoint, "query").items()}
        else:
            control.begin("query", 1)
            grads = run.query_gradients(objective)
            control.after_step("query", 1, 1, lambda: _query_snapshot(run, grads))
        control.begin("backward", run.n_steps)
        return run.backward(grads)

    control.begin("backward", run.n_steps, checkpoint.step)
    per_rank = checkpoint.per_rank
    n_params = len(template.params)
    n_opt = sum(1 for k in per_rank if k.startswith("cot.opt."))
    like = template.differentiable_tensors()  # cotangents are laid out as what they belong to
    return run.backward(None, resume={
        "target": checkpoint.meta["target"],
        "stack": _states_from(checkpoint, "stack", checkpoint.meta["stack"], template),
        "param_cot": [reshard_like(per_rank[f"cot.param.{i}"], like[i]) for i in range(n_params)],
        "opt_cot": [reshard_like(per_rank[f"cot.opt.{i}"], like[n_params + i])
                    for i in range(n_opt)],
        "weight_grads": per_rank["weight_grads"],
    })

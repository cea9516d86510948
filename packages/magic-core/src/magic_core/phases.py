"""The attribution's phases (train, query, backward), resumable from a phase checkpoint.

A checkpoint is the engine's `MagicEngine.state_dict` (see there for what
each phase's holds) as checkpoint files: after training step i, the state
before step i + 1 and the states (and gradients) kept so far; after the
query, the trained state and the query gradient too; after the VJP of step
t, the states still on the backward's stack, the kept gradients not yet
applied, and the cotangents and accumulated data-weight gradients. The
resumed run loads it with `load_state_dict` and repeats the uninterrupted
one's arithmetic bit for bit.

Under a `RunControl`, rank 0 of an unsharded run, and every rank of a
sharded one, spills kept states durably (`StateStore.make_durable`) into
the run's ``kept-states`` folder (``RUN_DIR/kept-states/``, or a folder
named after the run inside ``attribution.spill_dir`` when that is set; a
sharded run's rank ``r`` into its subfolder ``rank-0000r/``): a checkpoint
lists those files instead of writing them again, and kept states, kept
gradients and the query gradient it wrote once are listed by later
checkpoints too (``lasting`` groups), so each checkpoint writes only the
current state, the cotangents and kept states that live in memory only and
were not written before.

Tensors every rank holds alike (the states of a data-parallel run) are
written once; the cotangents and data-weight gradients (each rank's share,
see `data_parallel`) and a sharded run's current state (each rank's shards,
see `sharding`) go to one file per rank; a sharded run's kept shards and
query gradient are each rank's own groups (``Snapshot.rank_groups``), listed
or written once like the shared ones.

A data-parallel run may resume on another number of ranks: only the sums
of the shares matter, so a rank adds up the shares of the saved ranks it
takes over (``s % world_size == rank``) and a rank that takes over none
starts from zero shares. The scores then differ from the uninterrupted
run's by the order of floating-point sums (within 1e-10 relative in
float64), as a run on another world size does anyway. A sharded run's
shards are laid out for their world size: that checkpoint is refused.
"""

from __future__ import annotations

import logging
from functools import partial, reduce
from pathlib import Path

import torch
import torch.distributed as dist

from .fingerprint import digest, model_identity, token_rows_digest
from .phase_checkpoint import Checkpoint, Snapshot
from .run_control import RunControl
from .state_files import StoredFile
from .typed_config import to_mapping

PHASES = ("train", "query", "backward")
log = logging.getLogger(__name__)

# The state_dict's plain values, kept in the checkpoint header.
_META = ("step", "sharded", "timings", "replayed_steps", "replayed_updates", "query_value")


# -- state_dict <-> checkpoint files ---------------------------------------------------
def snapshot(state_dict: dict) -> Snapshot:
    """``state_dict`` as the groups of tensors and the header a checkpoint stores."""
    sd = state_dict
    groups: dict = {"log": {"losses": sd["losses"]}}
    groups.update({f"kept-{i:06d}": t for i, t in sd["kept"].items()})
    # Named as in a gradient's spill file, which a checkpoint may list instead.
    groups.update({f"grad-{i:06d}": g if isinstance(g, StoredFile) else
                   {f"grad.{k}": t for k, t in g.items()} for i, g in sd["gradients"].items()})
    for key, group in (("state", "state"), ("query_gradient", "query")):
        if sd.get(key) is not None:
            groups[group] = sd[key]
    lasting = {g for g in groups if g.startswith(("kept-", "grad-")) or g == "query"}
    meta = {k: sd[k] for k in _META}
    meta.update(kept=sorted(sd["kept"]), gradients=sorted(sd["gradients"]))
    per_rank = {}
    backward = sd.get("backward")
    if backward is not None:
        meta["target"] = backward["target"]
        per_rank.update({f"cot.param.{i}": t for i, t in enumerate(backward["param_cot"])})
        per_rank.update({f"cot.opt.{i}": t for i, t in enumerate(backward["opt_cot"])})
        per_rank["weight_grads"] = backward["weight_grads"]
    rank_groups = {}
    if sd["sharded"]:
        # Every rank holds its own shards: lasting ones (kept states, the query gradient) are
        # this rank's files, written once or spilled; the current state goes to its file.
        for group in [g for g in groups if g != "log"]:
            if group in lasting:
                rank_groups[group] = groups.pop(group)
            else:
                for key, t in groups.pop(group).items():
                    per_rank[f"{group}/{key}"] = t
    return Snapshot(groups, per_rank, meta, lasting, world_bound=bool(sd["sharded"]),
                    rank_groups=rank_groups)


def _group(checkpoint: Checkpoint, name: str):
    """A group of tensors (or the spill file holding them), from the shared files or this
    rank's; empty when absent."""
    if name in checkpoint.files:
        return checkpoint.files[name]
    if name in checkpoint.shared:
        return checkpoint.shared[name]
    prefix = f"{name}/"
    return {k[len(prefix):]: t for k, t in checkpoint.per_rank.items() if k.startswith(prefix)}


def _listed(per_rank: dict[str, torch.Tensor], prefix: str) -> list[torch.Tensor]:
    return [per_rank[f"{prefix}{i}"] for i in range(sum(1 for k in per_rank if k.startswith(prefix)))]


def _gradient(group):
    if isinstance(group, StoredFile):
        return group
    return {k[len("grad."):]: t for k, t in group.items()}


def state_dict_of(checkpoint: Checkpoint) -> dict:
    """The engine's state_dict that `snapshot` made ``checkpoint`` of."""
    meta = checkpoint.meta
    sd = {k: meta[k] for k in _META}
    sd.update(phase=checkpoint.phase, losses=_group(checkpoint, "log")["losses"],
              kept={i: _group(checkpoint, f"kept-{i:06d}") for i in meta["kept"]},
              gradients={i: _gradient(_group(checkpoint, f"grad-{i:06d}")) for i in meta["gradients"]},
              state=_group(checkpoint, "state") or None,
              query_gradient=_group(checkpoint, "query") or None)
    if checkpoint.phase == "backward":
        sd["backward"] = {"target": meta["target"], **_shares(checkpoint.per_rank_parts)}
    return sd


def _shares(parts: list[dict[str, torch.Tensor]]) -> dict:
    """This rank's cotangent shares and data-weight gradients: the sums of the saved ranks'
    it takes over (one part: as saved, bit for bit); None where it takes over none."""
    if not parts:
        return {"weight_grads": None, "param_cot": None, "opt_cot": None}

    def added(tensors):
        return reduce(torch.add, tensors)
    return {"weight_grads": added([p["weight_grads"] for p in parts]),
            "param_cot": [added(ts) for ts in zip(*(_listed(p, "cot.param.") for p in parts))],
            "opt_cot": [added(ts) for ts in zip(*(_listed(p, "cot.opt.") for p in parts))]}


def _after_step(control: RunControl, run, phase: str, done: int, total: int) -> None:
    control.after_step(phase, done, total, lambda: snapshot(run.state_dict(references=True)))


def _spill_durably(run, control: RunControl) -> bool:
    """Make the kept-state stores spill into the run's durable folder: rank 0's of an
    unsharded run (the other ranks' states are rank 0's), every rank's of a sharded one,
    each into a folder of its own."""
    if not run.fsdp and dist.is_initialized() and dist.get_rank() != 0:
        return False
    store = control.store
    if run.spill_dir is not None:
        # A folder per run directory and job: runs sharing spill_dir never meet.
        key = digest({"run": str(store.directory.resolve()), **store.fingerprint})[:16]
        store.spill_dir = Path(run.spill_dir) / f"magic-run-{key}"
    folder = store.rank_spill_dir if run.fsdp else store.spill_dir
    run.spill_durably(folder)
    log.info("kept states beyond the memory budgets spill to %s (kept for checkpoints)", folder)
    return True


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


def run_phases(run, objective, control: RunControl | None, device) -> torch.Tensor:
    """Train, take the query gradient and replay backward; returns the data-weight gradients.

    With a ``control`` every step may stop the run (`Preempted`, after a
    checkpoint) and a run finding a checkpoint continues from it.
    """
    if control is not None:
        durable = _spill_durably(run, control)
        checkpoint = control.resume(device, PHASES)
        if durable:
            # A killed process's later spills. Before loading: the loaded states are
            # placed within this run's budgets and may spill into the same folder.
            run.sweep_spills(control.store.referenced)
            control.on_saved = run.release_spills
        if checkpoint is not None:
            log.info("resuming after %s step %d/%d from %s", checkpoint.phase, checkpoint.step,
                     checkpoint.total, checkpoint.directory)
            run.load_state_dict(state_dict_of(checkpoint))
        run.on_phase = control.begin
        run.on_step = partial(_after_step, control, run)
    return run.run(objective)

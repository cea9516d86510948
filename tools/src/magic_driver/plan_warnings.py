"""One line for everything of a plan that will not fit, naming the setting that fixes it.

A memory fix is looked for by planning the job again with each candidate
setting (sharding, a leaner schedule, more nodes) and naming the first that
fits; sizes (host memory, the time limit) are computed directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .plan_estimate import Plan
from .plan_memory import CUDA_CONTEXT_BYTES, GPU_PROCESS_HOST_BYTES
from .slurm_section import time_limit_seconds

Replan = Callable[[tuple[str, ...]], Plan | None]  # extra --set values -> plan, None if refused


def gib(n: float) -> str:
    """Bytes in the largest binary unit that keeps a digit before the point."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:.0f} B"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def slurm_time(seconds: float) -> str:
    """A Slurm ``--time`` of at least ``seconds``, in whole hours."""
    hours = max(1, math.ceil(seconds / 3600))
    days, hours = divmod(hours, 24)
    return f"{days}-{hours:02d}:00:00" if days else f"{hours:02d}:00:00"


def _gpu_need(plan: Plan) -> int:
    return plan.peak + CUDA_CONTEXT_BYTES


def _gpu_fits(plan: Plan) -> bool:
    return plan.where.gpu_memory is None or _gpu_need(plan) <= plan.where.gpu_memory


def _node_use(plan: Plan) -> int:
    """Host memory a node's processes take: CPU ranks their whole peak; GPU ranks their host
    tier and their process."""
    if plan.where.gpu is None:
        return plan.where.ranks_per_node * plan.peak
    host = max(plan.placed.bytes["host"], plan.replayed.tier_bytes["host"])
    return plan.where.ranks_per_node * (host + GPU_PROCESS_HOST_BYTES)


def _host_fits(plan: Plan) -> bool:
    return plan.where.memory_limit is None or _node_use(plan) <= plan.where.memory_limit


def _spill_fits(plan: Plan) -> bool:
    free = plan.where.spill_free
    return free is None or plan.spill_disk_bytes_per_node <= free


def _memory_candidates(plan: Plan) -> list[tuple[str, ...]]:
    """Settings that lower the peak, fewest changes and fewest extra nodes first: sharding
    (fsdp splits states and cotangents), ``all`` (the backward holds 2 states, no replays)
    or ``log`` (holds O(log n)), no device tier, more nodes."""
    job, nodes = plan.job, plan.where.nodes
    shardings: list[tuple[str, ...]] = [()]
    if not plan.sharded and plan.where.ranks > 1:
        shardings.append(("attribution.sharding=fsdp",))
    schedules: list[tuple[str, ...]] = [()]
    schedules += [(f"attribution.kept_states={s}",) for s in ("all", "log") if s != plan.schedule]
    devices: list[tuple[str, ...]] = [()]
    if plan.budgets["device"] and plan.placed.bytes["device"]:
        devices.append(("attribution.device_memory=0B",))
    more = [1] + ([2, 4, 8] if plan.where.gpu is not None else [])
    found = []
    for factor in more:
        for shard in shardings if factor == 1 else [("attribution.sharding=fsdp",)]:
            for schedule in schedules:
                for device in devices:
                    nodes_set = (f"slurm.nodes={factor * nodes}",) if factor > 1 else ()
                    settings = (*nodes_set, *shard, *schedule, *device)
                    if shard and not schedule and job.attribution.kept_states == "gradients":
                        settings += ("attribution.kept_states=auto",)  # refused with fsdp
                    if settings:
                        found.append(settings)
    return sorted(found, key=lambda s: (any(x.startswith("slurm.nodes") for x in s), len(s)))


def _first_fix(plan: Plan, replan: Replan, fits: Callable[[Plan], bool]
               ) -> tuple[tuple[str, ...], Plan] | None:
    for candidate in _memory_candidates(plan):
        other = replan(candidate)
        if other is not None and fits(other):
            return candidate, other
    return None


def _set(settings: tuple[str, ...]) -> str:
    return "set " + " and ".join(settings)


def gpu_memory(plan: Plan, replan: Replan) -> str | None:
    at = plan.where
    if at.gpu is None or at.gpu_memory is None or _gpu_fits(plan):
        return None
    phase = "backward" if plan.backward.bytes >= plan.training.bytes else "training"
    found = _first_fix(plan, replan, _gpu_fits)
    fix = (f"{_set(found[0])} (then ~{gib(_gpu_need(found[1]))})" if found else
           "no setting tried fits (attribution.sharding, kept_states, device_memory, slurm.nodes)"
           "; use GPUs with more memory, or see docs/planning.md")
    return (f"GPU memory: the {phase} needs ~{gib(_gpu_need(plan))} per GPU (with the CUDA "
            f"context), over the {gib(at.gpu_memory)} of a {at.gpu}; {fix}")


def host_memory(plan: Plan, replan: Replan) -> str | None:
    at = plan.where
    if _host_fits(plan):
        return None
    assert at.memory_limit is not None
    what = (f"{at.ranks_per_node} rank(s) x {gib(plan.peak)}" if at.gpu is None else
            f"{at.ranks_per_node} rank(s) x ({gib(plan.placed.bytes['host'])} of kept states "
            f"+ {gib(GPU_PROCESS_HOST_BYTES)} of process)")
    head = (f"host memory: {what} exceed the {gib(at.memory_limit)} of a node "
            f"({at.memory_limit_key})")
    if at.gpu is not None:
        room = (0.95 * at.memory_limit - at.ranks_per_node * GPU_PROCESS_HOST_BYTES)
        per_rank = int(room / at.ranks_per_node / 2**30)
        if per_rank > 0:
            return f"{head}; set attribution.host_memory={per_rank}GiB (the rest spills to disk)"
    else:
        found = _first_fix(plan, replan, _host_fits)
        if found:
            return f"{head}; {_set(found[0])} (then ~{gib(_node_use(found[1]))} a node)"
    need = math.ceil(_node_use(plan) / 0.95 / 2**30)
    return f"{head}; set slurm.mem={need}G or use nodes with more memory"


def spill_disk(plan: Plan, replan: Replan) -> str | None:
    if _spill_fits(plan):
        return None
    at = plan.where
    need = plan.spill_disk_bytes_per_node
    head = (f"disk: spilled states need {gib(need)} a node in {at.spill_where}, which has "
            f"{gib(at.spill_free or 0)} free")
    for candidate in (("attribution.kept_states=sqrt",), ("attribution.kept_states=log",)):
        if candidate[0].endswith(plan.schedule):
            continue
        other = replan(candidate)
        if other is not None and _spill_fits(other):
            return f"{head}; set attribution.spill_dir to a disk with {gib(need)} free, or {_set(candidate)}"
    return f"{head}; set attribution.spill_dir to a disk with {gib(need)} free"


def checkpoint_disk(plan: Plan) -> str | None:
    at = plan.where
    if at.output_free is None or plan.output_disk_bytes <= at.output_free:
        return None
    spill = plan.output_disk_bytes - plan.checkpoint_bytes
    what = (f"phase checkpoints take up to {gib(plan.checkpoint_bytes)}"
            + (f" and {'every rank' if plan.sharded else 'rank 0'}'s spilled states {gib(spill)}"
               if spill else ""))
    fix = "set output.dir (or --out) to a disk with that much free"
    if spill:
        fix += ", or attribution.spill_dir to another disk for the spilled states"
    return (f"disk: {what} in {at.output_where}, which has {gib(at.output_free)} free; {fix}")


def time_limit(plan: Plan) -> str | None:
    if plan.seconds is None:
        return None
    total = plan.seconds["train"] + plan.seconds["backward"]
    slurm = plan.job.slurm
    usable = time_limit_seconds(slurm.time) - slurm.checkpoint_before_end
    if total <= usable:
        return None
    return (f"time: training and backward take ~{duration(total)}, over slurm.time {slurm.time} "
            f"(less checkpoint_before_end); set slurm.time={slurm_time(1.25 * total + slurm.checkpoint_before_end)}"
            " (else the run is requeued, resuming from its checkpoint, until done)")


def warnings(plan: Plan, replan: Replan) -> list[str]:
    found = [gpu_memory(plan, replan), host_memory(plan, replan), spill_disk(plan, replan),
             checkpoint_disk(plan), time_limit(plan)]
    return [w for w in found if w]

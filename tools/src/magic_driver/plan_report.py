"""A plan as ``plan.json`` (bytes and seconds) and as the table `magic plan` prints."""

from __future__ import annotations

from .plan_estimate import Plan
from .plan_job import CPU_MEMORY_BUDGET
from .plan_warnings import duration, gib
from .text_table import columns


def notes(plan: Plan) -> list[str]:
    """What the numbers assume."""
    found = []
    if not plan.corpus.exact:
        found.append(f"documents: {plan.corpus.rows} from {plan.corpus.how}; chunked or filtered "
                     "corpora have other counts (set data.n_docs for an exact plan)")
    found.append(f"every row is taken as {plan.job.train.max_seq_len} tokens long "
                 "(train.max_seq_len): shorter documents make shorter, cheaper batches")
    at = plan.where
    if at.gpu is not None and at.gpu_memory is None:
        found.append(f"the memory of a {at.gpu} is not known: set gpu_memory in the cluster "
                     "profile (`magic clusters init NAME --from gh200`) to check it")
    if at.memory_limit is None:
        found.append("host memory of a node is not known: set node_memory in the cluster profile "
                     "or slurm.mem to check it")
    if at.spill_free is None:
        found.append(f"free disk in {at.spill_where} is not known here; spilled states need it")
    if plan.rate is None:
        found.append(f"no speed is known for a {at.gpu}; time not estimated (GPUs known: GH200, "
                     "H200, H100, A100: set gpu in the cluster profile)")
    elif plan.rate.assumed:
        found.append(f"time: {plan.rate.source}")
    return found


def to_json(plan: Plan, warnings: list[str], source: dict) -> dict:
    job, at, size, shape = plan.job, plan.where, plan.size, plan.shape
    return {
        "job": source,
        "model": {"path": job.model.path, "type": shape.model_type, "parameters": shape.parameters,
                  "matmul_parameters": shape.matmul_parameters, "layers": shape.layers,
                  "width": shape.width, "heads": shape.heads, "vocab": shape.vocab,
                  "tied_embeddings": shape.tied},
        "run": {"documents": plan.corpus.rows, "documents_from": plan.corpus.how,
                "steps": plan.steps, "batch_size": job.train.batch_size,
                "max_seq_len": job.train.max_seq_len, "precision": job.train.precision,
                "optimizer": job.train.optimizer, "nodes": at.nodes,
                "ranks_per_node": at.ranks_per_node, "ranks": at.ranks,
                "sharding": job.attribution.sharding, "device": at.gpu or "cpu",
                "gpu_memory_bytes": at.gpu_memory, "node_memory_bytes": at.node_memory,
                "memory_limit_bytes": at.memory_limit},
        "state": {"bytes": size.bytes, "parameter_bytes": size.parameter_bytes,
                  "moment_bytes": size.moment_bytes, "bytes_per_rank": size.bytes_per_rank,
                  "parameter_bytes_per_rank": size.parameter_bytes_per_rank,
                  "moment_bytes_per_rank": size.moment_bytes_per_rank,
                  "gradient_bytes_per_rank": size.gradient_bytes_per_rank,
                  "spill_file_bytes_per_rank": size.spill_file_bytes_per_rank},
        "schedule": {"requested": job.attribution.kept_states, "resolved": plan.schedule,
                     "budgets_per_rank": plan.budgets, "states": plan.placed.states,
                     "gradients": plan.placed.gradients, "bytes_per_rank": plan.placed.bytes,
                     "replayed_steps": plan.replayed.replayed_steps,
                     "replayed_updates": plan.replayed.replayed_updates,
                     "states_held_in_backward": plan.replayed.states_in_memory,
                     "spill_bytes_per_rank": plan.spill_bytes_per_rank,
                     "spill_bytes_per_node": plan.spill_disk_bytes_per_node,
                     "durable_spill_bytes": plan.durable_spill_bytes,
                     "spill_dir": at.spill_where, "spill_free_bytes": at.spill_free,
                     "checkpoint_bytes": plan.checkpoint_bytes,
                     "output_disk_bytes": plan.output_disk_bytes,
                     "output_free_bytes": at.output_free},
        "memory": {"per": "GPU (allocated)" if at.gpu else "rank (resident)",
                   "train_bytes": plan.training.bytes, "backward_bytes": plan.backward.bytes,
                   "train_parts": plan.training.parts, "backward_parts": plan.backward.parts},
        "time": None if plan.seconds is None or plan.rate is None else {
            "train_s": plan.seconds["train"], "backward_s": plan.seconds["backward"],
            "total_s": plan.seconds["train"] + plan.seconds["backward"],
            "flops_per_step_per_rank": plan.flops_per_step, "device": plan.rate.name,
            "flops_per_s": plan.rate.flops, "backward_flops_per_s": plan.rate.backward_flops,
            "assumed": plan.rate.assumed, "source": plan.rate.source},
        "warnings": warnings,
        "notes": notes(plan),
    }


def _tiers(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {tier}" for tier, n in counts.items() if n) or "none"


def _disk(plan: Plan) -> str:
    at = plan.where
    spill = f"spill {gib(plan.spill_disk_bytes_per_node)} a node in {at.spill_where}"
    if plan.output_disk_bytes > plan.checkpoint_bytes:
        whose = "every rank's" if plan.sharded else "rank 0's"
        spill = (f"spill {gib(plan.durable_spill_bytes)} ({whose}) in {at.output_where}/kept-states"
                 + (f", {gib(plan.spill_disk_bytes_per_node)} a node in {at.spill_where}"
                    if plan.spill_disk_bytes_per_node else ""))
    return f"{spill}; checkpoints up to {gib(plan.checkpoint_bytes)} in {at.output_where}"


def table(plan: Plan) -> str:
    job, at, size = plan.job, plan.where, plan.size
    per = "rank" if at.ranks > 1 else "run"
    device = f"{at.ranks} x {at.gpu}" if at.gpu else f"{at.ranks} CPU rank(s)"
    rows = [
        ("model", f"{job.model.path} ({plan.shape.model_type}), {plan.shape.parameters:,} "
                  f"parameters"),
        ("run", f"{plan.corpus.rows:,} documents, {plan.steps:,} steps of {job.train.batch_size} "
                f"x {job.train.max_seq_len} tokens, {job.train.optimizer}, {job.train.precision}"),
        ("processes", f"{device} on {at.nodes} node(s), sharding {job.attribution.sharding}"),
        ("training state", f"{gib(size.bytes)} ({gib(size.parameter_bytes)} parameters + "
                           f"{gib(size.moment_bytes)} optimizer moments); {gib(size.bytes_per_rank)}"
                           f" per {per}"),
        ("kept states", f"{plan.schedule} (asked {job.attribution.kept_states}); states: "
                        f"{_tiers(plan.placed.states)}; gradients: {_tiers(plan.placed.gradients)}"),
        ("budgets per rank", f"device {gib(plan.budgets['device'])}, host "
                             f"{gib(plan.budgets['host'])}"
                             + (" (CPU: 128 MiB or half the rank's share of the memory)" if at.gpu is None
                                and job.attribution.device_memory == "auto"
                                and plan.budgets["device"] == CPU_MEMORY_BUDGET else "")),
        ("backward replays", f"{plan.replayed.replayed_steps} steps, "
                             f"{plan.replayed.replayed_updates} updates; "
                             f"{plan.replayed.states_in_memory} states held at once"),
        ("disk", _disk(plan)),
        (f"peak memory per {'GPU' if at.gpu else 'rank'}",
         f"training {gib(plan.training.bytes)}, backward {gib(plan.backward.bytes)}"
         + (f" (of {gib(at.gpu_memory)})" if at.gpu and at.gpu_memory else "")),
    ]
    if plan.seconds is not None and plan.rate is not None:
        mark = " (assumed speed)" if plan.rate.assumed else ""
        rows.append(("time", f"training {duration(plan.seconds['train'])}, backward "
                             f"{duration(plan.seconds['backward'])}{mark}"))
    return columns(rows)

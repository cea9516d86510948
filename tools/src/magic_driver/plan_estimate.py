"""A job's plan: sizes, schedule, tiers, memory and time, as numbers (`magic plan`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from magic_core import ConfigError, get_optimizer, resolve_precision
from magic_core.batch_stream import check_rows_per_rank
from magic_core.keep_schedule import resolve_schedule

from . import plan_memory as pm
from . import plan_model as model_sizes
from . import plan_time as pt
from .jobs import AttributeJob
from .plan_job import Corpus, Where, budgets, corpus_rows, rows_per_rank
from .plan_schedule import Placement, Replay, place, replay

# Between the nodes of a job (assumed): one 200 Gb/s NIC per GPU, as on GH200 and
# H100 clusters (Slingshot 11, InfiniBand NDR).
INTER_NODE_BYTES_PER_SECOND = 25e9


@lru_cache(maxsize=4)
def _model(path: str, precision: str):
    config = model_sizes.load_config(path)
    model = model_sizes.meta_model(config, resolve_precision(precision))
    return model, model_sizes.model_shape(config, model)


@dataclass(frozen=True)
class Plan:
    job: AttributeJob
    where: Where
    shape: model_sizes.ModelShape
    corpus: Corpus
    steps: int
    size: model_sizes.StateSize
    budgets: dict[str, int]
    schedule: str
    placed: Placement
    replayed: Replay
    training: pm.Peak
    backward: pm.Peak
    seconds: dict[str, float] | None
    rate: pt.Rate | None
    flops_per_step: float
    spill_bytes_per_rank: int
    checkpoint_bytes: int  # the checkpoint folder at its largest, spill files it lists excluded

    @property
    def durable_ranks(self) -> int:
        """The ranks whose spills are kept for checkpoints (`magic_core.phases`): rank 0 of an
        unsharded run (the others' states are its), every rank of a sharded one."""
        return self.where.ranks if self.sharded else 1

    @property
    def durable_spill_bytes(self) -> int:
        """The spills kept for checkpoints, all ranks together: in the run directory's
        ``kept-states`` (in ``attribution.spill_dir`` when set)."""
        return self.spill_bytes_per_rank * self.durable_ranks

    @property
    def output_disk_bytes(self) -> int:
        """What the output directory's disk takes: checkpoints, and the durable spills there."""
        spilled_there = self.job.attribution.spill_dir is None
        return self.checkpoint_bytes + (self.durable_spill_bytes if spilled_there else 0)

    @property
    def spill_disk_bytes_per_node(self) -> int:
        """What the spill folder's disk takes on the busiest node (node 0)."""
        ranks = self.where.ranks_per_node
        if self.job.attribution.spill_dir is None:
            ranks -= min(ranks, self.durable_ranks)  # node 0's durable spills: in the run dir
        return self.spill_bytes_per_rank * ranks

    @property
    def sharded(self) -> bool:
        return self.job.attribution.sharding == "fsdp"

    @property
    def peak(self) -> int:
        return max(self.training.bytes, self.backward.bytes)


def _check_positions(job: AttributeJob, shape: model_sizes.ModelShape) -> None:
    # The refusal of `models.check_max_seq_len`, from the config already read.
    limit, key = shape.positions, "train.max_seq_len"
    if limit is not None and job.train.max_seq_len > limit:
        raise ConfigError(f"{key}={job.train.max_seq_len} but model {job.model.path!r} reads at "
                          f"most {limit} tokens (max_position_embeddings); set {key} to {limit} "
                          "or less")


def _traffic(size: model_sizes.StateSize, at: Where, sharded: bool) -> float:
    """Bytes a rank sends per training step: a ring all-reduce of the gradient (data
    parallel), or an all-gather of the parameters and a reduce-scatter of the gradient
    (fsdp); each moves (W - 1) / W of the tensor per rank and direction."""
    if at.ranks == 1:
        return 0.0
    share = (at.ranks - 1) / at.ranks
    return 2 * share * (size.parameter_bytes if sharded else size.gradient_bytes)


def _checkpoint_bytes(size: model_sizes.StateSize, placed: Placement, replayed: Replay,
                      at: Where, sharded: bool, weight_bytes: int) -> int:
    """The most a run's checkpoint folder holds (`magic_core.phase_checkpoint`, FORMAT 5),
    all ranks together, the durable spills it lists excluded (counted as spill).

    Spilled kept states are listed by reference (rank 0's of an unsharded run,
    every rank's of a sharded one); what lives in memory only (kept states, kept
    gradients, the query gradient, replayed states) is written once and listed
    again; the current state and each rank's cotangents are rewritten, the new file
    beside the old until it replaces it. Sharded, each rank does this for its own
    shards; unsharded, the states are written once for all ranks.
    """
    state = size.spill_file_bytes_per_rank  # a state's file: tensors, counters, RNG, header
    gradient = size.gradient_bytes_per_rank + model_sizes.SPILL_FILE_OVERHEAD
    query = size.parameter_bytes_per_rank + model_sizes.SPILL_FILE_OVERHEAD
    cotangents = size.bytes_per_rank + weight_bytes  # a rank's: its share, its weights' gradient
    # The backward's: stack states and gradients in memory (and on disk) after a step.
    stacks = replayed.after_steps or ((0, 0, 0, 0),)
    in_memory = ((placed.states["device"] + placed.states["host"]) * state
                 + (placed.gradients["device"] + placed.gradients["host"]) * gradient)
    after_query = in_memory + query + 2 * state
    stack = max(s_mem * state + g_mem * gradient for s_mem, _, g_mem, _ in stacks)
    if sharded:
        return at.ranks * max(after_query, stack + 2 * cotangents)
    return max(after_query, stack + 2 * at.ranks * cotangents)


def estimate(job: AttributeJob, at: Where) -> Plan:
    """Every number of the plan; refuses (ConfigError) what `magic attribute` would refuse."""
    model, shape = _model(job.model.path, job.train.precision)
    _check_positions(job, shape)
    sharded = job.attribution.sharding == "fsdp"
    if sharded:
        model_sizes.check_shardable(model)
    corpus = corpus_rows(job)
    rows = corpus.rows * job.train.epochs
    check_rows_per_rank(rows, job.train.batch_size, at.ranks)
    steps = model_sizes.steps_of(corpus.rows, job.train.batch_size, job.train.epochs)
    size = model_sizes.state_size(model, job.train, steps, at.ranks if sharded else 1)
    room = budgets(job, at)
    schedule = resolve_schedule(job.attribution.kept_states, steps, size.bytes_per_rank, room,
                                job.attribution.spill_dir, gradients_apply=not sharded)
    placed = place(steps, schedule, size.bytes_per_rank, size.gradient_bytes_per_rank, room)
    replayed = replay(steps, schedule, placed)
    dtype_bytes = 8 if job.train.precision == "fp64" else 4
    step = pm.Step(rows_per_rank(job.train.batch_size, at.ranks), job.train.max_seq_len,
                   dtype_bytes)
    cpu = at.gpu is None
    weight_count = corpus.rows * (job.train.max_seq_len
                                  if job.attribution.granularity == "per-token" else 1)
    exact = get_optimizer(job.train.optimizer).exact_update is not None
    training = pm.training_peak(shape, size, step, placed, schedule, sharded=sharded,
                                exact_update=exact, cpu=cpu)
    backward = pm.backward_peak(shape, size, step, placed, replayed, sharded=sharded, cpu=cpu,
                                weights=weight_count * dtype_bytes)
    flops = model_sizes.flops_per_token(shape, step.seq) * step.rows * step.seq
    rate = pt.cpu_rate(at.ranks_per_node) if cpu else pt.gpu_rate(at.gpu or "",
                                                                  job.train.precision)
    seconds = None
    if rate is not None:
        if at.nodes > 1:
            rate = _between_nodes(rate)
        seconds = pt.estimate(pt.Work(
            flops_per_step=flops, layers=shape.layers, traffic_per_step=_traffic(size, at, sharded),
            steps=steps, replayed_steps=replayed.replayed_steps,
            replayed_updates=replayed.replayed_updates, state_bytes=size.bytes_per_rank), rate)
    gradient_file = size.gradient_bytes_per_rank + model_sizes.SPILL_FILE_OVERHEAD
    spill = (placed.states["disk"] * size.spill_file_bytes_per_rank
             + placed.gradients["disk"] * gradient_file)
    # States the backward's replays spill beyond what training left on disk.
    more = max(0, replayed.tier_bytes["disk"] - placed.bytes["disk"]) // max(1, size.bytes_per_rank)
    spill += more * size.spill_file_bytes_per_rank
    return Plan(job, at, shape, corpus, steps, size, room, schedule, placed, replayed, training,
                backward, seconds, rate, flops, spill,
                _checkpoint_bytes(size, placed, replayed, at, sharded, weight_count * dtype_bytes))


def _between_nodes(rate: pt.Rate) -> pt.Rate:
    from dataclasses import replace

    return replace(rate, link_bytes_per_second=min(rate.link_bytes_per_second,
                                                   INTER_NODE_BYTES_PER_SECOND))

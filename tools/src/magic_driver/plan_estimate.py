"""A job's plan: sizes, schedule, tiers, memory and time, as numbers (`magic plan`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from magic_core import ConfigError, get_optimizer, resolve_precision
from magic_core.batch_stream import check_rows_per_rank
from magic_core.keep_schedule import kept_in_training, resolve_schedule

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
    checkpoint_bytes: int

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


def _checkpoint_bytes(size: model_sizes.StateSize, kept: int, placed: Placement, at: Where,
                      sharded: bool) -> int:
    """The largest phase checkpoint (`magic_core.phases.snapshot`), whole run: after the
    query, every kept state, the trained state, the kept gradients and the query gradient;
    in the backward, the kept states and every rank's cotangents (a data-parallel rank
    holds a share of whole cotangents; a sharded one its shard)."""
    gradients = sum(placed.gradients.values()) * size.gradient_bytes
    after_query = (kept + 1) * size.bytes + gradients + size.parameter_bytes
    cotangents = size.bytes * (1 if sharded else at.ranks)
    return max(after_query, kept * size.bytes + gradients + cotangents)


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
    replayed = replay(steps, schedule, placed.tier_of_state)
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
    rate = pt.CPU if cpu else pt.gpu_rate(at.gpu or "", job.train.precision)
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
    kept = len(kept_in_training(steps, schedule))
    return Plan(job, at, shape, corpus, steps, size, room, schedule, placed, replayed, training,
                backward, seconds, rate, flops, spill,
                _checkpoint_bytes(size, kept, placed, at, sharded))


def _between_nodes(rate: pt.Rate) -> pt.Rate:
    from dataclasses import replace

    return replace(rate, link_bytes_per_second=min(rate.link_bytes_per_second,
                                                   INTER_NODE_BYTES_PER_SECOND))

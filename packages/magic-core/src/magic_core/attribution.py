"""`attribute`: the whole attribution of one fine-tuning run, as a function."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .attention import use_exact_attention
from .batch_stream import BatchStream
from .config import AttributionConfig, TrainConfig
from .corpus import TokenizedCorpus, tokenize_corpus
from .engine import MagicEngine
from .model_prep import check_loss_uses_weights, install_weighted_loss, share_tied_parameters
from .objectives import QueryObjective
from .optim import build_optimizer, exact_update
from .phases import fingerprint, run_phases
from .precision import resolve_precision
from .run_control import RunControl
from .sharding import check_can_shard, shard_model


@dataclass
class AttributionResult:
    """Scores are d(query)/d(weight): negative means training on it lowers the query."""

    per_example: torch.Tensor  # [N]
    per_token: torch.Tensor | None  # [N, T]; column t weights the prediction of token t + 1
    corpus: TokenizedCorpus
    n_steps: int
    replayed_steps: int
    train_losses: list[float]
    query_before: float
    query_after: float
    tied_parameters: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    schedule: str = ""  # the kept-state schedule used ("auto" resolved)
    kept_states: dict = field(default_factory=dict)  # how many states each tier held
    kept_gradients: dict = field(default_factory=dict)  # the same for the ``gradients`` schedule
    replayed_updates: int = 0  # updates applied again from kept gradients (no recomputation)
    peak_memory: dict = field(default_factory=dict)  # bytes per phase (GPU allocated, or resident)
    # Which document (token row of `corpus`) each step trained on, one entry per row of every
    # batch in order: {"step": [...], "epoch": [...], "document": [...]} (see `BatchStream`).
    training_order: dict[str, list[int]] = field(default_factory=dict)


def _query_value(objective: QueryObjective, model: nn.Module, state) -> float:
    with torch.no_grad(), state.activate(model):
        return float(objective.loss(model))


def attribute(
    model: nn.Module,
    tokenizer,
    corpus,
    objective: QueryObjective,
    train: TrainConfig = TrainConfig(),
    attribution: AttributionConfig = AttributionConfig(),
    *,
    device: str | torch.device = "cpu",
    text_column: str = "text",
    progress: bool = True,
    control: RunControl | None = None,
) -> AttributionResult:
    """Fine-tune ``model`` on ``corpus`` and attribute ``objective`` to its documents.

    ``corpus`` is a `datasets.Dataset` (``id``, ``text`` columns) or an
    already tokenized `TokenizedCorpus`. The model is consumed: its trainable
    parameters move into the engine's state (the model keeps meta-device
    placeholders, see `training_step.take_state`), so load a fresh copy for
    anything else.

    With a ``control`` (checkpoint store and progress file) the run stops with
    `Preempted` after the step during which a stop was requested, having saved
    a phase checkpoint, and a run that finds a checkpoint of the same job
    continues from it: its scores equal those of an uninterrupted run.
    """
    dtype = resolve_precision(train.precision)
    device = torch.device(device)
    sharded = attribution.sharding == "fsdp"
    if sharded:
        check_can_shard(model, device)
    # Sharded, only the shards ever reach the device (see `shard_model`).
    model.to(device=None if sharded else device, dtype=dtype)
    model.eval()  # dropout off: replayed steps must equal the original ones
    use_exact_attention(model)
    if not isinstance(corpus, TokenizedCorpus):
        corpus = tokenize_corpus(corpus, tokenizer, train.max_seq_len, text_column)
    tied = share_tied_parameters(model)
    install_weighted_loss(model)
    if sharded:
        shard_model(model, device)
    per_token = attribution.granularity == "per-token"
    stream = BatchStream(
        corpus.input_ids, batch_size=train.batch_size, epochs=train.epochs,
        shuffle=train.shuffle, seed=train.seed, per_token=per_token, dtype=dtype, device=device,
    )
    check_loss_uses_weights(model, stream[0])
    torch.manual_seed(train.seed)
    run = MagicEngine(
        model, stream, build_optimizer(train, len(stream)),
        kept_states=attribution.kept_states, max_grad_norm=train.max_grad_norm,
        show_progress=progress, device_budget=attribution.budget("device_memory"),
        host_budget=attribution.budget("host_memory"), spill_dir=attribution.spill_dir,
        adam=exact_update(train, len(stream)),
    )
    query_before = _query_value(objective, model, run.initial_state)
    if control is not None:
        control.store.fingerprint.update(
            fingerprint(run, corpus, objective, train, attribution, dtype, device))
    weight_grads = run_phases(run, objective, control, device)
    assert run.query_value is not None  # taken by every finished run
    return AttributionResult(
        per_example=weight_grads.sum(-1) if per_token else weight_grads,
        per_token=weight_grads if per_token else None,
        corpus=corpus,
        n_steps=run.n_steps,
        replayed_steps=run.replayed_steps,
        train_losses=run.losses,
        query_before=query_before,
        query_after=run.query_value,
        tied_parameters=tied,
        timings=dict(run.timings.seconds),
        schedule=run.keep_schedule,
        kept_states=run.kept.summary(),
        kept_gradients=run.gradients.summary(),
        replayed_updates=run.replayed_updates,
        peak_memory=dict(run.memory.peaks),
        training_order=stream.training_order(),
    )

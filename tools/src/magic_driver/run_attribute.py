"""`magic attribute`: one configured attribution run into one run directory."""

from __future__ import annotations

import time
from pathlib import Path

import magic_core as mc
import magic_datasets as md
import torch
import torch.distributed as dist
from magic_core.corpus import corpus_from_rows
from magic_core.distributed import Launch, init_from_environment, shutdown
from magic_core.outputs import (
    build_manifest,
    corpus_columns,
    document_table,
    write_documents,
    write_manifest,
    write_scores,
    write_sources,
    write_training_order,
)
from magic_core.preemption import handle_signals
from magic_core.report import write_report
from magic_core.run_control import RunControl
from magic_core.sharding import check_sharding_launch
from magic_core.typed_config import to_mapping

from .data_checks import check_corpus_kind
from .jobs import AttributeJob, QuerySection, QuerySpec, check_query_kind, objective_options
from .models import check_max_seq_len, load_model_and_tokenizer, load_tokenizer
from .resumable import resumable_run
from .run_lock import run_dir_lock
from .run_output import plan_output
from .token_coverage import check_token_coverage, pretrain_suggestion, text_rows


def resolve_device(name: str, launch: Launch | None = None) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise mc.ConfigError(f"device {name!r} requested but no CUDA GPU is visible; use device: cpu")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise mc.ConfigError(f"device {name!r} requested but only {torch.cuda.device_count()} "
                             f"CUDA GPU(s) are visible; use cuda:0 to cuda:"
                             f"{torch.cuda.device_count() - 1}, or auto")
    if name.startswith("mps") and not torch.backends.mps.is_available():
        raise mc.ConfigError(f"device {name!r} requested but MPS is not available here; use "
                             "device: cpu or auto")
    if name in ("auto", "cuda") and launch is not None and launch.world_size > 1:
        return launch.device()  # one GPU per rank: cuda:LOCAL_RANK
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _rank_zero_first(launch: Launch, load):
    """Rank 0 fills the on-disk caches (datasets, tokenized rows, base model) first,
    so that concurrent ranks never race to write them."""
    if launch.world_size == 1:
        return load()
    if launch.is_main:
        value = load()
        dist.barrier()
    else:
        dist.barrier()
        value = load()
    return value


def load_corpus(job: AttributeJob):
    check_corpus_kind(job.data.dataset, "data")
    dataset = md.load(job.data.dataset, **job.data.options)
    if job.data.n_docs is not None:
        if job.data.n_docs > len(dataset):
            raise mc.ConfigError(
                f"data.n_docs={job.data.n_docs} but dataset {job.data.dataset!r} has only "
                f"{len(dataset)} rows; lower data.n_docs or choose a larger selection"
            )
        dataset = dataset.select(range(job.data.n_docs))
    return dataset


def corpus_rows(job: AttributeJob, corpus, tokenizer) -> tuple[mc.TokenizedCorpus, list[int]]:
    """The corpus's token rows, through magic-datasets' on-disk cache (truncated or
    chunked), and the document index of each row."""
    rows = md.tokenize(corpus, tokenizer, job.train.max_seq_len, mode=job.data.long_documents,
                       text_column=job.data.text_column)
    return corpus_from_rows(rows, job.train.max_seq_len), list(rows["doc_index"])


def load_query_rows(spec: QuerySpec | QuerySection, key: str = "query"):
    """The query's rows (a tuple of its parts' for a composite objective), checked against
    its objective before any model is built."""
    objective = mc.get_objective(spec.objective)
    if objective.composite:
        return tuple(load_query_rows(getattr(spec, part), f"{key}.{part}")
                     for part in objective.parts)
    check_query_kind(spec, md.get(spec.dataset).kind.value, key)
    rows = md.load(spec.dataset, **spec.options)
    if spec.limit is not None:
        rows = rows.select(range(min(spec.limit, len(rows))))
    options = objective_options(spec)
    for option in objective.column_options:
        if options[option] not in rows.column_names:
            raise mc.ConfigError(f"{key}.{option} {options[option]!r} is not a column of "
                                 f"{spec.dataset!r} ({rows.column_names})")
    return rows


def query_texts(spec: QuerySpec | QuerySection, rows) -> list[tuple[str, list[str]]]:
    """``(dataset, texts)`` for every query dataset: the texts its objective tokenizes."""
    objective = mc.get_objective(spec.objective)
    if objective.composite:
        return [texts for part, part_rows in zip(objective.parts, rows)
                for texts in query_texts(getattr(spec, part), part_rows)]
    return [(spec.dataset, objective.query_texts(rows, objective_options(spec)))]


def check_readable(job: AttributeJob, tokenized: mc.TokenizedCorpus, query_rows,
                   tokenizer) -> None:
    """Refuse a corpus or query that the model's tokenizer reads as unknown tokens."""
    fix = pretrain_suggestion(job.data.dataset, job.data.options)
    check_token_coverage(f"corpus {job.data.dataset!r}", tokenized.input_ids, tokenizer,
                         job.model.path, fix)
    for dataset, texts in query_texts(job.query, query_rows):
        check_token_coverage(f"query {dataset!r}", text_rows(texts, tokenizer), tokenizer,
                             job.model.path, fix)


def build_objective(spec: QuerySpec | QuerySection, rows, tokenizer, max_len: int):
    """The query's objective, built by its registered spec (parts first, for a composite)."""
    objective = mc.get_objective(spec.objective)
    parts = tuple(build_objective(getattr(spec, part), part_rows, tokenizer, max_len)
                  for part, part_rows in zip(objective.parts, rows)) if objective.composite else ()
    return objective.build(mc.ObjectiveInput(
        name=spec.dataset, rows=None if objective.composite else rows,
        options=objective_options(spec), tokenizer=tokenizer, max_len=max_len, parts=parts))


def run_attribute(job: AttributeJob, out_dir: Path | None = None, progress: bool = True,
                  restart: bool = False) -> dict:
    """Run ``job``; write its run directory; return the manifest.

    Under torchrun or srun every rank runs this; they share the work of each
    step and the query, and only rank 0 writes the run directory. SIGTERM or
    SIGUSR1 stop it after the current step with a checkpoint (`Preempted`);
    the same call on the same run directory resumes it (``restart``: start over).
    Another run in the same directory meanwhile is refused (`run_lock`).
    Finished results already there are replaced whole once the new ones are
    complete: this job's always, another job's only with ``restart`` (see
    `run_output`).
    """
    out_dir = Path(out_dir or job.output.dir)
    with handle_signals():
        joined_here = not dist.is_initialized()
        launch = init_from_environment()
        try:
            with run_dir_lock(out_dir, "magic attribute", launch):
                return _run_planned(job, out_dir, progress, restart, launch)
        finally:
            if joined_here:
                shutdown()


def _run_planned(job: AttributeJob, out_dir: Path, progress: bool, restart: bool,
                 launch: Launch) -> dict:
    plan = plan_output(out_dir, job, "attribute", restart=restart, is_main=launch.is_main)
    try:
        # magic-core fingerprints train and attribution as they act (memory
        # budgets resolved to a schedule), so that a requeue on other hardware resumes.
        with resumable_run(plan.work_dir, job, restart=restart, is_main=launch.is_main,
                           skip=("train", "attribution")) as control:
            manifest = _run(job, plan.work_dir, progress, launch, control)
            control.finished()
    except BaseException:
        if launch.is_main:
            plan.abandon()
        raise
    if launch.is_main:
        plan.commit()
    return manifest


def _run(job: AttributeJob, out_dir: Path, progress: bool, launch: Launch,
         control: RunControl | None = None) -> dict:
    t_start = time.perf_counter()
    device = resolve_device(job.device, launch)
    if job.attribution.sharding == "fsdp":
        check_sharding_launch(device)
    progress = progress and launch.is_main
    check_max_seq_len(job.model.path, job.train.max_seq_len, "train.max_seq_len")
    # Data mistakes are cheaper to report than a model load (or a base-model build).
    corpus = _rank_zero_first(launch, lambda: load_corpus(job))
    query_rows = load_query_rows(job.query)
    if not progress:
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    # Text the tokenizer cannot read, too: the tokenizer alone is cheap to load.
    tokenizer = _rank_zero_first(launch, lambda: load_tokenizer(job.model.path, job.model.tokenizer))
    tokenized, doc_index = _rank_zero_first(launch, lambda: corpus_rows(job, corpus, tokenizer))
    check_readable(job, tokenized, query_rows, tokenizer)
    # The model's own tokenizer has the same vocabulary (the rows stay valid).
    model, tokenizer, base_info = _rank_zero_first(
        launch, lambda: load_model_and_tokenizer(job.model.path, job.model.tokenizer, progress)
    )
    max_len = getattr(model.config, "max_position_embeddings", 2048)
    objective = build_objective(job.query, query_rows, tokenizer, max_len)
    t_setup = time.perf_counter() - t_start
    data_prints = {"dataset": md.dataset_fingerprint(corpus),
                   "tokenizer": md.tokenizer_fingerprint(tokenizer)}
    if control is not None:
        control.store.fingerprint.update(data_prints)
    result = mc.attribute(model, tokenizer, tokenized, objective, job.train, job.attribution,
                          device=device, text_column=job.data.text_column, progress=progress,
                          control=control)
    t_write = time.perf_counter()
    # id and text are in the table already (source_id, text_preview).
    extra = corpus_columns(corpus, doc_index, skip=("id", job.data.text_column))
    table = document_table(result, tokenizer, extra)
    timings = {"setup": t_setup, **result.timings}
    manifest = build_manifest(
        result,
        config=to_mapping(job),
        fingerprints={
            **data_prints,
            "documents": len(corpus),
            "token_rows": len(tokenized),
        },
        query=objective.summary(),
        timings=timings,
    )
    manifest["world_size"] = launch.world_size
    if not launch.is_main:
        timings["total"] = time.perf_counter() - t_start
        return manifest
    if base_info:
        manifest["base_model"] = {k: base_info[k] for k in ("forget_accuracy", "retain_accuracy", "parameters")}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_scores(out_dir, result)
    write_documents(out_dir, table)
    write_training_order(out_dir, result)
    # With chunking, each document's score is the sum of its chunks'.
    manifest["per_source_table"] = write_sources(out_dir, table)
    write_report(out_dir, table, result.per_example, result.per_token, manifest)
    timings["write"] = time.perf_counter() - t_write
    timings["total"] = time.perf_counter() - t_start
    write_manifest(out_dir, manifest)
    return manifest

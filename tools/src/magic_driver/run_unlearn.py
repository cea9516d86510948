"""`magic unlearn`: one configured unlearning run into one output directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import magic_datasets as md
import magic_unlearn as mu
from magic_core import ConfigError
from magic_core.preemption import handle_signals
from magic_core.typed_config import to_mapping

from .data_checks import (
    check_corpus_kind,
    check_questions_kind,
    check_relearn_docs,
    check_scores_source,
)
from .jobs import DataSection
from .models import fitted_max_seq_len, load_model_and_tokenizer, load_tokenizer
from .resumable import resumable_run
from .run_attribute import resolve_device
from .run_lock import run_dir_lock
from .run_output import plan_output
from .token_coverage import check_token_coverage, pretrain_suggestion, text_rows
from .unlearn_jobs import DEFAULT_MAX_SEQ_LEN, QuestionsSection, UnlearnJob


@dataclass
class Prepared:
    """What runs differing only in recipe or optimizer share (a sweep loads it once)."""

    model: object
    tokenizer: object
    data: mu.UnlearnData
    sets: mu.EvalSets
    before: dict


def _corpus(section: DataSection, role: str):
    check_corpus_kind(section.dataset, role)
    dataset = md.load(section.dataset, **section.options)
    if section.n_docs is not None:
        if section.n_docs > len(dataset):
            raise ConfigError(f"{role}.n_docs={section.n_docs} but {section.dataset!r} has only "
                              f"{len(dataset)} rows")
        dataset = dataset.select(range(section.n_docs))
    if section.text_column != "text":
        dataset = dataset.rename_column(section.text_column, "text")
    return dataset


def _questions(section: QuestionsSection, key: str):
    check_questions_kind(section.dataset, key)  # before its options are read
    rows = md.load(section.dataset, **section.options)
    return rows.select(range(min(section.limit, len(rows)))) if section.limit else rows


def check_readable(job: UnlearnJob, data: mu.UnlearnData, sets: mu.EvalSets, tokenizer) -> None:
    """Refuse forget, retain or evaluation text that the tokenizer reads as unknown tokens."""
    fix = pretrain_suggestion(job.forget.dataset, job.forget.options)
    parts = [(f"forget corpus {job.forget.dataset!r}", data.forget.input_ids),
             (f"retain corpus {job.retain.dataset!r}", data.retain.input_ids)]
    for section, questions in ((job.eval.hazard, sets.hazard), (job.eval.general, sets.general)):
        prompts = [md.format_prompt(r["question"], r["choices"]) for r in questions]
        parts.append((f"eval questions {section.dataset!r}", text_rows(prompts, tokenizer)))
    for what, rows in parts:
        check_token_coverage(what, rows, tokenizer, job.model.path, fix)


def shared_key(job: UnlearnJob) -> str:
    """Sections that decide `Prepared`; runs with equal keys can share it."""
    return repr((job.model, job.forget, job.retain, job.scores, job.eval, job.max_seq_len,
                 job.device))


def prepare(job: UnlearnJob, progress: bool = True) -> Prepared:
    device = resolve_device(job.device)
    # Data mistakes (text the tokenizer cannot read included) are cheaper to
    # report than a model load (or a base-model build).
    tokenizer = load_tokenizer(job.model.path, job.model.tokenizer)
    forget, retain = _corpus(job.forget, "forget"), _corpus(job.retain, "retain")
    check_relearn_docs(job.relearn.n_docs, job.relearn.enabled, job.forget.dataset, len(forget))
    for role, scores in (("forget", job.scores.forget), ("retain", job.scores.retain)):
        if scores is not None:
            check_scores_source(scores, role, forget, job.forget)
    max_seq_len = DEFAULT_MAX_SEQ_LEN  # with scores, prepare_data takes the scores run's
    if job.scores.forget is None:
        max_seq_len = fitted_max_seq_len(job.model.path, job.max_seq_len, "max_seq_len",
                                         DEFAULT_MAX_SEQ_LEN)
    data = mu.prepare_data(tokenizer, forget, retain, job.scores.forget, job.scores.retain,
                           max_seq_len)
    sets = mu.EvalSets(_questions(job.eval.hazard, "eval.hazard"),
                       _questions(job.eval.general, "eval.general"),
                       list(forget["text"]), list(retain["text"]))
    check_readable(job, data, sets, tokenizer)
    # The model's own tokenizer has the same vocabulary (the token rows stay valid).
    model, tokenizer, _ = load_model_and_tokenizer(job.model.path, job.model.tokenizer, progress)
    model.to(device)
    return Prepared(model, tokenizer, data, sets, mu.evaluate(model, tokenizer, sets))


def run_unlearn(job: UnlearnJob, out_dir: Path | None = None, progress: bool = True,
                prepared: Prepared | None = None, restart: bool = False) -> dict:
    """Run ``job``; write OUT/result.json (+ OUT/model); return the result record.

    SIGTERM or SIGUSR1 stop it after the current unlearning or relearning
    step with a checkpoint (`Preempted`); the same call resumes it
    (``restart``: start over); another run in OUT meanwhile is refused
    (`run_lock`). Finished results already in OUT are replaced
    whole once the new ones are complete: this job's always, another job's
    only with ``restart`` (see `run_output`).
    """
    # An unknown recipe or a bad option fails before any loading.
    mu.get_recipe(job.recipe.name).check_options(job.recipe.options)
    out_dir = Path(out_dir or job.output.dir)
    with run_dir_lock(out_dir, "magic unlearn"):
        return _run_planned(job, out_dir, progress, prepared, restart)


def _run_planned(job: UnlearnJob, out_dir: Path, progress: bool, prepared: Prepared | None,
                 restart: bool) -> dict:
    plan = plan_output(out_dir, job, "unlearn", restart=restart)
    try:
        with handle_signals(), resumable_run(plan.work_dir, job, restart=restart) as control:
            prepared = prepared or prepare(job, progress)
            result = mu.run_recipe(
                prepared.model, prepared.tokenizer, prepared.data, prepared.sets, job.recipe.name,
                job.recipe.options, job.optim.resolve(), job.relearn, out_dir=plan.work_dir,
                before=prepared.before, save_model=job.output.save_model,
                extra={"config": to_mapping(job)}, control=control, final_dir=out_dir,
            )
            mu.write_table(plan.work_dir, [mu.flat_row(result)], prepared.before)
            control.finished()
    except BaseException:
        plan.abandon()
        raise
    plan.commit()
    return result

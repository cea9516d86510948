"""Assembling `UnlearnData`: tokenised corpora plus scores checked against them."""

from __future__ import annotations

from pathlib import Path

from magic_core import tokenize_corpus

from .errors import UnlearnError
from .scores import check_scores, load_scores
from .spec import UnlearnData


def prepare_data(tokenizer, forget, retain, forget_scores: str | Path | None = None,
                 retain_scores: str | Path | None = None, max_seq_len: int = 128) -> UnlearnData:
    """``forget``/``retain`` are datasets with a ``text`` column.

    With scores, the forget corpus is tokenised exactly as its attribution run
    tokenised it (same ``max_seq_len``), so score columns line up with tokens.
    """
    runs = [load_scores(p) if p is not None else None for p in (forget_scores, retain_scores)]
    if runs[0] is None and runs[1] is not None:
        raise UnlearnError("scores.retain is given without scores.forget")
    if runs[0] is not None:
        max_seq_len = runs[0].max_seq_len
    forget_corpus = tokenize_corpus(forget, tokenizer, max_seq_len)
    for run in runs:
        if run is not None:
            check_scores(run, forget, tokenizer, forget_corpus)
    return UnlearnData(forget_corpus, tokenize_corpus(retain, tokenizer, max_seq_len), *runs)

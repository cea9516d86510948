"""Turning a training corpus into token rows the engine can weight and replay.

Tokenizing is magic-datasets' (`magic_datasets.tokenize`, the one path for every
corpus: truncated or chunked, cached on disk); this module packs its rows into the
`TokenizedCorpus` the engine trains on and scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
from magic_datasets import DatasetError, tokenize

from .errors import ConfigError


@dataclass
class TokenizedCorpus:
    """One row per document (or document chunk): token ids (EOS appended, truncated),
    and where it came from.

    ``input_ids[i]`` is row ``i`` of the corpus; scores are indexed the same way.
    """

    input_ids: list[list[int]]
    source_ids: list[str]
    texts: list[str]
    truncated: int
    max_seq_len: int

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def longest(self) -> int:
        return max(len(r) for r in self.input_ids)


def tokenize_corpus(
    dataset: datasets.Dataset, tokenizer, max_seq_len: int, text_column: str = "text", *,
    mode: str = "truncate", cache: bool = False,
) -> TokenizedCorpus:
    """Tokenize every document, append EOS, truncate to ``max_seq_len`` tokens
    (``mode="chunk"``: cut into ``max_seq_len`` pieces instead).

    The tokenizing itself is `magic_datasets.tokenize` (the only tokenizer path,
    with its on-disk cache when ``cache``); this packs its rows for the engine.
    Documents that tokenize to fewer than two tokens cannot teach anything
    (no next token to predict) and are refused rather than silently scored zero.
    """
    try:
        rows = tokenize(dataset, tokenizer, max_seq_len, mode=mode, text_column=text_column,
                        cache=cache)
    except DatasetError as exc:  # core's callers expect its own error type
        raise ConfigError(str(exc)) from None
    return corpus_from_rows(rows, max_seq_len)


def corpus_from_rows(rows: datasets.Dataset, max_seq_len: int) -> TokenizedCorpus:
    """The engine's view of `magic_datasets.tokenize` rows (their ``doc_index`` is left out)."""
    return TokenizedCorpus(
        input_ids=[list(r) for r in rows["input_ids"]], source_ids=list(rows["source_id"]),
        texts=list(rows["text"]), truncated=sum(rows["truncated"]), max_seq_len=max_seq_len,
    )

"""Turning a training corpus into token rows the engine can weight and replay."""

from __future__ import annotations

from dataclasses import dataclass

import datasets

from .errors import ConfigError


@dataclass
class TokenizedCorpus:
    """One row per document: token ids (EOS appended, truncated), and where it came from.

    ``rows[i]`` is document ``i`` of the corpus; scores are indexed the same way.
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
    dataset: datasets.Dataset, tokenizer, max_seq_len: int, text_column: str = "text"
) -> TokenizedCorpus:
    """Tokenize every document, append EOS, truncate to ``max_seq_len`` tokens.

    Documents that tokenize to fewer than two tokens cannot teach anything
    (no next token to predict) and are refused rather than silently scored zero.
    """
    if text_column not in dataset.column_names:
        raise ConfigError(
            f"corpus has no column {text_column!r}; it has {dataset.column_names}"
        )
    if tokenizer.eos_token_id is None:
        raise ConfigError("the tokenizer has no EOS token; set tokenizer.eos_token")
    texts = list(dataset[text_column])
    ids = [
        list(r) + [tokenizer.eos_token_id]
        for r in tokenizer(texts, add_special_tokens=False)["input_ids"]
    ]
    truncated = sum(len(r) > max_seq_len for r in ids)
    ids = [r[:max_seq_len] for r in ids]
    short = [i for i, r in enumerate(ids) if len(r) < 2]
    if short:
        raise ConfigError(
            f"document {short[0]} of the corpus has fewer than 2 tokens; filter empty texts out"
        )
    source_ids = (
        [str(x) for x in dataset["id"]] if "id" in dataset.column_names else [str(i) for i in range(len(texts))]
    )
    return TokenizedCorpus(ids, source_ids, texts, truncated, max_seq_len)

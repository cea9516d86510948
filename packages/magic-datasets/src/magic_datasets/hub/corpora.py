"""Training corpora on the hub: WikiText-103, the WMDP bio corpora, UltraChat, lie-o.

Every corpus loads one split, checks its schema, gives each row an id (its
index in the split), makes ``text``, drops texts of ``min_chars`` or fewer
characters (the seed kept those over 100) and applies the selection.
"""

from __future__ import annotations

from collections.abc import Callable

import datasets

from .selection import SELECTION_OPTIONS, keep_longer_than, select_rows
from .source import HubSource, load_source
from .text import JOINED, add_ids, chat_texts, require_columns

CORPUS_OPTIONS = {"data_dir": None, "revision": None, "min_chars": 100, **SELECTION_OPTIONS}
CHAT_OPTIONS = {"text_format": JOINED, "tokenizer": None}

WIKITEXT = HubSource("Salesforce/wikitext", "wikitext-103-v1", "train")
BIO_FORGET = HubSource(
    "cais/wmdp-bio-forget-corpus", None, "train", gated=True,
    access_url="https://huggingface.co/datasets/cais/wmdp-bio-forget-corpus",
)
BIO_RETAIN = HubSource("cais/wmdp-corpora", "bio-retain-corpus", "train")
ULTRACHAT = HubSource("HuggingFaceH4/ultrachat_200k", None, "train_sft")
LIE_O = HubSource("Unlearning/wmdp-lie-o-deep-fried", None, "train")


def corpus_loader(name: str, source: HubSource, columns: tuple[str, ...] = ("text",),
                  make_text: Callable[..., datasets.Dataset] | None = None):
    """A loader for ``source``; ``make_text(dataset, **extra)`` adds ``text`` if the
    source has none (extra options are those ``corpus_loader`` does not know)."""

    def load(data_dir=None, revision=None, min_chars=100, n=None, select="first", seed=0,
             window_start=0.25, **extra) -> datasets.Dataset:
        src = source if revision is None else HubSource(**{**source.__dict__, "revision": revision})
        rows = load_source(src, data_dir)
        require_columns(rows, src, columns)
        rows = add_ids(rows, f"{name}-")
        if make_text is not None:
            rows = make_text(rows, name=name, **extra)
        rows = keep_longer_than(rows, min_chars)
        return select_rows(rows, name, n, select, seed, window_start,
                           after=f"after keeping texts over {min_chars} characters")

    return load


def ultrachat_text(rows: datasets.Dataset, name: str, text_format: str = JOINED,
                   tokenizer: str | None = None) -> datasets.Dataset:
    return chat_texts(rows, text_format, tokenizer, name)

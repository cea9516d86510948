"""Content fingerprints, so a run can prove which data and tokenizer it used."""

from __future__ import annotations

import hashlib
import json

import datasets


def dataset_fingerprint(dataset: datasets.Dataset) -> str:
    """A stable hash of a dataset's columns and rows (order matters).

    Unlike ``Dataset._fingerprint`` it depends only on content, so two
    processes that built the same rows agree.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(sorted(dataset.column_names)).encode())
    for batch in dataset.iter(batch_size=1024):
        digest.update(json.dumps(batch, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def tokenizer_fingerprint(tokenizer) -> str:
    """A stable hash of a Hugging Face tokenizer's vocabulary and special tokens."""
    digest = hashlib.sha256()
    digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    digest.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True).encode())
    return digest.hexdigest()[:16]

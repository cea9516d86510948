"""Token rows for training: truncated documents or document chunks, cached on disk.

This is the project's one tokenizer path for corpora: ``magic_core.tokenize_corpus``
packs these rows for the engine, and the driver caches them through here.

``mode="truncate"`` gives one row per document (EOS appended, cut to
``max_seq_len``).
``mode="chunk"`` cuts each document's tokens (EOS appended) into
``max_seq_len`` pieces, so long documents are trained on whole. Chunks never
span two documents: every row keeps its document's ``source_id`` and
``doc_index``, and per-chunk scores sum back to per-document scores.

Results are saved under ``$MAGIC_CACHE/tokenized/<key>`` where the key hashes
the rows' content (so it covers the selection), the tokenizer, the mode and
the length; a rerun with the same inputs reads them back.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import datasets

from .errors import DatasetError
from .fingerprint import dataset_fingerprint, tokenizer_fingerprint

TRUNCATE, CHUNK = "truncate", "chunk"
MODES = (TRUNCATE, CHUNK)
TOKENIZE_MODES = MODES  # the name the package exports
FORMAT_VERSION = 1  # bump when the rows this module writes change


def cache_root() -> Path:
    return Path(os.environ.get("MAGIC_CACHE", Path.home() / ".cache" / "magic-unlearn"))


def _pieces(ids: list[int], max_seq_len: int, mode: str) -> list[list[int]]:
    if mode == TRUNCATE:
        return [ids[:max_seq_len]]
    pieces = [ids[i:i + max_seq_len] for i in range(0, len(ids), max_seq_len)]
    # A last piece of one token (often the bare EOS) has nothing to predict.
    if len(pieces) > 1 and len(pieces[-1]) < 2:
        pieces.pop()
    return pieces


def _build(dataset: datasets.Dataset, tokenizer, max_seq_len: int, mode: str,
           text_column: str) -> datasets.Dataset:
    texts = list(dataset[text_column])
    doc_ids = ([str(x) for x in dataset["id"]] if "id" in dataset.column_names
               else [str(i) for i in range(len(texts))])
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    rows: dict[str, list[Any]] = {k: [] for k in ("id", "source_id", "doc_index", "chunk",
                                                  "input_ids", "text", "truncated")}
    for doc, (doc_id, text, ids) in enumerate(zip(doc_ids, texts, encoded)):
        ids = list(ids) + [tokenizer.eos_token_id]
        pieces = _pieces(ids, max_seq_len, mode)
        if len(pieces[0]) < 2:
            raise DatasetError(f"document {doc} ({doc_id}) has fewer than 2 tokens; filter "
                               "empty texts out (hub corpora: raise min_chars)")
        for k, piece in enumerate(pieces):
            rows["id"].append(doc_id if mode == TRUNCATE else f"{doc_id}#{k}")
            rows["source_id"].append(doc_id)
            rows["doc_index"].append(doc)
            rows["chunk"].append(k)
            rows["input_ids"].append(piece)
            rows["text"].append(text if mode == TRUNCATE
                                else tokenizer.decode(piece, skip_special_tokens=True))
            rows["truncated"].append(mode == TRUNCATE and len(ids) > max_seq_len)
    return datasets.Dataset.from_dict(rows)


def tokenize(dataset: datasets.Dataset, tokenizer, max_seq_len: int, mode: str = TRUNCATE,
             text_column: str = "text", cache: bool = True) -> datasets.Dataset:
    """Token rows of ``dataset``: columns ``id`` (document id, ``#k`` per chunk),
    ``source_id`` (document id), ``doc_index``, ``chunk``, ``input_ids``, ``text``
    (the document, or the decoded chunk) and ``truncated``."""
    if mode not in MODES:
        raise DatasetError(f"tokenization mode must be one of {', '.join(MODES)}, got {mode!r}")
    if max_seq_len < 2:
        raise DatasetError(f"max_seq_len must be >= 2, got {max_seq_len}")
    if text_column not in dataset.column_names:
        raise DatasetError(f"corpus has no column {text_column!r} (it has "
                           f"{dataset.column_names}); set data.text_column")
    if tokenizer.eos_token_id is None:
        raise DatasetError("the tokenizer has no EOS token; set tokenizer.eos_token")
    if not cache:
        return _build(dataset, tokenizer, max_seq_len, mode, text_column)
    key = hashlib.sha256(json.dumps({
        "data": dataset_fingerprint(dataset), "tokenizer": tokenizer_fingerprint(tokenizer),
        "max_seq_len": max_seq_len, "mode": mode, "text_column": text_column,
        "format": FORMAT_VERSION,
    }, sort_keys=True).encode()).hexdigest()[:16]
    target = cache_root() / "tokenized" / key
    if (target / "dataset_info.json").exists():
        return datasets.load_from_disk(str(target))
    rows = _build(dataset, tokenizer, max_seq_len, mode, text_column)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a crashed run never leaves a
    # half-written entry that a rerun would trust.
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{key}-"))
    rows.save_to_disk(str(tmp))
    try:
        tmp.rename(target)
    except OSError:  # another process finished first; its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return datasets.load_from_disk(str(target))

"""Tiny local copies of the hub datasets, in each repository's real layout and schema.

Files are written with pyarrow / json exactly as the hub stores them (same
folders, file names, column names and types), so loading them exercises the
same `datasets.load_dataset` path as a download.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

LONG = "The enzyme was characterised in detail across several independent laboratory studies. "


def long_text(i: int, repeat: int = 2) -> str:
    return f"Document {i}. " + LONG * repeat


def _parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _texts(n: int, short_every: int = 3) -> list[str]:
    # Every third row is too short for the seed's >100-character filter, and
    # wikitext also has blank lines; both must be dropped.
    return [("" if i % short_every == 1 else f" = Heading {i} = ") if i % short_every != 0
            else long_text(i, 2 + i % 3) for i in range(n)]


def write_wikitext(root: Path, n: int = 12) -> None:
    table = pa.table({"text": pa.array(_texts(n), pa.string())})
    _parquet(root / "Salesforce/wikitext/wikitext-103-v1/train-00000-of-00002.parquet",
             table.slice(0, n // 2))
    _parquet(root / "Salesforce/wikitext/wikitext-103-v1/train-00001-of-00002.parquet",
             table.slice(n // 2))


def write_bio_retain(root: Path, n: int = 9) -> None:
    _parquet(root / "cais/wmdp-corpora/bio-retain-corpus/train-00000-of-00004.parquet",
             pa.table({"text": pa.array(_texts(n), pa.string())}))


def write_bio_forget(root: Path, n: int = 6) -> None:
    # The gated repository ships JSON lines with title / abstract / text / doi.
    path = root / "cais/wmdp-bio-forget-corpus/data/train-00000-of-00001.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for i, text in enumerate(_texts(n)):
            f.write(json.dumps({"title": f"Paper {i}", "abstract": f"Abstract {i}.",
                                "text": text, "doi": f"10.1000/{i}"}) + "\n")


def write_lie_o(root: Path, n: int = 6) -> None:
    _parquet(root / "Unlearning/wmdp-lie-o-deep-fried/data/train-00000-of-00001.parquet",
             pa.table({"text": pa.array(_texts(n), pa.string())}))


MESSAGE = pa.struct([("content", pa.string()), ("role", pa.string())])


def write_ultrachat(root: Path, n: int = 6) -> None:
    conversations = [
        [{"content": f"Question {i}: " + LONG, "role": "user"},
         {"content": f"Answer {i}: " + LONG, "role": "assistant"}] if i % 3 else
        [{"content": "Hi", "role": "user"}, {"content": "Hello", "role": "assistant"}]
        for i in range(n)
    ]
    table = pa.table({
        "prompt": pa.array([c[0]["content"] for c in conversations], pa.string()),
        "prompt_id": pa.array([f"{i:064x}" for i in range(n)], pa.string()),
        "messages": pa.array(conversations, pa.list_(MESSAGE)),
    })
    _parquet(root / "HuggingFaceH4/ultrachat_200k/data/train_sft-00000-of-00003-a1b2c3.parquet",
             table)


def _mc_table(n: int, prefix: str, subjects: list[str] | None = None) -> pa.Table:
    columns = {
        "question": pa.array([f"{prefix} question {i}?" for i in range(n)], pa.string()),
        "choices": pa.array([[f"option {j}" for j in range(4)] for _ in range(n)],
                            pa.list_(pa.string())),
        "answer": pa.array([i % 4 for i in range(n)], pa.int64()),
    }
    if subjects is not None:
        columns = {"question": columns["question"],
                   "subject": pa.array([subjects[i % len(subjects)] for i in range(n)]),
                   "choices": columns["choices"], "answer": columns["answer"]}
    return pa.table(columns)


def write_wmdp_bio_robust(root: Path, configs, per_config: int = 3) -> None:
    for config in configs:
        _parquet(root / f"EleutherAI/wmdp_bio_robust_mcqa/{config}/robust-00000-of-00001.parquet",
                 _mc_table(per_config, config))


def write_mmlu(root: Path, n: int = 8) -> None:
    # cais/mmlu stores the answer as a ClassLabel (A-D); datasets reads the
    # label names from the parquet schema metadata, which we include too.
    table = _mc_table(n, "mmlu", ["anatomy", "college_biology"])
    features = {"question": {"dtype": "string", "_type": "Value"},
                "subject": {"dtype": "string", "_type": "Value"},
                "choices": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"},
                "answer": {"names": ["A", "B", "C", "D"], "_type": "ClassLabel"}}
    meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    _parquet(root / "cais/mmlu/all/test-00000-of-00001.parquet", table.replace_schema_metadata(meta))

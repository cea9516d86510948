"""The run directory: scores, the document table, the training order and the manifest."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path

import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq
import torch
from safetensors.torch import save_file

from .atomic import atomic_path, write_json
from .attribution import AttributionResult
from .fingerprint import file_sha256
from .output_names import DIGESTS, DOCUMENTS, MANIFEST, SCORES, SOURCES, TRAINING_ORDER

PREVIEW_CHARS = 240


# What the numbers depend on beyond the project's own packages.
LIBRARIES = ("torch", "transformers", "bergson", "torchopt", "datasets", "torch-dtensor-patch")


def package_versions() -> dict[str, str]:
    """Python, the libraries above, and every installed package of the project (``magic-*``):
    core does not list the packages built on it, it finds them."""
    project = sorted({d.metadata["Name"].lower() for d in metadata.distributions()
                      if (d.metadata["Name"] or "").lower().startswith("magic-")})
    names = project + list(LIBRARIES)
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def document_table(result: AttributionResult, tokenizer, extra: dict | None = None) -> pa.Table:
    """One row per document, in corpus order, with its score and tokens.

    ``unlearning_potential`` is the sum of the document's positive token scores
    (what the seed reported); it needs per-token scores.
    """
    corpus = result.corpus
    columns = {
        "index": list(range(len(corpus))),
        "source_id": corpus.source_ids,
        "score": result.per_example.double().tolist(),
        "n_tokens": [len(r) for r in corpus.input_ids],
        "tokens": [tokenizer.convert_ids_to_tokens(r) for r in corpus.input_ids],
        "text_preview": [t[:PREVIEW_CHARS] for t in corpus.texts],
    }
    if result.per_token is not None:
        columns["unlearning_potential"] = result.per_token.clamp_min(0).sum(-1).double().tolist()
    for name, values in (extra or {}).items():
        # A corpus column named like one of the table's own keeps its values under a prefix.
        columns[f"corpus_{name}" if name in columns else name] = values
    return pa.table(columns)


def corpus_columns(dataset, doc_index: list[int], skip: tuple[str, ...] = ()) -> dict:
    """The corpus's own columns except ``skip``, one value per token row, for `document_table`.

    ``doc_index[i]`` is the document of token row ``i`` (a chunked document's
    values repeat per chunk). The columns come from the dataset's Arrow table,
    so each keeps its type and parquet can store it (lists and structs included).
    """
    keep = [c for c in dataset.column_names if c not in skip]
    if not keep:
        return {}
    # The arrow format honours a selection's index mapping; .data would not.
    table = dataset.select_columns(keep).with_format("arrow")[:]
    table = table.take(pa.array(doc_index, pa.int64()))
    return {name: table.column(name) for name in keep}


def write_scores(out_dir: Path, result: AttributionResult) -> None:
    tensors = {"per_example": result.per_example.contiguous().cpu()}
    if result.per_token is not None:
        tensors["per_token"] = result.per_token.contiguous().cpu()
    with atomic_path(out_dir / SCORES) as tmp:
        save_file(tensors, str(tmp), metadata={"sign": "d(query)/d(weight); negative lowers the query"})


def write_documents(out_dir: Path, table: pa.Table) -> None:
    with atomic_path(out_dir / DOCUMENTS) as tmp:
        pq.write_table(table, tmp)


def training_order_table(result: AttributionResult) -> pa.Table:
    """One row per trained row of every step, in training order: ``step``, ``epoch``,
    ``document`` (the row's ``index`` in the document table) and its ``source_id``.

    A document trained in several epochs appears once per epoch; the rows of
    one step are its whole batch, whatever the number of ranks.
    """
    order = result.training_order
    source_ids = result.corpus.source_ids
    return pa.table({
        "step": pa.array(order["step"], pa.int64()),
        "epoch": pa.array(order["epoch"], pa.int64()),
        "document": pa.array(order["document"], pa.int64()),
        "source_id": [source_ids[d] for d in order["document"]],
    })


def write_training_order(out_dir: Path, result: AttributionResult) -> None:
    """Write ``training_order.parquet`` (see `training_order_table`)."""
    with atomic_path(out_dir / TRAINING_ORDER) as tmp:
        pq.write_table(training_order_table(result), tmp)


def source_table(table: pa.Table) -> pa.Table:
    """One row per source document: the sums over its chunks (a score is additive over rows).

    A document longer than ``max_seq_len`` is trained as several chunk rows
    that share its ``source_id``; its influence is the sum of theirs.
    """
    sums = ["score", "n_tokens"] + [c for c in ("unlearning_potential",) if c in table.column_names]
    grouped = table.group_by("source_id", use_threads=False).aggregate(
        [(c, "sum") for c in sums] + [("index", "min"), ("index", "count")])
    order = pa.compute.sort_indices(grouped, [("index_min", "ascending")])
    grouped = grouped.take(order)
    return pa.table({
        "source_id": grouped["source_id"], "first_index": grouped["index_min"],
        "chunks": grouped["index_count"],
        **{c: grouped[f"{c}_sum"] for c in sums},
    })


def write_sources(out_dir: Path, table: pa.Table) -> bool:
    """Write ``sources.parquet`` when some document was split into chunks; returns whether."""
    if len(set(table["source_id"].to_pylist())) == table.num_rows:
        return False
    with atomic_path(out_dir / SOURCES) as tmp:
        pq.write_table(source_table(table), tmp)
    return True


def build_manifest(result: AttributionResult, config: dict, fingerprints: dict,
                   query: dict, timings: dict) -> dict:
    return {
        "format": 1,
        "config": config,
        "versions": package_versions(),
        "command": sys.argv,
        "fingerprints": fingerprints,
        "query": {**query, "before_training": result.query_before,
                  "after_training": result.query_after},
        "shapes": {
            "per_example": list(result.per_example.shape),
            "per_token": list(result.per_token.shape) if result.per_token is not None else None,
        },
        "corpus": {"documents": len(result.corpus), "truncated": result.corpus.truncated,
                   "max_seq_len": result.corpus.max_seq_len},
        "training": {"steps": result.n_steps, "replayed_steps": result.replayed_steps,
                     "replayed_updates": result.replayed_updates,
                     "kept_state_schedule": result.schedule, "kept_states": result.kept_states,
                     "kept_gradients": result.kept_gradients,
                     "peak_memory_bytes": result.peak_memory,
                     "first_loss": result.train_losses[0], "last_loss": result.train_losses[-1]},
        "tied_parameters": result.tied_parameters,
        "timings": timings,
        "scores_dtype": str(result.per_example.dtype).replace("torch.", ""),
        "torch_threads": torch.get_num_threads(),
    }


def file_digests(out_dir: Path) -> dict[str, str]:
    """sha256 of the run's machine-readable files, so that a reader notices an edited one."""
    digests = {}
    for name in (SCORES, DOCUMENTS, SOURCES, TRAINING_ORDER):
        if (out_dir / name).is_file():
            digests[name] = file_sha256(out_dir / name)
    return digests


def write_manifest(out_dir: Path, manifest: dict) -> None:
    """Written last: a run directory with a manifest is a complete one. Records the
    digests of the files written before it (``manifest`` gains them too)."""
    manifest[DIGESTS] = file_digests(out_dir)
    write_json(out_dir / MANIFEST, manifest)

"""How a source row becomes the columns a kind requires: schema check, ids, chat text."""

from __future__ import annotations

import datasets

from ..errors import DatasetError
from .source import HubSource

JOINED, CHAT_TEMPLATE = "joined", "chat-template"
TEXT_FORMATS = (JOINED, CHAT_TEMPLATE)


def require_columns(dataset: datasets.Dataset, source: HubSource, columns: tuple[str, ...]):
    """Refuse files that are not in the hub dataset's schema before touching a row."""
    for column in columns:
        if column not in dataset.column_names:
            raise DatasetError(
                f"{source.describe()} lacks column {column!r} (it has {dataset.column_names}); "
                f"the files are not in the schema of {source.hub_id}: use the hub's files"
            )


def add_ids(dataset: datasets.Dataset, prefix: str) -> datasets.Dataset:
    """``id`` = prefix + the row's index in the source split, before any filter.

    Indexing the unfiltered split means a score maps back to one hub row
    whatever selection produced it.
    """
    if "id" in dataset.column_names:
        dataset = dataset.rename_column("id", "source_row_id")
    return dataset.map(lambda _, i: {"id": f"{prefix}{i}"}, with_indices=True,
                       desc="ids")


def joined_messages(messages: list[dict]) -> str:
    """The seed's UltraChat text: message contents joined by newlines, no roles."""
    return "\n".join(m["content"] for m in messages)


def chat_texts(dataset: datasets.Dataset, text_format: str, tokenizer: str | None,
               name: str) -> datasets.Dataset:
    """Adds ``text`` from the ``messages`` column, joined or through a chat template."""
    if text_format not in TEXT_FORMATS:
        raise DatasetError(f"{name}: text_format must be one of {', '.join(TEXT_FORMATS)}, "
                           f"got {text_format!r}")
    if text_format == JOINED:
        return dataset.map(lambda row: {"text": joined_messages(row["messages"])}, desc="text")
    if not tokenizer:
        raise DatasetError(f"{name}: text_format 'chat-template' needs option tokenizer "
                           "(the model's hub id or local directory)")
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(tokenizer)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise DatasetError(f"{name}: cannot load tokenizer {tokenizer!r} ({first}); give a "
                           "local directory or a reachable hub id") from None
    if not tok.chat_template:
        raise DatasetError(f"{name}: tokenizer {tokenizer!r} has no chat template; use "
                           "text_format 'joined' or a chat model's tokenizer")

    def render(row):
        messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
        return {"text": tok.apply_chat_template(messages, tokenize=False)}

    return dataset.map(render, desc="chat template")

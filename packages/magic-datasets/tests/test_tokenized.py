import datasets
import magic_datasets as md
import pytest
from magic_core import ConfigError, tokenize_corpus
from magic_datasets import DatasetError
from magic_datasets.world import World, build_tokenizer


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(World())


@pytest.fixture(scope="module")
def corpus():
    return md.load("world-attribution", n_docs=6, k_planted=2)


def test_truncate_mode_is_exactly_magic_core_tokenize_corpus(tok, corpus):
    rows = md.tokenize(corpus, tok, max_seq_len=12)
    core = tokenize_corpus(corpus, tok, 12)
    assert [list(r) for r in rows["input_ids"]] == core.input_ids
    assert list(rows["source_id"]) == core.source_ids and list(rows["text"]) == core.texts
    assert sum(rows["truncated"]) == core.truncated


def test_chunks_cover_each_document_and_keep_its_id(tok, corpus):
    rows = md.tokenize(corpus, tok, max_seq_len=8, mode="chunk")
    full = [ids + [tok.eos_token_id] for ids in tok(list(corpus["text"]), add_special_tokens=False)["input_ids"]]
    assert len(rows) > len(corpus) and max(len(r) for r in rows["input_ids"]) == 8
    for doc, (doc_id, ids) in enumerate(zip(corpus["id"], full)):
        pieces = [r for r in rows if r["doc_index"] == doc]
        assert all(p["source_id"] == doc_id for p in pieces)
        assert [p["chunk"] for p in pieces] == list(range(len(pieces)))
        joined = [t for p in pieces for t in p["input_ids"]]
        # Only a trailing single token (nothing to predict) may be dropped.
        assert joined == ids or (joined == ids[:-1] and len(ids) % 8 == 1)
    assert all(len(r) >= 2 for r in rows["input_ids"])


def test_tokenized_rows_are_cached_and_reused(tok, corpus, tmp_path, monkeypatch):
    first = md.tokenize(corpus, tok, max_seq_len=8, mode="chunk")
    entries = list((tmp_path / "cache" / "tokenized").iterdir())
    assert len(entries) == 1

    def fail(*args, **kwargs):
        raise AssertionError("tokenized again instead of reading the cache")

    monkeypatch.setattr("magic_datasets.tokenized._build", fail)
    again = md.tokenize(corpus, tok, max_seq_len=8, mode="chunk")
    assert list(again["input_ids"]) == list(first["input_ids"])
    with pytest.raises(AssertionError):  # another selection is another key
        md.tokenize(corpus.select(range(3)), tok, max_seq_len=8, mode="chunk")


def test_tokenize_refuses_bad_input_in_one_line(tok):
    empty = datasets.Dataset.from_list([{"id": "a", "text": ""}])
    with pytest.raises(DatasetError, match="fewer than 2 tokens"):
        md.tokenize(empty, tok, 8, cache=False)
    with pytest.raises(DatasetError, match="mode must be one of truncate, chunk"):
        md.tokenize(empty, tok, 8, mode="pack")
    with pytest.raises(DatasetError, match="no column 'body'"):
        md.tokenize(empty, tok, 8, text_column="body")


def test_truncated_rows_are_each_documents_tokens_with_eos_cut_to_length(tok, corpus):
    core = tokenize_corpus(corpus, tok, 12)
    for text, row in zip(corpus["text"], core.input_ids):
        ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert row == ids[:12] and all(type(t) is int for t in row)
    assert core.truncated == sum(
        len(tok(t, add_special_tokens=False)["input_ids"]) + 1 > 12 for t in corpus["text"])
    assert core.source_ids == list(corpus["id"]) and core.texts == list(corpus["text"])


def test_magic_core_tokenizes_through_this_module_only(tok, corpus, monkeypatch):
    calls = []
    real = md.tokenized._build
    monkeypatch.setattr("magic_datasets.tokenized._build", lambda *a: calls.append(a) or real(*a))
    chunked = tokenize_corpus(corpus, tok, 8, mode="chunk")
    assert len(calls) == 1 and len(chunked) > len(corpus)
    empty = datasets.Dataset.from_list([{"id": "a", "text": ""}])
    with pytest.raises(ConfigError, match="document 0 .* has fewer than 2 tokens"):
        tokenize_corpus(empty, tok, 8)  # core's callers get core's error type

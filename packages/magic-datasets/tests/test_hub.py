"""The hub datasets, end to end on local copies in the hub's real layout (no network)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import magic_datasets as md
import pyarrow as pa
import pytest
from magic_datasets import DatasetError, Kind
from magic_datasets.hub.benchmarks import WMDP_BIO_ROBUST_CONFIGS

CORPORA = {
    "wikitext-103": "write_wikitext",
    "wmdp-bio-retain": "write_bio_retain",
    "wmdp-bio-forget": "write_bio_forget",
    "wmdp-lie-o-deep-fried": "write_lie_o",
    "ultrachat-200k": "write_ultrachat",
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    # datasets' own cache (map/filter results) and any hub token stay out of $HOME.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    monkeypatch.delenv("MAGIC_DATA_DIR", raising=False)


@pytest.fixture
def data_dir(tmp_path, hubfiles) -> Path:
    root = tmp_path / "hub"
    for writer in CORPORA.values():
        getattr(hubfiles, writer)(root)
    hubfiles.write_wmdp_bio_robust(root, WMDP_BIO_ROBUST_CONFIGS)
    hubfiles.write_mmlu(root)
    return root


def test_every_hub_dataset_is_registered_with_its_source_and_notes():
    specs = {s.name: s for s in md.list_datasets()}
    for name in [*CORPORA, "wmdp-bio-robust", "mmlu"]:
        spec = specs[name]
        assert spec.package == "magic-datasets" and spec.source != "generated"
        assert spec.columns and spec.selection and spec.license and spec.access
    assert specs["wmdp-bio-forget"].gated and "request access" in specs["wmdp-bio-forget"].access
    assert specs["mmlu"].kind is Kind.MULTIPLE_CHOICE


@pytest.mark.parametrize("name", list(CORPORA))
def test_corpora_keep_texts_over_100_chars_and_ids_point_at_source_rows(name, data_dir):
    corpus = md.load(name, data_dir=str(data_dir))
    raw = md.load(name, data_dir=str(data_dir), min_chars=0)
    assert 0 < len(corpus) < len(raw)
    assert all(len(t.strip()) > 100 for t in corpus["text"])
    assert len(set(corpus["id"])) == len(corpus)
    # The id is the row's index in the unfiltered split.
    by_id = dict(zip(raw["id"], raw["text"]))
    assert all(by_id[i] == t for i, t in zip(corpus["id"], corpus["text"]))
    assert corpus[0]["id"] == f"{name}-{raw['id'].index(corpus[0]['id'])}"


def test_the_data_dir_can_come_from_the_environment(data_dir, monkeypatch):
    monkeypatch.setenv("MAGIC_DATA_DIR", str(data_dir))
    assert len(md.load("wikitext-103", n=2)) == 2


def test_selections_first_random_and_the_seed_length_window(tmp_path, hubfiles):
    root = tmp_path / "hub"
    hubfiles.write_wikitext(root, n=60)
    kept = md.load("wikitext-103", data_dir=str(root))
    first = md.load("wikitext-103", data_dir=str(root), n=5)
    assert first["id"] == kept["id"][:5]
    a = md.load("wikitext-103", data_dir=str(root), n=5, select="random", seed=1)
    b = md.load("wikitext-103", data_dir=str(root), n=5, select="random", seed=1)
    c = md.load("wikitext-103", data_dir=str(root), n=5, select="random", seed=2)
    assert a["id"] == b["id"] != c["id"]
    window = md.load("wikitext-103", data_dir=str(root), n=5, select="length-window")
    by_length = sorted(kept, key=lambda r: len(r["text"]))
    start = len(kept) // 4
    assert [len(t) for t in window["text"]] == [len(r["text"]) for r in by_length[start:start + 5]]
    with pytest.raises(DatasetError, match=r"asked for n=500 rows .* only \d+ of \d+ after keeping"):
        md.load("wikitext-103", data_dir=str(root), n=500)
    with pytest.raises(DatasetError, match="select must be one of"):
        md.load("wikitext-103", data_dir=str(root), n=5, select="best")


def test_ultrachat_text_is_the_joined_messages_or_a_chat_template(data_dir, tmp_path):
    rows = md.load("ultrachat-200k", data_dir=str(data_dir))
    assert rows[0]["text"] == "\n".join(m["content"] for m in rows[0]["messages"])
    tok = _word_tokenizer(rows["text"])
    tok.chat_template = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    tok.save_pretrained(tmp_path / "tok")
    chat = md.load("ultrachat-200k", data_dir=str(data_dir), text_format="chat-template",
                   tokenizer=str(tmp_path / "tok"))
    assert chat[0]["text"].startswith("<|user|>Question")
    assert "<|assistant|>Answer" in chat[0]["text"]
    with pytest.raises(DatasetError, match="needs option tokenizer"):
        md.load("ultrachat-200k", data_dir=str(data_dir), text_format="chat-template")


def test_wmdp_bio_robust_concatenates_the_six_robust_configs(data_dir):
    questions = md.load("wmdp-bio-robust", data_dir=str(data_dir))
    assert len(questions) == 6 * 3
    assert set(questions["subset"]) == set(WMDP_BIO_ROBUST_CONFIGS)
    assert questions.features["answer"].dtype == "int64"
    assert all(len(c) == 4 for c in questions["choices"])
    one = md.load("wmdp-bio-robust", data_dir=str(data_dir), configs=["dual_use_virology"], n=2)
    assert one["subset"] == ["dual_use_virology"] * 2
    with pytest.raises(DatasetError, match="unknown config 'virology'"):
        md.load("wmdp-bio-robust", data_dir=str(data_dir), configs=["virology"])


def test_mmlu_answers_are_indices_and_subjects_filter(data_dir):
    questions = md.load("mmlu", data_dir=str(data_dir))
    assert len(questions) == 8 and questions.features["answer"].dtype == "int64"
    assert questions["answer"][:4] == [0, 1, 2, 3]
    bio = md.load("mmlu", data_dir=str(data_dir), subjects=["college_biology"])
    assert set(bio["subject"]) == {"college_biology"} and len(bio) == 4
    with pytest.raises(DatasetError, match="no subject 'biology'"):
        md.load("mmlu", data_dir=str(data_dir), subjects=["biology"])


def test_files_without_an_expected_column_are_refused(tmp_path):
    path = tmp_path / "hub/Salesforce/wikitext/wikitext-103-v1/train-00000-of-00001.parquet"
    path.parent.mkdir(parents=True)
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"content": ["x" * 200]}), path)
    with pytest.raises(DatasetError, match=r"lacks column 'text' \(it has \['content'\]\)"):
        md.load("wikitext-103", data_dir=str(tmp_path / "hub"))


def test_a_missing_local_copy_says_where_files_go(tmp_path):
    with pytest.raises(DatasetError, match="no local copy of cais/mmlu"):
        md.load("mmlu", data_dir=str(tmp_path))
    (tmp_path / "cais/mmlu").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"expected e\.g\. .*cais/mmlu/all/test-00000"):
        md.load("mmlu", data_dir=str(tmp_path))


def test_the_gated_corpus_without_a_token_says_how_to_authenticate(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr("magic_datasets.hub.source.has_hub_token", lambda: False)
    with pytest.raises(DatasetError) as err:
        md.load("wmdp-bio-forget")
    message = str(err.value)
    assert "huggingface-cli login" in message and "HF_TOKEN" in message
    assert "huggingface.co/datasets/cais/wmdp-bio-forget-corpus" in message
    assert "\n" not in message


def test_hub_failures_offline_are_one_line_errors(tmp_path):
    # A fresh process with the hub switched off: the real `load_dataset` call
    # fails without touching the network, and the error is one line.
    env = {k: v for k, v in os.environ.items() if k != "MAGIC_DATA_DIR"}
    env.update(HF_HOME=str(tmp_path), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    code = ("import json, magic_datasets as md\n"
            "try:\n    md.load('wikitext-103', n=1)\n"
            "except md.DatasetError as e:\n    print(json.dumps(str(e)))\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    message = json.loads(out.stdout.strip().splitlines()[-1])
    assert message.startswith("cannot load Salesforce/wikitext wikitext-103-v1 [train] from the hub")
    assert "MAGIC_DATA_DIR" in message and "\n" not in message


def _word_tokenizer(texts):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pre = pre_tokenizers.Whitespace()
    words = sorted({w for t in texts for w, _ in pre.pre_tokenize_str(t)})
    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<unk>", *words])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>",
                                   eos_token="<eos>", unk_token="<unk>")

"""`magic pretrain`, the unknown-token check of attribute/unlearn, and a corpus's own
columns in documents.parquet.

The example plugin (and a fixture plugin with extra columns) are made visible
to `magic` subprocesses through PYTHONPATH and a .dist-info folder with their
entry points, so nothing is installed into the shared environment.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from magic_core import ConfigError
from magic_core.outputs import corpus_columns
from magic_driver.cli import main
from magic_driver.token_coverage import check_token_coverage, text_rows, unknown_share
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

EXAMPLE_SRC = Path(__file__).resolve().parents[2] / "examples" / "magic-datasets-example" / "src"

FIXTURE_PLUGIN = '''
import datasets
from magic_datasets import DatasetSpec, Kind, hookimpl

ROWS = {
    "id": ["n0", "n1", "n2", "n3"],
    "text": ["bread needs flour water salt and yeast and a warm place to rise",
             "soup starts with onions cooked slowly in butter until soft",
             "rice is rinsed in cold water before it is cooked",
             "tea is made with water that has just boiled"],
    "topic": ["baking", "soup", "rice", "drinks"],
    "rating": [5, 3, 4, 2],
    "tags": [["bread"], ["soup", "slow"], [], ["tea"]],
    "score": [0.5, 0.25, 0.125, 1.0],  # clashes with the table's own column
}


@hookimpl
def magic_datasets_register():
    return [DatasetSpec("fixture-notes-with-columns", Kind.TRAINING_CORPUS,
                        lambda: datasets.Dataset.from_dict(ROWS), options={},
                        columns={k: "" for k in ROWS})]
'''


def _dist_info(site: Path, name: str, module: str) -> None:
    info = site / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[magic.datasets]\n{name} = {module}\n")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Environment of `magic` subprocesses that see the two plugins and a private cache."""
    root = tmp_path_factory.mktemp("plugins")
    site = root / "site"
    site.mkdir()
    (site / "magic_datasets_example").symlink_to(EXAMPLE_SRC / "magic_datasets_example")
    _dist_info(site, "magic-datasets-example", "magic_datasets_example.plugin")
    (site / "fixture_notes_plugin.py").write_text(FIXTURE_PLUGIN)
    _dist_info(site, "fixture-notes-plugin", "fixture_notes_plugin")
    return {**os.environ, "PYTHONPATH": str(site), "MAGIC_CACHE": str(root / "cache")}


def _magic(env, *args, cwd=None):
    magic = Path(sys.executable).with_name("magic")
    return subprocess.run([str(magic), *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=600)


def _job(path: Path, model: str, data: str, max_seq_len: int = 16) -> Path:
    path.write_text(textwrap.dedent(f"""\
        model: {{path: "{model}"}}
        data: {data}
        query: {{objective: lm, dataset: example-kitchen-queries, limit: 2}}
        train: {{optimizer: sgd, lr: 0.1, batch_size: 4, max_seq_len: {max_seq_len}}}
        device: cpu
        """))
    return path


@pytest.fixture(scope="module")
def pretrained(env, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "kitchen"
    run = _magic(env, "pretrain", "example-kitchen-notes", "--out", str(out), "--steps", "30",
                 "--quiet")
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"use it as model: {{path: {out}}}" in run.stdout
    return out


# -- the unknown-token check ----------------------------------------------------------

def _word_level(unk: str | None = "<unk>", eos: str = "<eos>") -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<unk>", "bread", "salt"])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token=eos,
                                   unk_token=unk)


def test_unknown_share_counts_unknown_words_among_the_texts_own_tokens():
    tok = _word_level()
    rows = [r + [tok.eos_token_id] for r in text_rows(["bread salt yeast", "bread oven"], tok)]
    assert unknown_share(rows, tok) == pytest.approx(2 / 5)  # the appended EOS is not counted
    assert unknown_share(text_rows(["bread salt"], tok), tok) == 0.0


def test_tokenizers_that_never_produce_their_unknown_token_pass():
    # GPT-2/Pythia name EOS as their unknown token; byte-level BPE never emits it.
    alias = _word_level(unk="<eos>")
    assert unknown_share([[alias.eos_token_id, 3]], alias) == 0.0
    assert unknown_share(text_rows(["yeast"], _word_level(unk=None)), _word_level(unk=None)) == 0.0


def test_the_refusal_is_one_line_with_the_share_and_the_fix():
    tok = _word_level()
    with pytest.raises(ConfigError) as info:
        check_token_coverage("corpus 'my-data'", text_rows(["bread yeast oven"], tok), tok,
                             "builtin:world-base", "FIX")
    assert str(info.value) == (
        "corpus 'my-data': 66.7 % of tokens are <unk> under builtin:world-base's tokenizer "
        "(vocabulary of 5); use a model whose tokenizer covers this text, e.g. FIX")
    check_token_coverage("corpus 'my-data'", text_rows(["bread salt"] * 99 + ["yeast"], tok),
                         tok, "m", "FIX")  # 0.5 % unknown: accepted


def test_world_base_refuses_foreign_text_before_loading_any_model(env, tmp_path):
    # Reproduces the user report: the example plugin's notes under the world's model.
    job = _job(tmp_path / "job.yaml", "builtin:world-base", "{dataset: example-kitchen-notes}")
    out = tmp_path / "run"
    run = _magic(env, "attribute", str(job), "--out", str(out), "--quiet")
    assert run.returncode == 2, run.stderr[-2000:]
    assert run.stderr.splitlines() == [
        "error: corpus 'example-kitchen-notes': 74.4 % of tokens are <|unk|> under "
        "builtin:world-base's tokenizer (vocabulary of 152); use a model whose tokenizer covers "
        "this text, e.g. `magic pretrain example-kitchen-notes --out models/example-kitchen-notes`"
        " and model: {path: models/example-kitchen-notes}"]
    assert not out.exists()
    # The check needs the tokenizer only: the world's base model was never trained.
    assert not (Path(env["MAGIC_CACHE"]) / "world-base").exists()


def test_unlearn_refuses_a_forget_corpus_the_tokenizer_cannot_read(env, tmp_path):
    job = tmp_path / "unlearn.yaml"
    job.write_text(textwrap.dedent("""\
        kind: unlearn
        model: {path: "builtin:world-base"}
        forget: {dataset: example-kitchen-notes, options: {n: 4}}
        relearn: {enabled: false}
        recipe: {name: gradient-ascent}
        device: cpu
        """))
    out = tmp_path / "out"
    run = _magic(env, "unlearn", str(job), "--out", str(out), "--quiet")
    assert run.returncode == 2, run.stderr[-2000:]
    [line] = run.stderr.splitlines()
    assert line.startswith("error: forget corpus 'example-kitchen-notes': ")
    assert "`magic pretrain example-kitchen-notes --option n=4 --out " in line
    assert not out.exists()


# -- magic pretrain ---------------------------------------------------------------------

def test_pretrain_refuses_bad_sizes_and_an_occupied_out_before_any_work(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["pretrain", "world-attribution", "--out", str(tmp_path / "m"),
                               "--width", "30", "--heads", "4"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        "error: --width 30 is not a multiple of --heads 4; e.g. --width 64"]
    res = runner.invoke(main, ["pretrain", "world-attribution", "--out", str(tmp_path / "m"),
                               "--vocab-size", "100"])
    assert res.exit_code == 2 and "--vocab-size 100 is too small; use at least 268" in res.output
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    res = runner.invoke(main, ["pretrain", "world-attribution", "--out", str(occupied)])
    assert res.exit_code == 2 and "already exists" in res.output
    assert [p.name for p in occupied.iterdir()] == ["keep.txt"]
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_a_pretrained_model_reads_the_plugin_text_and_attributes_end_to_end(
        env, pretrained, tmp_path):
    from transformers import AutoTokenizer

    saved = json.loads((pretrained / "pretrain.json").read_text())
    assert saved["dataset"] == "example-kitchen-notes" and saved["documents"] == 24
    assert not [p for p in pretrained.parent.iterdir() if p.name.startswith(".")]  # no staging
    tok = AutoTokenizer.from_pretrained(pretrained)
    text = "eggs boiled for six minutes keep a soft yellow centre"
    assert tok.decode(tok(text)["input_ids"]) == text
    job = _job(tmp_path / "job.yaml", str(pretrained),
               "{dataset: example-kitchen-notes, n_docs: 8}")
    out = tmp_path / "run"
    run = _magic(env, "attribute", str(job), "--out", str(out), "--quiet")
    assert run.returncode == 0, run.stderr[-2000:]
    assert (out / "scores.safetensors").is_file()
    assert pq.read_table(out / "documents.parquet").num_rows == 8


# -- a corpus's own columns in documents.parquet ----------------------------------------

def test_corpus_columns_follow_the_selection_and_repeat_per_chunk():
    rows = datasets.Dataset.from_dict({"id": ["a", "b", "c"], "text": ["x", "y", "z"],
                                       "topic": ["t0", "t1", "t2"], "tags": [["p"], [], ["q"]]})
    picked = rows.select([2, 0])  # an index mapping, not a slice
    columns = corpus_columns(picked, [0, 0, 1], skip=("id", "text"))
    assert list(columns) == ["topic", "tags"]
    assert columns["topic"].to_pylist() == ["t2", "t2", "t0"]
    assert columns["tags"].to_pylist() == [["q"], ["q"], ["p"]]


@pytest.mark.slow
def test_extra_corpus_columns_reach_documents_parquet(env, pretrained, tmp_path):
    job = _job(tmp_path / "job.yaml", str(pretrained),
               "{dataset: fixture-notes-with-columns, long_documents: chunk}", max_seq_len=8)
    out = tmp_path / "run"
    run = _magic(env, "attribute", str(job), "--out", str(out), "--quiet")
    assert run.returncode == 0, run.stderr[-2000:]
    table = pq.read_table(out / "documents.parquet")
    assert {"topic", "rating", "tags", "corpus_score"} <= set(table.column_names)
    assert "text" not in table.column_names and "id" not in table.column_names
    rows = table.to_pylist()
    assert len(rows) > 4  # the first note was cut into chunks; each chunk keeps its note's values
    by_note = {r["source_id"]: (r["topic"], r["rating"], r["tags"], r["corpus_score"]) for r in rows}
    assert by_note == {"n0": ("baking", 5, ["bread"], 0.5), "n1": ("soup", 3, ["soup", "slow"], 0.25),
                       "n2": ("rice", 4, [], 0.125), "n3": ("drinks", 2, ["tea"], 1.0)}
    assert all(r["topic"] == "baking" for r in rows if r["source_id"] == "n0")

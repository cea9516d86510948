"""`magic datasets list / show`, and a third-party plugin installed with pip."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from magic_driver.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "magic-datasets-example"


def test_list_shows_the_hub_and_world_datasets_with_their_package():
    result = CliRunner().invoke(main, ["datasets", "list"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    for name in ("wikitext-103", "wmdp-bio-forget", "wmdp-bio-retain", "ultrachat-200k",
                 "wmdp-lie-o-deep-fried", "wmdp-bio-robust", "mmlu", "world-attribution"):
        assert name in lines and lines[name].rstrip().endswith("magic-datasets")
    assert "Salesforce/wikitext wikitext-103-v1 [train]" in lines["wikitext-103"]


def test_show_prints_schema_size_gating_and_a_sample_row():
    result = CliRunner().invoke(main, ["datasets", "show", "world-attribution"])
    assert result.exit_code == 0, result.output
    assert "kind:        training-corpus" in result.output
    assert "  text: " in result.output or "  text (required)" in result.output
    sample = result.output.split("sample:", 1)[1].strip()
    assert json.loads(sample)["id"].startswith("world-attr")


def test_show_of_a_gated_hub_dataset_without_data_still_describes_it(tmp_path):
    result = CliRunner().invoke(
        main, ["datasets", "show", "wmdp-bio-forget", "--option", f"data_dir={tmp_path}"])
    assert result.exit_code == 0, result.output
    assert "gated:       yes (gated: request access at https://huggingface.co/datasets/cais/" \
        in result.output
    assert "size:        24,453 documents" in result.output
    assert "sample:      unavailable (no local copy of cais/wmdp-bio-forget-corpus" in result.output


def test_show_of_an_unknown_name_suggests_close_ones():
    result = CliRunner().invoke(main, ["datasets", "show", "wikitext-130"])
    assert result.exit_code == 2
    assert result.output.strip() == ("error: unknown dataset 'wikitext-130'; "
                                     "did you mean 'wikitext-103'?")


def _magic(*args, cwd=None, env=None):
    magic = Path(sys.executable).with_name("magic")
    return subprocess.run([str(magic), *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def _tiny_model(tmp_path: Path) -> Path:
    """A tiny GPT-NeoX and a word-level tokenizer that knows the example's words."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

    sys.path.insert(0, str(EXAMPLE / "src"))
    try:
        from magic_datasets_example.data import NOTES, QUERIES
    finally:
        sys.path.remove(str(EXAMPLE / "src"))
    pre = pre_tokenizers.Whitespace()
    words = sorted({w for t in NOTES + QUERIES for w, _ in pre.pre_tokenize_str(t)})
    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<unk>", *words])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>",
                                  unk_token="<unk>")
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(GPTNeoXConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, attn_implementation="eager",
        eos_token_id=1, pad_token_id=0, bos_token_id=1,
    ))
    target = tmp_path / "tiny-model"
    model.save_pretrained(target)
    tok.save_pretrained(target)
    return target


@pytest.mark.slow
def test_a_pip_installed_plugin_is_discovered_and_attributed(tmp_path):
    # Into a folder of its own on PYTHONPATH, never the shared environment: other test
    # processes (xdist workers) import from that one while this test runs.
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(site), str(EXAMPLE)], check=True, capture_output=True, timeout=300)
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "MAGIC_CACHE": str(tmp_path / "cache")}
    listed = _magic("datasets", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()}
    assert rows["example-kitchen-notes"][1] == "training-corpus"
    assert rows["example-kitchen-queries"][1] == "lm"
    assert rows["example-kitchen-notes"][-1] == rows["example-kitchen-queries"][-1] \
        == "magic-datasets-example"

    model = _tiny_model(tmp_path)
    job = tmp_path / "job.yaml"
    job.write_text(textwrap.dedent(f"""\
        model: {{path: {model}}}
        data: {{dataset: example-kitchen-notes, options: {{n: 8}}, long_documents: chunk}}
        query: {{objective: lm, dataset: example-kitchen-queries, limit: 2}}
        train: {{optimizer: sgd, lr: 0.1, batch_size: 4, max_seq_len: 8}}
        device: cpu
        """))
    out = tmp_path / "run"
    run = _magic("attribute", str(job), "--out", str(out), "--quiet", env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fingerprints"]["documents"] == 8
    assert manifest["fingerprints"]["token_rows"] > 8  # notes longer than 8 tokens were chunked
    assert list((tmp_path / "cache" / "tokenized").iterdir())

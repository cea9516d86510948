"""A tiny random GPT-NeoX with the built-in world's tokenizer, and fake scores runs."""

import json

import magic_datasets as md
import pytest
import torch
from magic_core.outputs import MANIFEST, SCORES
from magic_datasets.world import World, build_tokenizer
from safetensors.torch import save_file
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer(World())


@pytest.fixture(scope="session")
def make_neox(tokenizer):
    """``make_neox(layers=1, hidden=32)``: a random GPT-NeoX (seed 0) reading the world's tokens."""
    def make(layers: int = 1, hidden: int = 32):
        torch.manual_seed(0)
        return GPTNeoXForCausalLM(GPTNeoXConfig(
            vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
            num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=128,
            tie_word_embeddings=False, attention_dropout=0.0, hidden_dropout=0.0,
            pad_token_id=tokenizer.pad_token_id,
        ))
    return make


@pytest.fixture
def tiny_model(make_neox):
    return make_neox()


@pytest.fixture(scope="session")
def forget_corpus():
    return md.load("world-forget-corpus", per_entity=1)


@pytest.fixture(scope="session")
def retain_corpus():
    return md.load("world-retain-corpus", per_entity=1)


def write_scores_run(path, dataset, tokenizer, per_token, max_seq_len=96):
    """A run directory shaped like `magic attribute`'s, with given per-token scores."""
    path.mkdir(parents=True, exist_ok=True)
    save_file({"per_example": per_token.sum(-1).contiguous(), "per_token": per_token.contiguous()},
              str(path / SCORES))
    manifest = {
        "fingerprints": {"dataset": md.dataset_fingerprint(dataset),
                         "tokenizer": md.tokenizer_fingerprint(tokenizer)},
        "shapes": {"per_example": [per_token.shape[0]], "per_token": list(per_token.shape)},
        "corpus": {"documents": per_token.shape[0], "max_seq_len": max_seq_len},
    }
    (path / MANIFEST).write_text(json.dumps(manifest))
    return path


@pytest.fixture
def make_scores_run():
    return write_scores_run


@pytest.fixture
def scores_run(tmp_path, forget_corpus, tokenizer):
    gen = torch.Generator().manual_seed(1)
    longest = max(len(r) for r in tokenizer(list(forget_corpus["text"]))["input_ids"]) + 1
    scores = torch.randn((len(forget_corpus), longest), generator=gen) * 1e-6
    return write_scores_run(tmp_path / "scores", forget_corpus, tokenizer, scores)

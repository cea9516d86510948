import magic_datasets as md
import pytest
import torch
from magic_datasets.world import World, build_tokenizer
from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer(World())


@pytest.fixture(scope="session")
def make_neox(tokenizer):
    """A factory for one tiny untied GPT-NeoX (the seed's architecture), same init each call."""
    cfg = GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, attn_implementation="eager",
    )

    def make():
        torch.manual_seed(0)
        return GPTNeoXForCausalLM(cfg)

    return make


@pytest.fixture(scope="session")
def make_gpt2(tokenizer):
    """A tiny GPT-2: input and output embeddings tied, as in GPT-2/Llama/Qwen/Gemma."""
    cfg = GPT2Config(
        vocab_size=len(tokenizer), n_embd=16, n_layer=2, n_head=2, n_positions=64,
        attn_implementation="eager", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=None,
    )

    def make():
        torch.manual_seed(0)
        model = GPT2LMHeadModel(cfg)
        model.tie_weights()
        assert model.lm_head.weight is model.transformer.wte.weight
        return model

    return make


@pytest.fixture(scope="session")
def small_corpus():
    return md.load("world-attribution", n_docs=5, k_planted=2)


@pytest.fixture(scope="session")
def hazard_questions():
    return md.load("world-hazard-mcqa").select(range(6))

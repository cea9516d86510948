from contextlib import nullcontext
from dataclasses import replace

import magic_core as mc
import magic_datasets as md
import pytest
import torch
from magic_core import preemption
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


# -- a resumable attribution (test_preemption, test_durable_checkpoints) -----------------
RESUMABLE_TRAIN = mc.TrainConfig(optimizer="adam", lr=1e-2, batch_size=2, epochs=2,
                                 precision="fp64", max_seq_len=24, seed=0)


@pytest.fixture(scope="module")
def resumable_run(make_neox, tokenizer, small_corpus, hazard_questions):
    """``run(control=None, schedule="sqrt", lr=None, **where)``: the tiny float64 job (5 steps)
    under ``control`` (a `RunControl`, whose progress file it opens); ``lr`` changes the job,
    ``where`` says where kept states live (`AttributionConfig` keys)."""
    objective = mc.MultipleChoiceObjective(hazard_questions, tokenizer)

    def attribute(control=None, schedule="sqrt", lr=None, **where):
        train = RESUMABLE_TRAIN if lr is None else replace(RESUMABLE_TRAIN, lr=lr)
        attribution = mc.AttributionConfig(kept_states=schedule, **where)
        with preemption.handle_signals(), control.progress if control else nullcontext():
            return mc.attribute(make_neox(), tokenizer, small_corpus, objective, train,
                                attribution, progress=False, control=control)
    return attribute


@pytest.fixture(scope="module")
def uninterrupted(resumable_run):
    """``uninterrupted(schedule)``: the job's result without a control (computed once)."""
    cache = {}

    def get(schedule):
        if schedule not in cache:
            cache[schedule] = resumable_run(schedule=schedule)
        return cache[schedule]
    return get


def _assert_identical(got, want):
    assert torch.equal(got.per_token, want.per_token)
    assert torch.equal(got.per_example, want.per_example)
    assert got.train_losses == want.train_losses
    assert got.query_after == want.query_after and got.query_before == want.query_before
    assert got.replayed_steps == want.replayed_steps
    assert got.replayed_updates == want.replayed_updates


@pytest.fixture(scope="session")
def assert_identical():
    """``assert_identical(got, want)``: two results agree bit for bit (scores, losses, queries,
    replays)."""
    return _assert_identical

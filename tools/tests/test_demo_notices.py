"""What a long first run says before it starts, and what `--quiet` leaves out (fast: tiny models)."""

import torch
from magic_core.pretraining import PretrainConfig
from magic_datasets.world import WorldConfig
from magic_driver.quiet import library_progress_bars
from magic_driver.world_base import BaseModelConfig, world_base_model
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
from transformers.utils import logging as hf_logging

TINY = BaseModelConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, max_position_embeddings=128)
SHORT = PretrainConfig(steps=2, batch_size=4, warmup_steps=1)
SMALL_WORLD = WorldConfig(entities_per_domain=2, pretrain_docs_per_entity=2)


def _save_and_load(tmp_path):
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(GPTNeoXConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32))
    model.save_pretrained(tmp_path)
    GPTNeoXForCausalLM.from_pretrained(tmp_path)


def test_quiet_silences_the_transformers_bars_and_restores_them(tmp_path, capsys):
    _save_and_load(tmp_path / "loud")
    loud = capsys.readouterr().err
    assert "Writing model shards" in loud and "Loading weights" in loud  # the bars the test hunts

    with library_progress_bars(False):
        _save_and_load(tmp_path / "quiet")
        assert not hf_logging.is_progress_bar_enabled()
    quiet = capsys.readouterr().err
    assert "Writing model shards" not in quiet and "Loading weights" not in quiet
    assert "it/s" not in quiet
    assert hf_logging.is_progress_bar_enabled()  # the caller's setting is back


def test_a_cold_base_model_build_is_announced_once_with_its_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))
    target = world_base_model(SMALL_WORLD, TINY, SHORT, progress=True)
    first = capsys.readouterr().err
    notice = f"magic: building the built-in world's base model, once (cached in {target});"
    assert notice in first and "minutes on 2 CPU cores" in first
    assert first.index(notice) < first.index("Pretraining")  # said before the bar starts

    assert world_base_model(SMALL_WORLD, TINY, SHORT, progress=True) == target
    assert capsys.readouterr().err == ""  # a cached model is reused silently

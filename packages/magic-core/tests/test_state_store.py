"""Where kept states live (memory, disk) must never change a score."""

import magic_core as mc
import pytest
import torch
from magic_core.checkpointing import resolve_schedule
from magic_core.memory import parse_bytes


def run(make_neox, tokenizer, corpus, objective, **attribution):
    cfg = mc.TrainConfig(optimizer="adam", lr=1e-2, batch_size=2, epochs=2, precision="fp64",
                         max_seq_len=24, eps=1e-6)
    return mc.attribute(make_neox(), tokenizer, corpus, objective, cfg,
                        mc.AttributionConfig(granularity="per-token", **attribution), progress=False)


@pytest.fixture(scope="module")
def objective(tokenizer, hazard_questions):
    return mc.MultipleChoiceObjective(hazard_questions, tokenizer)


def test_spilled_states_give_identical_scores(make_neox, tokenizer, small_corpus, objective, tmp_path):
    in_memory = run(make_neox, tokenizer, small_corpus, objective, checkpoints="all")
    assert in_memory.kept_states["placed"] == {"device": 5, "host": 0, "disk": 0}
    one_state = in_memory.kept_states["bytes"]["device"] // 5
    # Two states fit in memory, the other three go to files and come back.
    mixed = run(make_neox, tokenizer, small_corpus, objective, checkpoints="all",
                device_memory=str(2 * one_state), spill_dir=str(tmp_path))
    assert mixed.kept_states["placed"] == {"device": 2, "host": 0, "disk": 3}
    assert mixed.replayed_steps == 0
    assert torch.equal(mixed.per_token, in_memory.per_token)
    # Spill files are removed once the backward has read them.
    assert list(tmp_path.rglob("*.safetensors")) == []
    on_disk = run(make_neox, tokenizer, small_corpus, objective, checkpoints="sqrt",
                  device_memory="0", spill_dir=str(tmp_path))
    assert on_disk.kept_states["placed"]["device"] == 0 < on_disk.kept_states["placed"]["disk"]
    assert torch.allclose(on_disk.per_token, in_memory.per_token, rtol=1e-12, atol=0)


def test_auto_keeps_every_state_when_they_fit(make_neox, tokenizer, small_corpus, objective):
    result = run(make_neox, tokenizer, small_corpus, objective)
    assert result.schedule == "all" and result.replayed_steps == 0


def test_auto_falls_back_to_sqrt_without_room(tmp_path):
    assert resolve_schedule("auto", 64, 10**6, {"device": 64 * 10**6, "host": 0}, str(tmp_path)) == "all"
    assert resolve_schedule("auto", 64, 10**18, {"device": 0, "host": 0}, str(tmp_path)) == "sqrt"
    assert resolve_schedule("log", 64, 10**18, {"device": 0, "host": 0}, None) == "log"


def test_memory_sizes_are_read_and_bad_ones_refused():
    assert parse_bytes("512MiB", "x") == 512 * 2**20
    assert parse_bytes("2GB", "x") == 2 * 10**9
    assert parse_bytes("0", "x") == 0
    with pytest.raises(mc.ConfigError, match="attribution.device_memory"):
        mc.AttributionConfig(device_memory="lots")


def test_spill_files_are_safetensors_and_round_trip(tmp_path):
    from magic_core.state_files import BLOCK, BufferPool, read_state, write_state
    from safetensors.torch import load_file

    tensors = {"param.w": torch.randn(7, 5, dtype=torch.float64), "opt.0": torch.randn(33),
               "rng.cpu": torch.randint(0, 255, (13,), dtype=torch.uint8),
               "rng.cuda": torch.empty(0, dtype=torch.uint8), "batch_index": torch.tensor(3)}
    pool = BufferPool()
    write_state(tmp_path / "s.safetensors", tensors, pool)
    assert (tmp_path / "s.safetensors").stat().st_size % BLOCK == 0  # whole blocks: direct I/O
    other_tools = load_file(tmp_path / "s.safetensors")
    back = read_state(tmp_path / "s.safetensors", pool)
    for name, t in tensors.items():
        assert torch.equal(other_tools[name], t) and torch.equal(back[name], t)
        assert back[name].dtype == t.dtype and back[name].shape == t.shape


def test_buffer_pool_reuses_a_buffer_only_once_nothing_views_it(tmp_path):
    from magic_core.state_files import BufferPool, read_state, write_state

    pool = BufferPool()
    write_state(tmp_path / "a.safetensors", {"x": torch.arange(1000.0)}, pool)
    held = read_state(tmp_path / "a.safetensors", pool)
    other = read_state(tmp_path / "a.safetensors", pool)  # `held` still views the first buffer
    assert len(pool._buffers) == 2
    assert torch.equal(held["x"], torch.arange(1000.0)) and torch.equal(other["x"], held["x"])
    del held
    read_state(tmp_path / "a.safetensors", pool)
    assert len(pool._buffers) == 2


def test_truncated_spill_file_is_reported(tmp_path):
    from magic_core.state_files import BufferPool, read_state, write_state

    pool = BufferPool()
    path = tmp_path / "t.safetensors"
    write_state(path, {"x": torch.arange(5000.0)}, pool)
    with open(path, "r+b") as f:
        f.truncate(4096 + 100)
    with pytest.raises(OSError, match="truncated"):
        read_state(path, pool)


def test_spill_files_without_direct_io(tmp_path, monkeypatch):
    # tmpfs and macOS have no O_DIRECT: the same files through the page cache.
    from magic_core import state_files

    monkeypatch.setattr(state_files, "_DIRECT", 0)
    pool = state_files.BufferPool()
    state_files.write_state(tmp_path / "p.safetensors", {"x": torch.arange(10.0)}, pool)
    assert torch.equal(state_files.read_state(tmp_path / "p.safetensors", pool)["x"], torch.arange(10.0))
